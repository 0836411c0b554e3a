#!/usr/bin/env bash
# Convert the public corpora into the sticker dataset format, as the training configs expect them
# (configs/pbr-ablation.yaml, configs/pbr-default.yaml). Idempotent: existing datasets are kept.
#   bash scripts/prepare_data.sh DATA_ROOT     (or STICKERPICK_DATA_ROOT=DATA_ROOT)
# DATA_ROOT holds the public corpora: tweeteval/, meld/, dailydialog/, goemotions/ (docs/FORMAT.md).
set -euo pipefail
ROOT=${1:-${STICKERPICK_DATA_ROOT:-}}
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
