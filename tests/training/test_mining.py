from __future__ import annotations

import torch

from engine.preprocess import dialogue_to_text
from training.emotions import EMOTION_INDEX
from training.losses import (
    HardNegativeMiner,
    dialogue_polarity,
    mine_hard_negatives,
    polarity_agreement,
    sticker_polarity,
)

NEG, NEU, POS = torch.eye(3)


def _pol(*rows: torch.Tensor) -> torch.Tensor:
    return torch.stack(rows)


def test_never_returns_the_positive_its_duplicates_or_the_same_id_twice() -> None:
    g = torch.Generator().manual_seed(0)
    for trial in range(30):
        nd, ns = 8, 10
        sticker_ids = torch.randint(0, 5, (ns,), generator=g)  # many duplicate ids
        positive_ids = sticker_ids[torch.randint(0, ns, (nd,), generator=g)]
        sim = torch.rand(nd, ns, generator=g)
        # make the positive's copies the most similar columns: the tempting mistake
        sim[positive_ids[:, None] == sticker_ids[None, :]] += 5
        dpol = torch.nn.functional.one_hot(torch.randint(0, 3, (nd,), generator=g), 3).float()
        spol = torch.softmax(torch.randn(ns, 3, generator=g), -1)
        neg = mine_hard_negatives(
            sim, dpol, spol, positive_ids, sticker_ids, num_negatives=3, pool_size=5, generator=g
        )
        assert neg.stickers_for_dialogue.shape == (nd, 3) and neg.dialogues_for_sticker.shape == (ns, 3)
        for i in range(nd):
            cols = [c for c in neg.stickers_for_dialogue[i].tolist() if c >= 0]
            ids = [int(sticker_ids[c]) for c in cols]
            assert int(positive_ids[i]) not in ids, trial
            assert len(set(ids)) == len(ids), trial
            # as many as there are other distinct ids (up to 3)
            other = len(set(sticker_ids.tolist()) - {int(positive_ids[i])})
            assert len(cols) == min(3, other)
        for j in range(ns):
            rows = [r for r in neg.dialogues_for_sticker[j].tolist() if r >= 0]
            assert len(set(rows)) == len(rows)
            assert all(int(positive_ids[r]) != int(sticker_ids[j]) for r in rows), trial
        d_idx, s_idx = neg.pairs()
        assert (positive_ids[d_idx] != sticker_ids[s_idx]).all()
        assert len(set(zip(d_idx.tolist(), s_idx.tolist(), strict=True))) == len(d_idx)


def test_string_ids_and_padding_when_no_negative_exists() -> None:
    sim = torch.ones(2, 2)
    pol = _pol(NEU, NEU)
    neg = mine_hard_negatives(sim, pol, pol, ["a", "a"], ["a", "a"], num_negatives=2)
    assert (neg.stickers_for_dialogue == -1).all() and (neg.dialogues_for_sticker == -1).all()
    d_idx, s_idx = neg.pairs()
    assert d_idx.numel() == 0 and s_idx.numel() == 0


def test_prefers_polarity_agreeing_negatives_when_similarities_tie() -> None:
    # in-batch: dialogue i's positive is sticker i; all cross similarities tie at 0.3
    sim = torch.full((4, 4), 0.3)
    sim.fill_diagonal_(0.9)
    dpol = _pol(POS, NEG, NEU, POS)
    spol = _pol(NEG, NEU, POS, NEG)
    ids = ["s0", "s1", "s2", "s3"]
    for sample in (False, True):
        for seed in range(5):
            g = torch.Generator().manual_seed(seed)
            neg = mine_hard_negatives(sim, dpol, spol, ids, ids, pool_size=1, sample=sample, generator=g)
            # dialogue 0 (positive): sticker 2 is the only other positive sticker
            assert neg.stickers_for_dialogue[0].tolist() == [2]
            # dialogue 1 (negative): stickers 0 and 3 are negative → either, never 2
            assert neg.stickers_for_dialogue[1].item() in (0, 3)
            # sticker 2 (positive): dialogues 0 and 3 are positive
            assert neg.dialogues_for_sticker[2].item() in (0, 3)
            # sticker 1 (neutral): dialogue 2 is the neutral one
            assert neg.dialogues_for_sticker[1].tolist() == [2]


def test_similarity_still_counts_and_lambda_zero_ignores_polarity() -> None:
    sim = torch.tensor([[0.9, 0.8, 0.1], [0.0, 0.9, 0.0], [0.0, 0.0, 0.9]])
    dpol = _pol(POS, NEU, NEU)
    spol = _pol(POS, NEG, POS)
    ids = [0, 1, 2]
    # λ = 0.5: 0.8 + 0 beats 0.1 + 0.5
    neg = mine_hard_negatives(sim, dpol, spol, ids, ids, pool_size=1, polarity_weight=0.5, sample=False)
    assert neg.stickers_for_dialogue[0].item() == 1
    # λ = 1: 0.1 + 1 beats 0.8
    neg = mine_hard_negatives(sim, dpol, spol, ids, ids, pool_size=1, polarity_weight=1.0, sample=False)
    assert neg.stickers_for_dialogue[0].item() == 2


def test_sampling_stays_in_the_pool_and_is_reproducible() -> None:
    sim = torch.tensor([[1.0, 0.9, 0.8, 0.1, 0.0, -0.5]])
    ids = list(range(6))
    pol = _pol(NEU)
    spol = torch.stack([NEU] * 6)
    miner = HardNegativeMiner(num_negatives=1, pool_size=3, polarity_weight=0.0)
    seen = set()
    for seed in range(40):
        a = miner(sim, pol, spol, [0], ids, generator=torch.Generator().manual_seed(seed))
        b = miner(sim, pol, spol, [0], ids, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(a.stickers_for_dialogue, b.stickers_for_dialogue)
        seen.add(a.stickers_for_dialogue.item())
    assert seen == {1, 2, 3}


def test_dialogue_ids_dedupe_the_sticker_direction() -> None:
    sim = torch.tensor([[0.9, 0.5], [0.9, 0.5], [0.1, 0.9]])
    pol = torch.stack([NEU] * 3)
    neg = mine_hard_negatives(
        sim, pol, pol[:2], ["a", "a", "b"], ["a", "b"], dialogue_ids=[7, 7, 8], num_negatives=3, pool_size=3
    )
    rows = [r for r in neg.dialogues_for_sticker[1].tolist() if r >= 0]
    assert rows == [0]  # dialogue 1 repeats dialogue 0; dialogue 2 is sticker b's own


def test_vader_dialogue_polarity_uses_the_last_turns() -> None:
    texts = [
        dialogue_to_text(["what a day", "I love this, it's wonderful!"]),
        dialogue_to_text(["ok", "this is terrible, I hate it"]),
        dialogue_to_text(["the meeting is at five"]),
        dialogue_to_text(["I hate everything", "we left at nine", "the bus comes at ten"]),
    ]
    pol = dialogue_polarity(texts, last_turns=2)
    assert pol.argmax(-1).tolist() == [2, 0, 1, 1]
    assert torch.equal(pol.sum(-1), torch.ones(4))
    assert dialogue_polarity(texts[3:], last_turns=None).argmax(-1).item() == 0


def test_sticker_polarity_from_the_emotion_head() -> None:
    logits = torch.full((5, 7), -20.0)
    for row, emotion in enumerate(["happiness", "surprise", "anger", "disgust", "neutral"]):
        logits[row, EMOTION_INDEX[emotion]] = 20.0
    pol = sticker_polarity(logits)
    assert pol.argmax(-1).tolist() == [2, 2, 0, 0, 1]
    assert torch.allclose(pol.sum(-1), torch.ones(5))
    uniform = sticker_polarity(torch.zeros(1, 7))
    assert torch.allclose(uniform, torch.tensor([[4 / 7, 1 / 7, 2 / 7]]))
    agree = polarity_agreement(_pol(POS, NEG), pol)
    assert agree.shape == (2, 5) and agree[0, 0] > 0.99 and agree[1, 2] > 0.99 and agree[0, 2] < 0.01
