#!/usr/bin/env bash
# Convert the public corpora into the sticker dataset format, as the training configs expect them
# (configs/pbr-ablation.yaml, configs/pbr-default.yaml). Idempotent: existing datasets are kept.
#   bash scripts/prepare_data.sh DATA_ROOT     (or STICKERPICK_DATA_ROOT=DATA_ROOT)
# DATA_ROOT holds the public corpora: tweeteval/, meld/, dailydialog/, goemotions/ (docs/FORMAT.md).
# CLIPART_PNG (second argument): Debian openclipart-png's png folder; without it, it is fetched into
# var/debs with `apt-get download` + `dpkg -x` (no root needed).
set -euo pipefail
ROOT=${1:-${STICKERPICK_DATA_ROOT:-}}
CLIPART=${2:-}
if [ -z "$ROOT" ]; then
  echo "usage: bash scripts/prepare_data.sh DATA_ROOT (the folder of the public corpora; see docs/FORMAT.md)" >&2
  exit 2
fi
ROOT=$(cd "$ROOT" && pwd)
cd "$(dirname "$0")/.."
OUT=var/datasets
SP=.venv/bin/stickerpick
mkdir -p "$OUT"

convert() {  # name, then the arguments of `stickerpick data convert`
  local name=$1; shift
  if [ -f "$OUT/$name/conversion.json" ]; then echo "have $OUT/$name"; return; fi
  "$SP" data convert "$@" --data-root "$ROOT" --out "$OUT/$name" --no-progress
}

convert tweeteval-emoji-gt tweeteval-emoji --style google --style twitter
convert tweeteval-emoji-unseen-facebook tweeteval-emoji --style google --style twitter --unseen-style facebook
convert meld-accompany meld --style google --variant accompany
convert meld-reply meld --style google --variant reply
convert emoji-names-gt emoji-names --style google --style twitter
convert te-google tweeteval-emoji --style google

# Every emoji of every training style (google, twitter, openmoji) with its names and keywords; val: facebook.
convert emoji-art-gto emoji-art --style google --style twitter --style openmoji --unseen-style facebook
convert meld-accompany-unseen-facebook meld --style google --unseen-style facebook --variant accompany
# Big packs: rank among ~330 emoji of the unseen style (validation only).
convert tweeteval-pack-facebook tweeteval-emoji --style google --unseen-style facebook --pack-candidates
convert meld-pack-facebook meld --style google --unseen-style facebook --variant accompany --pack-candidates
convert meld-reply-pack-facebook meld --style google --unseen-style facebook --variant reply --pack-candidates
convert emoji-names-pack-facebook emoji-names --style google --unseen-style facebook
# The same big pack in the seen default style (google): the bundled default pack's own art.
convert tweeteval-pack-google tweeteval-emoji --style google --pack-candidates
convert meld-pack-google meld --style google --variant accompany --pack-candidates
# The same ~300 emoji named in other languages (emojibase-data locales; validation only): de and es are never
# trained on, fr is.
for L in de es fr; do convert emoji-names-$L emoji-names --style google --language $L; done

# Public-domain clip art: drawn pictures that are not emoji.
if [ ! -f "$OUT/openclipart/conversion.json" ]; then
  if [ -z "$CLIPART" ]; then
    CLIPART=var/debs/ocp/usr/share/openclipart/png
    if [ ! -d "$CLIPART" ]; then
      mkdir -p var/debs
      (cd var/debs && apt-get download openclipart-png && dpkg -x openclipart-png_*.deb ocp)
    fi
  fi
  "$SP" data convert openclipart --data-root "$CLIPART" --out "$OUT/openclipart" --max-samples 4000 --no-progress
fi
