"""Feature caches: what does not change during training is computed once and reused across runs.

* Text: the frozen part of the text tower, per distinct text. Mode ``pooled`` (``text_trainable_layers=0``):
  the mean-pooled last hidden state (H floats). Mode ``hidden`` (``text_trainable_layers=N>0``): the hidden
  states entering layer L−N (fp16, variable length, tokenised with the engine tokenizer's left truncation) plus
  nothing else: the attention mask of a row is all ones over its length.
* Images: frozen image-tower features of K views per sticker (view 0 clean, views 1.. from
  :func:`training.augment.augment_images`, seeded per sticker).
* The emotion teacher, fitted on the training stickers' clean features.

Every entry is keyed by a SHA-256 of everything that determines it (tower weights, preprocessing spec, the texts or
image bytes, parameters), written atomically (temp file, then rename) under ``cache_dir/<kind>/``.

The pieces: :mod:`training.features.cache` (keys, digests, :class:`FeatureCache`, the cached teacher),
:mod:`training.features.text` and :mod:`training.features.images`; this package re-exports what the trainer
uses.
"""

from training.features.cache import (
    CACHE_FORMAT,
    FeatureCache,
    cached_teacher,
    frozen_prefix_digest,
    frozen_units_digest,
    key_of,
    module_digest,
    sha256_bytes,
    texts_digest,
)
from training.features.images import ImageFeatureStore, encode_sticker_views, view_pixels
from training.features.text import (
    TextFeatures,
    TextFeatureStore,
    bert_embed,
    dialogue_polarities,
    encode_texts,
    run_bert_layers,
)

__all__ = [
    "CACHE_FORMAT",
    "FeatureCache",
    "ImageFeatureStore",
    "TextFeatureStore",
    "TextFeatures",
    "bert_embed",
    "cached_teacher",
    "dialogue_polarities",
    "encode_sticker_views",
    "encode_texts",
    "frozen_prefix_digest",
    "frozen_units_digest",
    "key_of",
    "module_digest",
    "run_bert_layers",
    "sha256_bytes",
    "texts_digest",
    "view_pixels",
]
