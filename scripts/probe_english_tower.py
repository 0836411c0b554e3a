"""Probe: fine-tune the top L layers of the served English tower (+ its projection) against the served sticker
vectors held fixed (no sticker text; a text-less sticker named by the bank, as the seen rows of
scripts/eval_suite.py read them), so the shared space, the image tower, the bank and the multilingual tower would
all stay valid. The tower is rebuilt in PyTorch: the wheel's MiniLM with every encoder weight replaced by
text.onnx's, dequantised (its starting metrics match the served int8 tower's within 0.5).

    python scripts/probe_english_tower.py OUT [--model models/default] [--layers 4] [--steps 1500] [--speakers]

A probe, not a training recipe: nothing it writes is shipped. It measures how far the English targets (TweetEval
macro-F1, MELD accompany and respond weighted-F1, validation) move when only the dialogue side learns, each
training set capped at 12,000 samples and each validation set at 2,000 (docs/RESULTS.md, "Fine-tuning the
English tower alone"). ``--speakers`` marks every turn "me:" or "them:" by whether the sticker's sender wrote it.
Needs the datasets of scripts/prepare_data.sh (tweeteval-emoji-gt, meld-accompany, meld-reply).
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper as nh
from sklearn.metrics import f1_score
from transformers import BertModel

from engine.ranking import load_ranker
from training.data.format import StickerDataset, alt_mapping
from training.evaluate import EngineScorer
from training.model._towers import default_text_dir

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--model", default="models/default")
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--steps", type=int, default=1500)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--lr", type=float, default=3e-5)
ap.add_argument("--proj_lr", type=float, default=3e-4)
ap.add_argument("--scale", type=float, default=20.0)
ap.add_argument("--balance", type=float, default=0.5)
ap.add_argument("--te", type=float, default=1.0)
ap.add_argument("--ma", type=float, default=1.0)
ap.add_argument("--mr", type=float, default=1.0)
ap.add_argument("--eval_every", type=int, default=250)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--speakers", action="store_true")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
OUT = Path(args.out)
OUT.mkdir(parents=True, exist_ok=True)
MODEL = Path(args.model)
SETS = {
    "te": "var/datasets/tweeteval-emoji-gt",
    "ma": "var/datasets/meld-accompany",
    "mr": "var/datasets/meld-reply",
}
CAP = {"train": 12000, "val": 2000}
r = load_ranker("auto", MODEL, max_turns=8)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# -- the tower ---------------------------------------------------------------------------------------------
bert = BertModel.from_pretrained(str(default_text_dir()), add_pooling_layer=False).eval()
g = onnx.load(MODEL / "text.onnx").graph
inits = {i.name: nh.to_array(i) for i in g.initializer}


def deq(name):
    q = inits[name + "_quantized"].astype(np.float32)
    return (q - inits[name + "_zero_point"].astype(np.float32)) * inits[name + "_scale"]


sd = bert.state_dict()
for node in g.node:
    if node.op_type == "MatMulInteger" and node.name.startswith("/encoder/layer."):
        parts = node.name.strip("/").split("/")[:-1]  # encoder, layer.4, attention, output, dense
        key = ".".join(p for p in parts) + ".weight"
        w = deq(node.input[1][: -len("_quantized")]).T
        assert sd[key].shape == w.shape, (key, w.shape)
        sd[key] = torch.tensor(w)
for i in range(6):
    w = deq(f"Attention_{i}_qkv_weight").T  # (1152, 384): q, k, v
    b = inits[f"Attention_{i}_qkv_bias"]
    for j, n in enumerate(("query", "key", "value")):
        sd[f"encoder.layer.{i}.attention.self.{n}.weight"] = torch.tensor(w[j * 384 : (j + 1) * 384])
        sd[f"encoder.layer.{i}.attention.self.{n}.bias"] = torch.tensor(b[j * 384 : (j + 1) * 384])
for k in list(sd):
    if k in inits and k.startswith("encoder."):
        sd[k] = torch.tensor(inits[k])
bert.load_state_dict(sd)
proj = torch.nn.Linear(384, 256)
proj.weight.data = torch.tensor(r.heads["text_proj.weight"])
proj.bias.data = torch.tensor(r.heads["text_proj.bias"])
FIRST = 6 - args.layers  # first trainable layer


def speaker_text(sample):
    """The dialogue with each turn marked by who wrote it, relative to the sticker's sender."""
    me = sample.current.from_id
    turns = [t for t in sample.context if t.text.strip()][-8:]
    return " [SEP] ".join(("me: " if t.from_id == me else "them: ") + t.text.strip() for t in turns)


# -- data --------------------------------------------------------------------------------------------------
data = {}
for key, folder in SETS.items():
    ds = StickerDataset.open(folder)
    scorer = EngineScorer(r)  # candidates as served without sticker text: named by the bank
    for split in ("train", "val"):
        samples = ds.load(split)[: CAP[split]]
        amap = alt_mapping(ds.index, samples)
        cands = [ds.candidates(s) for s in samples]
        vecs = scorer.sticker_vectors(sorted({c for cs in cands for c in cs}), ds, False, amap)
        c = dict(
            C=np.stack([np.stack([vecs[x] for x in cs]) for cs in cands]),
            gold=np.array([cs.index(s.current.sticker_id) for s, cs in zip(samples, cands, strict=True)]),
            calts=np.array([[str(amap.get(x)) for x in cs] for cs in cands]),
        )
        if args.speakers:
            texts = [speaker_text(s) for s in samples]
        else:
            texts = [r.dialogue_text([t.text for t in s.context]) for s in samples]
        enc = r.text.tokenizer.encode(texts, 64)
        ids, mask = np.asarray(enc.input_ids), np.asarray(enc.attention_mask)
        data[(key, split)] = dict(
            ids=ids,
            mask=mask,
            C=torch.tensor(c["C"]),
            gold=torch.tensor(c["gold"]),
            calts=c["calts"],
            lens=mask.sum(1),
        )
        log(key, split, len(texts), "mean tokens", mask.sum(1).mean().round(1))
if args.speakers:
    log("example:", speaker_text(StickerDataset.open(SETS["mr"]).load("val")[5]))


@torch.no_grad()
def lower(ids, mask):
    """Hidden states entering the first trainable layer (frozen part), trimmed to the batch's longest."""
    t = int(mask.sum(1).max())
    ids, mask = torch.tensor(ids[:, :t]), torch.tensor(mask[:, :t])
    h = bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
    ext = bert.get_extended_attention_mask(mask, ids.shape)
    for layer in bert.encoder.layer[:FIRST]:
        h = layer(h, attention_mask=ext)[0]
    return h, mask


def upper(h, mask):
    ext = bert.get_extended_attention_mask(mask, mask.shape)
    for layer in bert.encoder.layer[FIRST:]:
        h = layer(h, attention_mask=ext)[0]
    m = mask.unsqueeze(-1).float()
    pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(proj(pooled), dim=-1)


# cache the frozen part once (fp16, per sample, unpadded)
t0 = time.time()
for d in data.values():
    n = len(d["ids"])
    order = np.argsort(d["lens"])
    feats = [None] * n
    for s in range(0, n, 64):
        idx = order[s : s + 64]
        h, m = lower(d["ids"][idx], d["mask"][idx])
        for j, i in enumerate(idx):
            feats[i] = h[j, : int(d["lens"][i])].half()
    d["feats"] = feats
log(f"cached lower layers in {time.time() - t0:.0f}s")


def batch_of(d, idx):
    t = max(int(d["lens"][i]) for i in idx)
    h = torch.zeros(len(idx), t, 384)
    m = torch.zeros(len(idx), t, dtype=torch.long)
    for j, i in enumerate(idx):
        L = int(d["lens"][i])
        h[j, :L] = d["feats"][i].float()
        m[j, :L] = 1
    return h, m


@torch.no_grad()
def evaluate(split="val"):
    bert.eval()
    out = {}
    for key in SETS:
        d = data[(key, split)]
        n = len(d["ids"])
        order = np.argsort(d["lens"])
        q = torch.zeros(n, 256)
        for s in range(0, n, 128):
            idx = order[s : s + 128]
            h, m = batch_of(d, idx)
            q[idx] = upper(h, m)
        pred = torch.einsum("nd,nkd->nk", q, d["C"]).argmax(1).numpy()
        ca = d["calts"]
        rows = np.arange(n)
        pa, ga = ca[rows, pred], ca[rows, d["gold"].numpy()]
        out[key] = dict(
            R1=round(100 * float((pred == d["gold"].numpy()).mean()), 1),
            mF1=round(100 * f1_score(ga, pa, average="macro"), 1),
            wF1=round(100 * f1_score(ga, pa, average="weighted"), 1),
        )
    bert.train()
    for layer in bert.encoder.layer[:FIRST]:
        layer.eval()
    return out


def fmt(o):
    return " | ".join(f"{k} R1 {v['R1']} mF1 {v['mF1']} wF1 {v['wF1']}" for k, v in o.items())


base = evaluate()
log("start", fmt(base))
weights = {"te": args.te, "ma": args.ma, "mr": args.mr}
weights = {k: v for k, v in weights.items() if v > 0}
sw = {}
for k in weights:
    d = data[(k, "train")]
    ga = d["calts"][np.arange(len(d["gold"])), d["gold"].numpy()]
    _, inv, cnt = np.unique(ga, return_inverse=True, return_counts=True)
    w = (1.0 / cnt[inv]) ** args.balance
    sw[k] = torch.tensor(w / w.mean(), dtype=torch.float32)
params = [p for layer in bert.encoder.layer[FIRST:] for p in layer.parameters()]
for layer in bert.encoder.layer[:FIRST]:
    for p in layer.parameters():
        p.requires_grad_(False)
for p in bert.embeddings.parameters():
    p.requires_grad_(False)
opt = torch.optim.AdamW(
    [{"params": params, "lr": args.lr}, {"params": proj.parameters(), "lr": args.proj_lr}], weight_decay=0.01
)
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: min(1.0, (s + 1) / 100) * max(0.05, 0.5 * (1 + np.cos(np.pi * s / args.steps)))
)
rng = np.random.default_rng(0)
keys = list(weights)
probs = np.array([weights[k] for k in keys]) / sum(weights.values())
history = [dict(step=0, **base)]
best, best_score = None, -1.0
bert.train()
for layer in bert.encoder.layer[:FIRST]:
    layer.eval()
t0 = time.time()
for step in range(1, args.steps + 1):
    opt.zero_grad()
    k = keys[rng.choice(len(keys), p=probs)]
    d = data[(k, "train")]
    idx = rng.choice(len(d["ids"]), args.batch, replace=False)
    h, m = batch_of(d, idx)
    q = upper(h, m)
    logits = args.scale * torch.einsum("nd,nkd->nk", q, d["C"][idx])
    ce = F.cross_entropy(logits, d["gold"][idx], reduction="none")
    loss = (ce * sw[k][idx]).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params + list(proj.parameters()), 1.0)
    opt.step()
    sched.step()
    if step % 50 == 0:
        log(f"step {step} loss {loss.item():.3f} {(time.time() - t0) / step:.2f}s/step")
    if step % args.eval_every == 0 or step == args.steps:
        o = evaluate()
        history.append(dict(step=step, **o))
        # selection on validation: the mean of the three targets' metrics
        score = o["te"]["mF1"] + o["ma"]["wF1"] + o["mr"]["wF1"]
        log("eval", step, fmt(o), "score", round(score, 1))
        if score > best_score:
            best_score = score
            torch.save(
                {"bert": bert.state_dict(), "proj": proj.state_dict(), "step": step, "args": vars(args)},
                OUT / "best.pt",
            )
        (OUT / "history.json").write_text(json.dumps(history, indent=1))
log("done; best score", best_score)
