"""From a training config's datasets to :class:`TrainData`: every tensor a batch is cut from, built once.

:func:`make_towers` sets up the feature stores (what the caches are computed with); :func:`prepare_train_data`
reads the training datasets, fills the sticker table, and computes (or loads from the cache) the text and image
features, the dialogue polarities and the emotion teacher's similarities.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from engine.fsutil import sha256_file
from engine.preprocess import TextTokenizer, dialogue_to_text
from training.build import image_stop, stop_layer, tokenizer_file
from training.config import TrainConfig
from training.data.format import Sample, StickerDataset
from training.features import (
    FeatureCache,
    ImageFeatureStore,
    TextFeatures,
    TextFeatureStore,
    cached_teacher,
    dialogue_polarities,
)
from training.model import PBRModel
from training.stickers import StickerTable


def sample_text(sample: Sample, max_turns: int) -> str:
    return dialogue_to_text([t.text for t in sample.context], max_turns)


def load_samples(
    spec_path: str, split: str, max_samples: int | None, seed: int
) -> tuple[StickerDataset, list[Sample]]:
    ds = StickerDataset.open(spec_path)
    samples = ds.load(split)
    if max_samples is not None and len(samples) > max_samples:
        keep = sorted(random.Random(seed).sample(range(len(samples)), max_samples))
        samples = [samples[i] for i in keep]
    return ds, samples


# ------------------------------------------------------------------------------------------------ towers
@dataclass
class Towers:
    """What the caches are computed with."""

    model: PBRModel
    tokenizer: TextTokenizer
    cache: FeatureCache
    text: TextFeatureStore
    sticker_text: TextFeatureStore | None
    images: ImageFeatureStore


def make_towers(model: PBRModel, cfg: TrainConfig, cache: FeatureCache | None = None) -> Towers:
    pcfg = model.config
    cache = cache or FeatureCache(cfg.data.cache_dir, enabled=cfg.data.use_cache)
    tok_path = tokenizer_file(pcfg.text_dir)
    tokenizer = TextTokenizer(tok_path, pcfg.max_tokens)
    tok_digest = sha256_file(tok_path)
    bert = model.text_tower.bert
    stop = stop_layer(model)
    text = TextFeatureStore(cache, bert, tokenizer, tok_digest, pcfg.max_tokens, stop, cfg.progress)
    st = (
        TextFeatureStore(cache, bert, tokenizer, tok_digest, pcfg.sticker_text_max_tokens, stop, cfg.progress)
        if pcfg.use_sticker_text
        else None
    )
    images = ImageFeatureStore(
        cache,
        model.image_tower,
        pcfg.image_spec(),
        cfg.data.views,
        cfg.seed,
        progress=cfg.progress,
        stop=image_stop(model),
    )
    return Towers(model, tokenizer, cache, text, st, images)


# ------------------------------------------------------------------------------------------------ data
@dataclass
class TrainData:
    text: TextFeatures  # one row per distinct training text
    sample_text: Tensor  # (N,) row of each sample's text
    sample_sticker: Tensor  # (N,) row in the sticker table
    sample_weight: Tensor  # (N,) sampling weight (dataset weight)
    polarity: Tensor  # (N, 3) VADER polarity of each sample's dialogue
    stickers: StickerTable
    view_feats: Tensor  # (S, K, F)
    teacher_sims: Tensor  # (S, K, 7)
    topics: Tensor  # (S,)
    sticker_text: TextFeatures | None  # one row per sticker
    has_text: Tensor  # (S,) bool
    info: dict[str, Any]
    identity: Tensor | None = None  # (S,) what a sticker shows (StickerTable.identities)
    partners: list[list[int]] | None = None  # per sticker: the stickers of other sets with its identity
    cross_style: float = 0.0
    text_dropout: float = 0.0

    def __len__(self) -> int:
        return int(self.sample_text.shape[0])


@dataclass
class _Samples:
    """The training samples as rows: distinct texts, and per sample its text row, sticker row and weight."""

    texts: list[str] = field(default_factory=list)
    text_row: dict[str, int] = field(default_factory=dict)
    text: list[int] = field(default_factory=list)
    sticker: list[int] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)

    def add(self, text: str, sticker: int, weight: float) -> None:
        if text not in self.text_row:
            self.text_row[text] = len(self.texts)
            self.texts.append(text)
        self.text.append(self.text_row[text])
        self.sticker.append(sticker)
        self.weight.append(weight)


def _read_datasets(cfg: TrainConfig, table: StickerTable) -> tuple[_Samples, list[dict[str, Any]]]:
    """Every usable training sample (its sticker has a file, its dialogue has text), and a note per dataset."""
    rows = _Samples()
    notes: list[dict[str, Any]] = []
    for spec in cfg.data.train:
        ds, samples = load_samples(spec.path, spec.split, spec.max_samples, cfg.seed)
        table.add_dataset(ds)
        used = 0
        for s in samples:
            key = (s.current.set_id, s.current.sticker_id)
            if key not in table.index:
                continue
            t = sample_text(s, cfg.data.max_turns)
            if not t:
                continue
            rows.add(t, table.index[key], spec.weight)
            used += 1
        notes.append({"path": spec.path, "split": spec.split, "samples": used, "weight": spec.weight})
    if not rows.text:
        raise ValueError("no training samples: check data.train")
    return rows, notes


def _teacher_similarities(
    cfg: TrainConfig, towers: Towers, table: StickerTable, pooled: Tensor
) -> tuple[Tensor, dict[str, Any]]:
    """(S, K, 7) the emotion teacher's similarities of every view, the teacher fitted on the clean views."""
    from training.emotion_labels import label_emoji_emotion

    labels = [label_emoji_emotion(a) for a in table.alts]
    teacher = cached_teacher(
        towers.cache,
        pooled[:, 0],
        labels,
        cfg.seed,
        hidden=cfg.teacher.hidden,
        clusters_per_class=cfg.teacher.clusters_per_class,
        epochs=cfg.teacher.epochs,
    )
    s, k, f = pooled.shape
    return teacher.similarities(pooled.reshape(s * k, f)).reshape(s, k, -1), teacher.info


def prepare_train_data(cfg: TrainConfig, towers: Towers) -> TrainData:
    table = StickerTable()
    rows, notes = _read_datasets(cfg, table)
    text_feats = towers.text.features(rows.texts, desc="train text features")
    text_pol = dialogue_polarities(towers.cache, rows.texts)
    sample_text_t = torch.tensor(rows.text, dtype=torch.long)
    views = towers.images.features(table.paths)
    sims, teacher_info = _teacher_similarities(cfg, towers, table, frozen_pooled(towers, views))
    st_texts = table.texts()
    st_feats = (
        towers.sticker_text.features(st_texts, desc="sticker text features") if towers.sticker_text else None
    )
    identity = table.identities()
    partners, n_identities = table.partners(identity, table.topics())
    info: dict[str, Any] = {
        "datasets": notes,
        "samples": len(rows.text),
        "texts": len(rows.texts),
        "stickers": len(table),
        "views": int(views.shape[1]),
        "teacher": teacher_info,
        "identities": n_identities,
        "stickers_with_partner": sum(1 for p in partners if p),
    }
    return TrainData(
        text=text_feats,
        sample_text=sample_text_t,
        sample_sticker=torch.tensor(rows.sticker, dtype=torch.long),
        sample_weight=torch.tensor(rows.weight, dtype=torch.float64),
        polarity=text_pol[sample_text_t],
        stickers=table,
        view_feats=views,
        teacher_sims=sims,
        topics=table.topics(),
        sticker_text=st_feats,
        has_text=torch.tensor([bool(t) for t in st_texts]),
        info=info,
        identity=identity,
        partners=partners,
        cross_style=cfg.data.cross_style,
        text_dropout=cfg.data.sticker_text_dropout,
    )


@torch.no_grad()
def frozen_pooled(towers: Towers, views: Tensor, batch_size: int = 512) -> Tensor:
    """(S, K, F) pooled features of the pretrained tower: ``views`` itself when the cache holds pooled
    features, else the cached maps run through the (still pretrained) trainable blocks. The emotion teacher
    is fitted on these, before training moves those blocks."""
    stop = towers.images.stop
    if stop is None:
        return views
    s, k = views.shape[:2]
    flat = views.reshape(s * k, *views.shape[2:])
    tower = towers.model.image_tower
    was = tower.training
    tower.eval()
    try:
        out = [tower.suffix(flat[i : i + batch_size].float(), stop) for i in range(0, len(flat), batch_size)]
    finally:
        tower.train(was)
    return torch.cat(out).reshape(s, k, -1)
