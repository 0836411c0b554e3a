"""Training pipeline: config overrides, cached features, loss switches, checkpoints/resume, scorers, DDP."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from training.batching import epoch_order, make_batch, rank_batches
from training.build import build_model, stop_layer
from training.config import apply_override, load_config
from training.features import FeatureCache, run_bert_layers
from training.module import PBRTrainModule
from training.prepare import make_towers, prepare_train_data

sys.path.insert(0, str(Path(__file__).parent))
from tiny_data import make_dataset

LOSSES = ("contrastive", "inter_topic", "intra_topic", "emotion_kd", "matching")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny")


def tiny_cfg(root: Path, tmp: Path, *extra: str) -> Any:
    overrides = [
        "tiny=true",
        f"data.train=[{{path: '{root}'}}]",
        f"data.val=[{{path: '{root}', name: tiny, split: val}}]",
        f"data.cache_dir='{tmp / 'cache'}'",
        "data.views=3",
        "teacher.epochs=10",
        "batch_size=16",
        "epochs=1",
        "progress=false",
        "optim.warmup_steps=2",
        f"out_dir='{tmp / 'run'}'",
        *extra,
    ]
    return load_config(None, overrides)


# ------------------------------------------------------------------------------------------------ config
def test_override_parser() -> None:
    d: dict[str, Any] = {"losses": {"intra_topic": {"enabled": True}}, "data": {"train": [{"path": "a"}]}}
    apply_override(d, "losses.intra_topic.enabled=false")
    apply_override(d, "model.text_trainable_layers=0")
    apply_override(d, "data.train.0.max_samples=100")
    apply_override(d, "optim.lr=3e-4")
    apply_override(d, "out_dir=var/runs/x")
    assert d["losses"]["intra_topic"]["enabled"] is False
    assert d["model"]["text_trainable_layers"] == 0
    assert d["data"]["train"][0]["max_samples"] == 100
    assert d["optim"]["lr"] == pytest.approx(3e-4)
    assert d["out_dir"] == "var/runs/x"
    with pytest.raises(ValueError):
        apply_override(d, "no_equals_sign")


def test_config_rejects_unknown_keys_and_types() -> None:
    cfg = load_config(None, ["losses.matching.num_negatives=3", "optim.lr=1"])
    assert cfg.losses.matching.num_negatives == 3 and isinstance(cfg.optim.lr, float)
    with pytest.raises(ValueError, match="unknown keys"):
        load_config(None, ["losses.bogus.enabled=true"])
    with pytest.raises(ValueError):
        load_config(None, ["batch_size=many"])
    with pytest.raises(ValueError, match="unknown PBRConfig"):
        load_config(None, ["model.not_a_field=1"])


def test_config_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("batch_size: 8\nlosses:\n  emotion_kd: {enabled: false}\n")
    cfg = load_config(p, ["batch_size=4"], out_dir="x")
    assert cfg.batch_size == 4 and not cfg.losses.emotion_kd.enabled and cfg.out_dir == "x"
    for name in ("pbr-ablation.yaml", "pbr-default.yaml", "pbr-respond.yaml"):
        load_config(Path(__file__).parents[2] / "configs" / name)


# ------------------------------------------------------------------------------------------------ caches
def test_feature_cache_reused_and_invalidated(tiny_root: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(tiny_root, tmp_path)
    model = build_model(cfg)
    towers = make_towers(model, cfg)
    prepare_train_data(cfg, towers)
    assert towers.cache.builds.get("text-pooled") == 1 and towers.cache.builds.get("image-views") == 1
    assert towers.cache.builds.get("teacher") == 1
    # A fresh process-like second run: nothing is computed.
    towers2 = make_towers(build_model(cfg), cfg, FeatureCache(cfg.data.cache_dir))
    data2 = prepare_train_data(cfg, towers2)
    assert towers2.cache.builds == {}, towers2.cache.builds
    assert len(data2) == 96
    # Changed texts are computed (only those), unchanged ones are read.
    towers3 = make_towers(build_model(cfg), cfg, FeatureCache(cfg.data.cache_dir))
    before = towers3.text.features(["a brand new text", "haha that is hilarious 1"])
    assert towers3.cache.builds.get("text-pooled") == 1
    again = towers3.text.features(["haha that is hilarious 1", "a brand new text"])
    assert towers3.cache.builds.get("text-pooled") == 1
    assert torch.allclose(before.pooled[0], again.pooled[1])  # type: ignore[index]


def test_cached_text_features_equal_tower(tiny_root: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(tiny_root, tmp_path)
    model = build_model(cfg).eval()
    towers = make_towers(model, cfg)
    texts = ["hello there [SEP] how are you", "short", "a much longer text " * 10]
    feats = towers.text.features(texts)
    enc = towers.tokenizer.encode(texts, max_tokens=model.config.max_tokens)
    with torch.no_grad():
        ref = model.text_tower(torch.from_numpy(enc.input_ids), torch.from_numpy(enc.attention_mask))
    assert torch.allclose(feats.pooled, ref, atol=1e-5)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ losses
@pytest.mark.parametrize("off", [*LOSSES, None])
def test_loss_switches(tiny_root: Path, tmp_path: Path, off: str | None) -> None:
    extra = [f"losses.{off}.enabled=false"] if off else []
    cfg = tiny_cfg(tiny_root, tmp_path, *extra)
    model = build_model(cfg)
    data = prepare_train_data(cfg, make_towers(model, cfg))
    module = PBRTrainModule(model, cfg.losses, stop_layer(model))
    module.freeze_unused()
    rows = rank_batches(epoch_order(data, 0, 0), 32, 0, 1)[0]
    loss, logs = module(make_batch(data, rows, torch.Generator().manual_seed(0)))
    loss.backward()
    for name in LOSSES:
        assert (name in logs) == (name != off), (name, sorted(logs))
    assert torch.isfinite(loss)


# ------------------------------------------------------------------------------------------------ training
def test_train_smoke_checkpoints_and_resume(tiny_root: Path, tmp_path: Path) -> None:
    from training.train import train

    cfg = tiny_cfg(tiny_root, tmp_path, "epochs=2")
    summary = train(cfg)
    run = Path(cfg.out_dir)
    for name in ("last.pt", "best.pt", "metrics.json", "config.json", "loss_curves.png", "val_metrics.png"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == summary["step"] == 2 * summary["steps_per_epoch"] == 12
    assert len(metrics["history"]["evals"]) == 2 and "R@1" in metrics["history"]["evals"][0]["val"]["tiny"]
    assert {"contrastive", "matching", "total"} <= set(metrics["history"]["steps"][-1])
    assert summary["cache"]["builds"].get("text-pooled")  # a fresh cache dir: built here
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["extra"]["step"] == 12
    scale = last["state_dict"]["logit_scale"]
    assert 0.0 <= float(scale) <= np.log(100.0) + 1e-6

    cfg3 = tiny_cfg(tiny_root, tmp_path, "epochs=3")
    resumed = train(cfg3, resume=True)
    assert resumed["step"] == 18 and resumed["epoch"] == 3
    assert resumed["cache"]["builds"] == {}  # the second run computes nothing
    assert len(resumed["history"]["evals"]) == 3  # the first two were kept
    assert resumed["history"]["steps"][0]["step"] < 12 < resumed["history"]["steps"][-1]["step"]


@pytest.mark.slow
def test_resume_mid_epoch(tiny_root: Path, tmp_path: Path) -> None:
    from training.train import train

    cache = f"data.cache_dir='{tmp_path / 'cache'}'"
    b1 = train(tiny_cfg(tiny_root, tmp_path / "b", "max_steps=5", "eval_every=3", cache))
    assert b1["step"] == 5 and b1["epoch"] == 0
    b2 = train(tiny_cfg(tiny_root, tmp_path / "b", "max_steps=9", "eval_every=3", cache), resume=True)
    assert b2["step"] == 9 and b2["epoch"] == 1  # 6 steps per epoch: crossed into the second epoch
    assert [e["step"] for e in b2["history"]["evals"]][:2] == [3, 5]


def test_checkpoint_scorer_ranks_and_matches_cached(tiny_root: Path, tmp_path: Path) -> None:
    from training.data.format import StickerDataset
    from training.evaluate import evaluate
    from training.pbr_scorer import CachedScorer, CheckpointScorer
    from training.train import train

    cfg = tiny_cfg(tiny_root, tmp_path, "epochs=1")
    train(cfg)
    ds = StickerDataset.open(tiny_root)
    for rerank in (False, True):
        scorer = CheckpointScorer.load(Path(cfg.out_dir) / "best.pt", rerank=rerank)
        m = evaluate(ds, "val", scorer, sticker_text=False, json_path=tmp_path / f"m{rerank}.json")
        assert m["n"] == 24 and 0 <= m["R@1"] <= 100 and (tmp_path / f"m{rerank}.json").is_file()
        samples = ds.load("val")
        cands = [ds.candidates(s) for s in samples]
        raw = scorer.score(samples, cands, ds, False)
        module = PBRTrainModule(scorer.model, cfg.losses, stop_layer(scorer.model))
        cached = CachedScorer(module, make_towers(scorer.model, cfg), cfg.data.max_turns, rerank=rerank)
        fast = cached.score(samples, cands, ds, False)
        for x, y in zip(raw, fast, strict=True):
            assert len(x) == len(y) == 6
            np.testing.assert_allclose(x, y, atol=1e-4)


def test_sticker_text_model_trains_and_scores(tiny_root: Path, tmp_path: Path) -> None:
    from training.data.format import StickerDataset
    from training.evaluate import evaluate
    from training.pbr_scorer import CheckpointScorer
    from training.train import train

    cfg = tiny_cfg(tiny_root, tmp_path, "model.use_sticker_text=true")
    train(cfg)
    scorer = CheckpointScorer.load(Path(cfg.out_dir) / "best.pt")
    ds = StickerDataset.open(tiny_root)
    on = evaluate(ds, "val", scorer, sticker_text=True)
    off = evaluate(ds, "val", scorer, sticker_text=False)
    assert on["sticker_text"] and not off["sticker_text"]


def test_partial_finetuning_hidden_cache(tiny_root: Path, tmp_path: Path) -> None:
    """text_trainable_layers=1: cached hidden states entering the last layer + that layer in training."""
    from training.train import train

    cfg = tiny_cfg(tiny_root, tmp_path, "model.text_trainable_layers=1", "epochs=1")
    model = build_model(cfg).eval()
    towers = make_towers(model, cfg)
    texts = ["hello there", "a longer dialogue [SEP] with two turns"]
    feats = towers.text.features(texts)
    assert feats.hidden is not None and feats.hidden.dtype == torch.float16
    hidden, mask = feats.gather_hidden(torch.arange(2))
    module = PBRTrainModule(model, cfg.losses, stop_layer(model)).eval()
    enc = towers.tokenizer.encode(texts, max_tokens=model.config.max_tokens)
    with torch.no_grad():
        ref = model.encode_dialogue(torch.from_numpy(enc.input_ids), torch.from_numpy(enc.attention_mask))
        got = module.dialogue({"hidden": hidden, "mask": mask})
    assert torch.allclose(ref, got, atol=2e-3)
    summary = train(cfg)
    assert summary["step"] == 6
    bert = model.text_tower.bert
    h = run_bert_layers(bert, hidden, mask, 1, 2)
    assert h.shape == hidden.shape


# ------------------------------------------------------------------------------------------------ DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, cfg_dict: dict[str, Any], out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    from training.config import TrainConfig
    from training.train import train

    summary = train(TrainConfig.from_dict(cfg_dict))
    Path(out, f"rank{rank}.json").write_text(json.dumps({k: summary[k] for k in ("param_digest", "step")}))


@pytest.mark.slow
def test_ddp_two_ranks_identical_parameters(tiny_root: Path, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    cfg = tiny_cfg(tiny_root, tmp_path, "max_steps=4", "threads=1")
    mp.spawn(_ddp_worker, args=(2, _free_port(), cfg.to_dict(), str(tmp_path)), nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["step"] == r1["step"] == 4
    assert r0["param_digest"] == r1["param_digest"]
    single = json.loads((Path(cfg.out_dir) / "metrics.json").read_text())
    assert single["world_size"] == 2


@pytest.mark.slow
def test_training_under_torchrun_with_two_processes(tiny_root: Path, tmp_path: Path) -> None:
    """The real launcher: `torchrun --nproc_per_node 2 -m training.train --config …` (what a multi-GPU run uses,
    not only DDP spawned from Python)."""
    import subprocess
    import sys

    cfg = tiny_cfg(tiny_root, tmp_path, "max_steps=4", "threads=1")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(cfg.to_dict()))
    torchrun = Path(sys.executable).with_name("torchrun")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "training.train",
            "--config",
            str(config),
        ],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((Path(cfg.out_dir) / "metrics.json").read_text())
    assert metrics["world_size"] == 2


def test_hidden_state_cache_key_ignores_the_trainable_top_layers():
    """A fine-tune from another checkpoint of the same base must reuse the cached states entering the
    trainable layers; a change below them must not."""
    import torch

    from training.features import frozen_prefix_digest
    from training.model import build_tiny_pbr

    bert = build_tiny_pbr(seed=0).text_tower.bert
    before = frozen_prefix_digest(bert, 1)
    with torch.no_grad():
        bert.encoder.layer[1].output.dense.weight.add_(1.0)  # a trainable (top) layer moves
    assert frozen_prefix_digest(bert, 1) == before
    with torch.no_grad():
        bert.encoder.layer[0].output.dense.weight.add_(1.0)  # a frozen layer below moves
    assert frozen_prefix_digest(bert, 1) != before


# ------------------------------------------------------------------------------------------------ image blocks
def test_trainable_image_blocks_train_on_cached_maps(tiny_root: Path, tmp_path: Path) -> None:
    """With image_trainable_blocks=N the cache holds the maps entering the first trainable block; training
    runs only those blocks and moves only them, and the maps through them equal the whole tower."""
    from training.build import image_stop

    cfg = tiny_cfg(
        tiny_root, tmp_path, "model.image_trainable_blocks=1", "data.cross_style=0.5", "optim.image_lr=0.01"
    )
    model = build_model(cfg)
    stop = image_stop(model)
    assert stop == model.image_tower.num_blocks - 1
    towers = make_towers(model, cfg)
    data = prepare_train_data(cfg, towers)
    assert towers.cache.builds.get("image-maps") == 1 and "image-views" not in towers.cache.builds
    assert data.view_feats.dim() == 5 and data.view_feats.dtype == torch.float16
    tower = model.image_tower.eval()
    with torch.no_grad():
        from engine.preprocess import image_to_array
        from training.data.format import load_sticker_image

        px = torch.from_numpy(
            image_to_array(load_sticker_image(data.stickers.paths[0]), model.config.image_spec())
        )
        whole = tower(px.unsqueeze(0))
        via_cache = tower.suffix(data.view_feats[0, :1].float(), stop)
    assert torch.allclose(whole, via_cache, atol=2e-2)  # fp16 maps
    module = PBRTrainModule(model, cfg.losses, stop_layer(model))
    module.freeze_unused()
    trainable = {n for n, p in model.image_tower.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith((f"blocks.{stop}.", "head.")) for n in trainable)
    before = {n: p.detach().clone() for n, p in model.image_tower.named_parameters()}
    from training.train import param_groups

    opt = torch.optim.AdamW(param_groups(module, cfg))
    assert any(g["lr"] == pytest.approx(0.01) for g in opt.param_groups)
    module.train()
    rows = rank_batches(epoch_order(data, 0, 0), 32, 0, 1)[0]
    loss, _ = module(make_batch(data, rows, torch.Generator().manual_seed(0)))
    loss.backward()
    opt.step()
    moved = {n for n, p in model.image_tower.named_parameters() if not torch.equal(before[n], p.detach())}
    assert moved and moved <= trainable
    # A changed trainable block leaves the cached maps valid: a second run computes nothing.
    towers2 = make_towers(model, cfg, FeatureCache(cfg.data.cache_dir))
    prepare_train_data(cfg, towers2)
    assert "image-maps" not in towers2.cache.builds
