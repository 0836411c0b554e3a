"""The chat-log simulator on tiny generated dialogues: chats, preferences, time split, export format."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from retraining.retrain import PriorScorer
from retraining.simulate_logs import CachedScorer, dialogues, main, simulate
from training.chatlogs import read_meta
from training.data.format import CurrentSticker, Sample, StickerDataset, StickerEntry, Turn, write_dataset
from training.evaluate import evaluate

EMOJI = ["😄", "😢", "😠", "😮", "😨", "🤢", "😐"]


def make_accompany(
    root: Path, n_dialogues: int = 80, turns: int = 5, seed: int = 0, majority: float = 0.0
) -> Path:
    """Dialogues as an accompany dataset writes them: one sample per turn, the context growing."""
    rng = np.random.default_rng(seed)
    ids = [f"g-{i}" for i in range(len(EMOJI))]
    stickers = [
        StickerEntry("g", ids[i], np.full((8, 8, 3), 30 * i, dtype=np.uint8), e) for i, e in enumerate(EMOJI)
    ]
    out = []
    for d in range(n_dialogues):
        ctx: list[Turn] = []
        for t in range(turns):
            ctx.append(Turn(text=f"dialogue {d} turn {t}", id=str(t), from_id=str(t % 2)))
            i = len(EMOJI) - 1 if rng.random() < majority else int(rng.integers(len(EMOJI)))
            out.append(
                Sample(
                    context=tuple(ctx),
                    current=CurrentSticker("g", ids[i], EMOJI[i], str(t % 2)),
                    candidates=tuple(ids),
                )
            )
    write_dataset(root, {"train": out, "val": out[:5]}, stickers, overwrite=True)
    return root


class Flat:
    name = "flat"

    def score(self, samples, candidates, dataset, sticker_text):  # type: ignore[no-untyped-def]
        return [np.zeros(len(c)) for c in candidates]


def test_simulate_chats_split_and_format(tmp_path: Path) -> None:
    src = make_accompany(tmp_path / "src")
    assert len(dialogues(StickerDataset.open(src).load("train"))) == 80
    info = simulate(src, tmp_path / "sim", chats=4, samples=100, habit=1.0, seed=1, salt=b"pepper")
    logs = tmp_path / "sim" / "logs"
    assert info["samples"]["train"] + info["samples"]["val"] == 100
    assert info["chats"] == 4 and info["stickers"] == 7
    ds = StickerDataset.open(logs)
    train, val = ds.load("train"), ds.load("val")
    mtrain, mval = read_meta(logs, "train"), read_meta(logs, "val")
    assert len(mtrain) == len(train) and len(mval) == len(val)
    assert max(m["at"] for m in mtrain) < min(m["at"] for m in mval)  # held-back slice is the latest
    assert all(len(ds.candidates(s)) == 7 for s in val)
    text = "".join(p.read_text() for p in logs.glob("release_*"))
    assert "sim:" not in text and "pepper" not in text  # salted ids, as `stickerpick data export` writes
    # habit=1: every chat always sends its favourite sticker, one sticker per chat
    per_chat: dict[str, Counter[str]] = {}
    for s, m in zip(train, mtrain, strict=True):
        per_chat.setdefault(m["chat"], Counter())[s.current.sticker_id] += 1
    assert all(len(c) == 1 for c in per_chat.values())
    # the tuning split is the train slice alone, its newest part as val
    tune = tmp_path / "sim" / "logs-tune"
    assert sum(info["tune"].values()) == len(train)
    assert max(m["at"] for m in read_meta(tune, "val")) < min(m["at"] for m in mval)
    # the usage prior learns the preference a flat model cannot
    flat = evaluate(ds, "val", CachedScorer(Flat()))
    prior = evaluate(StickerDataset.open(logs), "val", PriorScorer(CachedScorer(Flat()), logs, 1.0))
    assert prior["R@1"] == pytest.approx(100.0) and flat["R@1"] < 60


def test_balance_flattens_the_majority_class(tmp_path: Path) -> None:
    src = make_accompany(tmp_path / "src", majority=0.8)
    for balance, low, high in ((0.0, 0.7, 1.0), (1.0, 0.0, 0.4)):
        out = tmp_path / f"b{balance}"
        simulate(src, out, chats=3, samples=60, habit=0.0, alpha=1000.0, balance=balance)
        ds = StickerDataset.open(out / "logs")
        gold = [s.current.alt for split in ("train", "val") for s in ds.load(split)]
        assert low <= gold.count(EMOJI[-1]) / len(gold) <= high


def test_cli_simulate_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_accompany(tmp_path / "src", n_dialogues=30)
    main(
        [
            "--source",
            str(src),
            "--out",
            str(tmp_path / "o"),
            "--samples",
            "40",
            "--chats",
            "3",
            "--simulate-only",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert out["samples"]["train"] + out["samples"]["val"] == 40
    assert (tmp_path / "o" / "simulation.json").is_file()
