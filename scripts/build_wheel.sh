#!/usr/bin/env bash
# Build the serving wheel: the engine, the bots, the migrations, and as package data the default model
# (models/default) and the default pack's pictures (drawn here from the npm emoji artwork, so the serving
# machine needs neither Node nor npm). `pip install dist/stickerpick-*.whl` then `stickerpick setup &&
# stickerpick demo` works without PyTorch (training stays the `train` extra).
#   bash scripts/build_wheel.sh [OUT_DIR]      (default: dist/; NODE_MODULES=… where the npm artwork is)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-dist}
PY=${PYTHON:-.venv/bin/python}
NODE_MODULES=${NODE_MODULES:-vendor/node_modules}
ASSETS=engine/assets

rm -rf "$ASSETS" build stickerpick.egg-info
mkdir -p "$ASSETS/models"
cp -r models/default "$ASSETS/models/default"
"$PY" -c "
import sys
from training.data.emoji_art import write_default_pack
write_default_pack(sys.argv[1], style='google', node_modules=sys.argv[2])
" "$ASSETS/packs/noto-emoji" "$NODE_MODULES"
cp "$NODE_MODULES/emoji-datasource-google/LICENSE" "$ASSETS/packs/noto-emoji.LICENSE"  # ships beside the pictures
"$PY" -m pip wheel . --no-deps --no-build-isolation --quiet -w "$OUT"
rm -rf "$ASSETS" build stickerpick.egg-info
ls "$OUT"/stickerpick-*.whl
