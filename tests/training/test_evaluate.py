"""EngineScorer as /sticker ranks: the dual encoder's shortlist re-ordered by the matching head, above the rest."""

from __future__ import annotations

import numpy as np
import pytest

from engine.ranking import PBRRanker
from export.pbr import export_pbr
from tests.training.tiny_data import make_dataset
from training.data.format import StickerDataset
from training.evaluate import EngineScorer, evaluate
from training.model import build_tiny_pbr, save_checkpoint


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[PBRRanker, StickerDataset]:
    tmp = tmp_path_factory.mktemp("evaluate")
    ckpt = save_checkpoint(tmp / "tiny.pt", build_tiny_pbr(seed=2, use_sticker_text=True).eval())
    export_pbr(ckpt, tmp / "model", quantize=False)
    return PBRRanker(tmp / "model"), StickerDataset.open(make_dataset(tmp / "ds", n_train=8, n_val=12))


def test_the_shortlist_is_ordered_by_the_matching_head_and_the_rest_by_the_dual_encoder(served) -> None:  # type: ignore[no-untyped-def]
    ranker, ds = served
    samples = ds.load("val")
    candidates = [ds.candidates(s) for s in samples]
    dual = EngineScorer(ranker).score(samples, candidates, ds, sticker_text=False)
    head = EngineScorer(ranker, rerank_top=3).score(samples, candidates, ds, sticker_text=False)
    assert "matching head over the top 3" in EngineScorer(ranker, rerank_top=3).name
    moved = 0
    for d, h, s in zip(dual, head, samples, strict=True):
        assert len(d) > 3
        short = np.argsort(-d, kind="stable")[:3]
        rest = np.argsort(-d, kind="stable")[3:]
        assert set(np.argsort(-h, kind="stable")[:3]) == set(short)  # the shortlist stays on top
        np.testing.assert_array_equal(
            np.argsort(-h[rest], kind="stable"), np.argsort(-d[rest], kind="stable")
        )
        q = ranker.embed_dialogues([ranker.dialogue_text([t.text for t in s.context])])[0]
        vecs = EngineScorer(ranker).sticker_vectors(ds.candidates(s), ds, False, {})
        logits = ranker.rerank_scores(q, np.stack([vecs[ds.candidates(s)[i]] for i in short]))
        assert list(short[np.argsort(-logits, kind="stable")]) == list(np.argsort(-h, kind="stable")[:3])
        moved += list(short[np.argsort(-logits, kind="stable")]) != list(short)
    assert moved  # the head changed some orders: the rows measure something else than the dual encoder's
    assert evaluate(ds, "val", EngineScorer(ranker, rerank_top=3))["n"] == len(samples)
