"""From datasets and caches to training batches, and the module whose ``forward`` computes every loss.

The cached-feature design: the image tower is frozen (``image_trainable_blocks=0``) and its features of K views
per sticker are cached; the text tower is either frozen (``text_trainable_layers=0``: cached pooled features,
heads-only training) or partly trainable (``N>0``: cached hidden states entering layer L−N, only the top N layers
run in training).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.preprocess import TextTokenizer, dialogue_to_text, sticker_text
from training.config import LossesConfig, TrainConfig
from training.data.format import Sample, StickerDataset
from training.features import (
    FeatureCache,
    ImageFeatureStore,
    TextFeatures,
    TextFeatureStore,
    cached_teacher,
    dialogue_polarities,
    run_bert_layers,
    sha256_file,
)
from training.losses import (
    ContrastiveLoss,
    EmotionKDLoss,
    HardNegativeMiner,
    InterTopicLoss,
    IntraTopicLoss,
    MatchingLoss,
    sticker_polarity,
)
from training.model import PBRConfig, PBRModel, build_pbr, default_text_dir, mean_pool, tiny_bert_config

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ model
def tiny_model_fields() -> dict[str, Any]:
    """PBRConfig fields of the test-sized model (as ``build_tiny_pbr``), frozen towers."""
    return {
        "embed_dim": 16,
        "image_size": 32,
        "image_arch": "tiny",
        "text_config": tiny_bert_config(),
        "text_trainable_layers": 0,
        "image_trainable_blocks": 0,
        "emotion_hidden": 16,
        "match_hidden": 16,
        "tiny_width": 8,
        "max_tokens": 16,
        "sticker_text_max_tokens": 8,
    }


def build_model(cfg: TrainConfig) -> PBRModel:
    """The PBR model of a config, seeded; ``tiny`` → random small towers (tests), else pretrained."""
    fields = dict(tiny_model_fields()) if cfg.tiny else {}
    fields.update(cfg.model)
    pcfg = PBRConfig.from_dict(fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_pbr(pcfg, pretrained=not cfg.tiny)
    check_cacheable(model.config)
    return model


def check_cacheable(cfg: PBRConfig) -> None:
    if cfg.image_trainable_blocks < 0:
        raise ValueError(
            "the cached-feature trainer caches the image tower below its trainable blocks: set "
            "model.image_trainable_blocks >= 0 (0: frozen)"
        )
    if cfg.text_trainable_layers < 0:
        raise ValueError("the cached-feature trainer needs text_trainable_layers >= 0 (embeddings frozen)")


def stop_layer(model: PBRModel) -> int | None:
    """None: pooled cache (frozen text tower); else the first trainable BERT layer."""
    n = model.config.text_trainable_layers
    if n == 0:
        return None
    return model.text_tower.num_layers - min(n, model.text_tower.num_layers)


def image_stop(model: PBRModel) -> int | None:
    """None: pooled-feature cache (frozen image tower); else the first trainable block (maps are cached)."""
    n = model.config.image_trainable_blocks
    if n == 0:
        return None
    blocks = int(model.image_tower.num_blocks)
    return blocks - min(n, blocks)


def tokenizer_file(text_dir: str | Path | None = None) -> Path:
    """The text tower's tokenizer: the one beside its weights (``model.text_dir``, e.g. the e5 tower written
    by scripts/e5_tower.py), else MiniLM's."""
    return Path(text_dir or default_text_dir()) / "tokenizer.json"


# ------------------------------------------------------------------------------------------------ stickers
@dataclass
class StickerTable:
    """Stickers of some datasets, keyed by (set_id, sticker_id); the topic of a sticker is its set."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    alts: list[str | None] = field(default_factory=list)
    index: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, key: tuple[str, str], path: Path, alt: str | None) -> int:
        if key not in self.index:
            self.index[key] = len(self.keys)
            self.keys.append(key)
            self.paths.append(path)
            self.alts.append(alt)
        elif alt and not self.alts[self.index[key]]:
            self.alts[self.index[key]] = alt
        return self.index[key]

    def add_dataset(self, ds: StickerDataset) -> None:
        for (set_id, sid), path in sorted(ds.index.paths.items()):
            self.add((set_id, sid), path, ds.index.alt(sid, set_id))

    def __len__(self) -> int:
        return len(self.keys)

    def topics(self) -> Tensor:
        codes: dict[str, int] = {}
        return torch.tensor([codes.setdefault(s, len(codes)) for s, _ in self.keys], dtype=torch.long)

    def identities(self) -> Tensor:
        """(S,) what each sticker *shows*: stickers of different sets with the same emoji share an id (the same
        emoji in another art style is the same thing); a sticker without an emoji is only itself."""
        from training.metrics import normalise_alt

        codes: dict[str, int] = {}
        out = []
        for key, alt in zip(self.keys, self.alts, strict=True):
            norm = normalise_alt(alt)
            out.append(codes.setdefault(f"emoji:{norm}" if norm else f"key:{key[0]}/{key[1]}", len(codes)))
        return torch.tensor(out, dtype=torch.long)

    def texts(self) -> list[str]:
        return [sticker_text(a) for a in self.alts]


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


# ------------------------------------------------------------------------------------------------ data
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


def prepare_train_data(cfg: TrainConfig, towers: Towers) -> TrainData:
    from training.teacher import label_emoji_emotion

    table = StickerTable()
    texts: list[str] = []
    text_row: dict[str, int] = {}
    s_text: list[int] = []
    s_sticker: list[int] = []
    s_weight: list[float] = []
    info: dict[str, Any] = {"datasets": []}
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
            if t not in text_row:
                text_row[t] = len(texts)
                texts.append(t)
            s_text.append(text_row[t])
            s_sticker.append(table.index[key])
            s_weight.append(spec.weight)
            used += 1
        info["datasets"].append(
            {"path": spec.path, "split": spec.split, "samples": used, "weight": spec.weight}
        )
    if not s_text:
        raise ValueError("no training samples: check data.train")
    text_feats = towers.text.features(texts, desc="train text features")
    text_pol = dialogue_polarities(towers.cache, texts)
    sample_text_t = torch.tensor(s_text, dtype=torch.long)
    views = towers.images.features(table.paths)
    pooled = frozen_pooled(towers, views)
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
    sims = teacher.similarities(pooled.reshape(s * k, f)).reshape(s, k, -1)
    st_texts = table.texts()
    st_feats = (
        towers.sticker_text.features(st_texts, desc="sticker text features") if towers.sticker_text else None
    )
    identity = table.identities()
    topics = table.topics()
    groups: dict[int, list[int]] = {}
    for i, ident in enumerate(identity.tolist()):
        groups.setdefault(ident, []).append(i)
    partners = [
        [j for j in groups[ident] if topics[j] != topics[i]] for i, ident in enumerate(identity.tolist())
    ]
    info.update(
        samples=len(s_text),
        texts=len(texts),
        stickers=len(table),
        views=k,
        teacher=teacher.info,
        identities=len(groups),
        stickers_with_partner=sum(1 for p in partners if p),
    )
    return TrainData(
        text=text_feats,
        sample_text=sample_text_t,
        sample_sticker=torch.tensor(s_sticker, dtype=torch.long),
        sample_weight=torch.tensor(s_weight, dtype=torch.float64),
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


# ------------------------------------------------------------------------------------------------ batches
def epoch_order(data: TrainData, epoch: int, seed: int) -> Tensor:
    """The sample order of one epoch, the same on every rank: a permutation when all weights are equal, else
    ``len(data)`` weighted draws with replacement (probability of a sample ∝ its dataset's weight)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    w = data.sample_weight
    if bool((w == w[0]).all()):
        return torch.randperm(len(data), generator=g)
    return torch.multinomial(w / w.sum(), len(data), replacement=True, generator=g)


def rank_batches(order: Tensor, batch_size: int, rank: int, world: int) -> list[Tensor]:
    """Split one epoch between ranks (like DistributedSampler without padding: every rank gets the same number
    of full batches) and into batches."""
    per_rank = len(order) // world
    n_batches = per_rank // batch_size
    if n_batches == 0 and per_rank > 0:
        n_batches, batch_size = 1, per_rank
    mine = order[rank : per_rank * world : world]
    return [mine[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]


def _text_input(feats: TextFeatures, rows: Tensor) -> dict[str, Tensor]:
    if feats.pooled is not None:
        return {"pooled": feats.pooled[rows]}
    hidden, mask = feats.gather_hidden(rows)
    return {"hidden": hidden, "mask": mask}


def make_batch(data: TrainData, rows: Tensor, g: torch.Generator) -> dict[str, Any]:
    sticker = data.sample_sticker[rows]
    uniq, inv = torch.unique(sticker, return_inverse=True)
    k = data.view_feats.shape[1]
    v1 = torch.randint(0, k, (len(uniq),), generator=g)
    v2 = (v1 + torch.randint(1, k, (len(uniq),), generator=g)) % k if k > 1 else v1.clone()
    # The second view: with probability ``cross_style`` the same emoji drawn in another set (identity across
    # styles, PBR's intra-topic positive made style-invariant), else another view of the same picture.
    second = uniq.clone()
    if data.partners is not None and data.cross_style > 0:
        draw = torch.rand(len(uniq), generator=g) < data.cross_style
        for j, (sid, take) in enumerate(zip(uniq.tolist(), draw.tolist(), strict=True)):
            options = data.partners[sid]
            if take and options:
                second[j] = options[int(torch.randint(0, len(options), (1,), generator=g))]
                v2[j] = int(torch.randint(0, k, (1,), generator=g))
    ident = data.identity[uniq] if data.identity is not None else uniq
    batch: dict[str, Any] = {
        "text": _text_input(data.text, data.sample_text[rows]),
        "dialogue_ids": data.sample_text[rows],
        "polarity": data.polarity[rows],
        "inv": inv,
        "uniq": uniq,
        "topics": data.topics[uniq],
        "img1": data.view_feats[uniq, v1],
        "img2": data.view_feats[second, v2],
        "teacher1": data.teacher_sims[uniq, v1],
        "teacher2": data.teacher_sims[second, v2],
        "ident": ident,
        "mine_seed": int(torch.randint(0, 2**31 - 1, (1,), generator=g)),
    }
    if data.sticker_text is not None:
        batch["sticker_text"] = _text_input(data.sticker_text, uniq)
        has = data.has_text[uniq]
        if data.text_dropout > 0:
            has = has & (torch.rand(len(uniq), generator=g) >= data.text_dropout)
        batch["has_text"] = has
    return batch


def batch_to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, Tensor):
            out[k] = v.to(device)
        elif isinstance(v, dict):
            out[k] = batch_to(v, device)
        else:
            out[k] = v
    return out


# ------------------------------------------------------------------------------------------------ module
def fuse_sticker(
    model: PBRModel, image: Tensor, text_pooled: Tensor | None, has_text: Tensor | None
) -> Tensor:
    """``PBRModel.encode_sticker`` from image-tower features and pooled sticker-text features."""
    img = F.normalize(model.image_proj(image), dim=-1)
    if not model.config.use_sticker_text or text_pooled is None:
        return img
    text = F.normalize(model.sticker_text_proj(text_pooled), dim=-1)
    gate = torch.sigmoid(model.text_gate(torch.cat([img, text], dim=-1)))
    if has_text is not None:
        gate = torch.where(has_text.unsqueeze(-1).to(torch.bool), gate, torch.ones_like(gate))
    return F.normalize(gate * img + (1 - gate) * text, dim=-1)


class PBRTrainModule(nn.Module):
    """Wraps a :class:`PBRModel`; ``forward(batch)`` computes every enabled loss (mining and the matching head
    included), so one DDP forward/backward covers every trained parameter."""

    def __init__(self, model: PBRModel, losses: LossesConfig, stop: int | None) -> None:
        super().__init__()
        self.model = model
        self.stop = stop
        self.image_start = image_stop(
            model
        )  # first trainable image block: batches carry the maps entering it
        lc = losses
        self.contrastive = ContrastiveLoss(lc.contrastive.weight, lc.contrastive.enabled)
        self.inter_topic = InterTopicLoss(
            lc.inter_topic.weight, lc.inter_topic.enabled, lc.inter_topic.temperature
        )
        self.intra_topic = IntraTopicLoss(
            lc.intra_topic.weight, lc.intra_topic.enabled, lc.intra_topic.temperature
        )
        self.emotion_kd = EmotionKDLoss(
            lc.emotion_kd.weight,
            lc.emotion_kd.enabled,
            lc.emotion_kd.temperature,
            lc.emotion_kd.student_temperature,
        )
        m = lc.matching
        self.matching = MatchingLoss(m.weight, m.enabled, m.balanced)
        self.miner = HardNegativeMiner(m.num_negatives, m.pool_size, m.polarity_weight, m.sample)

    def freeze_unused(self) -> None:
        """Parameters no enabled loss trains get requires_grad False (then no rank waits for their grads)."""
        m = self.model
        if not self.emotion_kd.active:
            for p in m.emotion_head.parameters():
                p.requires_grad_(False)
        if not self.matching.active:
            for p in m.match_head.parameters():
                p.requires_grad_(False)
        if not self.contrastive.active:
            m.logit_scale.requires_grad_(False)
        if not (self.contrastive.active or self.matching.active):
            for p in m.text_proj.parameters():
                p.requires_grad_(False)
            for p in m.text_tower.parameters():
                p.requires_grad_(False)

    def pooled_text(self, text: dict[str, Tensor]) -> Tensor:
        if "pooled" in text:
            return text["pooled"]
        bert = self.model.text_tower.bert
        hidden = run_bert_layers(
            bert, text["hidden"], text["mask"], int(self.stop or 0), len(bert.encoder.layer)
        )
        return mean_pool(hidden, text["mask"])

    def dialogue(self, text: dict[str, Tensor]) -> Tensor:
        return F.normalize(self.model.text_proj(self.pooled_text(text)), dim=-1)

    def image_features(self, image: Tensor) -> Tensor:
        """Pooled image features: cached ones as they are, cached maps through the trainable blocks."""
        if image.dim() == 2:
            return image
        return self.model.image_tower.suffix(image.float(), int(self.image_start or 0))

    def sticker(
        self, image: Tensor, text: dict[str, Tensor] | None = None, has_text: Tensor | None = None
    ) -> Tensor:
        pooled = self.pooled_text(text) if text is not None else None
        return fuse_sticker(self.model, self.image_features(image), pooled, has_text)

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        model = self.model
        d = self.dialogue(batch["text"])
        st, has = batch.get("sticker_text"), batch.get("has_text")
        s1 = self.sticker(batch["img1"], st, has)
        inv = batch["inv"]
        # What each batch sticker shows: the same emoji in two art styles is one thing to every loss (never a
        # negative of the other).
        uniq_ids = batch["ident"] if "ident" in batch else torch.arange(s1.shape[0], device=s1.device)
        s = s1[inv]
        logs: dict[str, float] = {}
        total = torch.zeros((), device=d.device)

        loss, lg = self.contrastive(
            d, s, model.scale(), sticker_ids=uniq_ids[inv], dialogue_ids=batch["dialogue_ids"]
        )
        total, logs = total + loss, {**logs, **lg}
        if self.inter_topic.active or self.intra_topic.active:
            s2 = self.sticker(batch["img2"], st, has)
            loss, lg = self.inter_topic(s1, batch["topics"])
            total, logs = total + loss, {**logs, **lg}
            loss, lg = self.intra_topic(s1, s2, batch["topics"], uniq_ids)
            total, logs = total + loss, {**logs, **lg}
        emotion = model.emotion_logits(s1)
        loss, lg = self.emotion_kd(emotion, teacher_sims=batch["teacher1"])
        total, logs = total + loss, {**logs, **lg}
        if self.matching.active:
            sim = d @ s1.T
            g = torch.Generator().manual_seed(int(batch["mine_seed"]))
            mined = self.miner(
                sim,
                batch["polarity"],
                sticker_polarity(emotion),
                uniq_ids[inv],
                uniq_ids,
                batch["dialogue_ids"],
                generator=g,
            )
            rows, cols = mined.pairs()
            pos = model.match_logits(d, s)
            neg = model.match_logits(d[rows], s1[cols])
            loss, lg = self.matching(pos, neg)
            total, logs = total + loss, {**logs, **lg}
        logs["total"] = float(total.detach())
        return total, logs


def text_rows(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """Distinct texts (first-seen order) and the row of each input text."""
    rows: dict[str, int] = {}
    out = [rows.setdefault(t, len(rows)) for t in texts]
    return list(rows), out
