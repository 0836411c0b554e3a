"""The one dataset format (``docs/FORMAT.md``, the StickerChat layout): the names every reader and writer of
datasets imports.

```
DATASET/
  release_{train,val,test}.json                  JSON Lines, one sample a line; any may be absent
  npy_stickers/<set_id>/<sticker_id>.npy|.png|…  HxWx3 uint8 array, or any image
  npy_stickers/<set_id>/emoji_mapping.txt        optional "<sticker_id>\\t<emoji>" lines
```

Ids may be JSON numbers or strings in the files; here they are always ``str`` (compare them as strings). The
writer writes message and user ids that are plain integers as numbers, every other id as a string. Where a
sample has no ``candidates``, :func:`default_candidates` draws StickerChat's: the positive plus 9 other
stickers of its set, with a fixed seed, the same for a sample wherever it is read.

The code: :mod:`training.data.records` (the records and ids), :mod:`training.data.reader` (splits, the sticker
index, candidates, sticker images) and :mod:`training.data.writer` (atomic splits, staged dataset folders).
"""

from training.data.reader import (
    StickerDataset,
    StickerIndex,
    alt_mapping,
    available_splits,
    candidates_for,
    default_candidates,
    iter_split,
    load_split,
    load_sticker_image,
    read_emoji_mapping,
)
from training.data.records import (
    CANDIDATE_SEED,
    EMOJI_MAPPING,
    NUM_CANDIDATES,
    SPLITS,
    STICKER_DIR,
    STICKER_SUFFIXES,
    CurrentSticker,
    DatasetError,
    Sample,
    Turn,
    split_file,
)
from training.data.writer import StickerEntry, replace_dir, staged_dir, write_dataset, write_split

__all__ = [
    "CANDIDATE_SEED",
    "EMOJI_MAPPING",
    "NUM_CANDIDATES",
    "SPLITS",
    "STICKER_DIR",
    "STICKER_SUFFIXES",
    "CurrentSticker",
    "DatasetError",
    "Sample",
    "StickerDataset",
    "StickerEntry",
    "StickerIndex",
    "Turn",
    "alt_mapping",
    "available_splits",
    "candidates_for",
    "default_candidates",
    "iter_split",
    "load_split",
    "load_sticker_image",
    "read_emoji_mapping",
    "replace_dir",
    "split_file",
    "staged_dir",
    "write_dataset",
    "write_split",
]
