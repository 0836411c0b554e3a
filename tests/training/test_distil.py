"""Distilling a dialogue tower into a served model's space: held-out languages stay unread, the student learns the
teacher's vectors, and the exported directory serves what the student computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.preprocess import TextTokenizer
from engine.ranking import PBRRanker
from export.distilled import export_distilled
from export.pbr import export_pbr
from tests.training.tiny_data import make_dataset
from training.distil import DistilConfig, FrozenCache, Source, build_corpus, run, student_pooled
from training.model import build_tiny_pbr, save_checkpoint
from training.model._towers import bert_from_config


def _emojibase(root: Path) -> Path:
    """en, one training locale (fr) and a held-out one (de): the German names must never be read."""
    entries = {
        "en": [("😂", "face with tears of joy", ["laugh"]), ("😢", "crying face", ["sad", "tear"])],
        "fr": [("😂", "visage riant aux larmes", ["rire"]), ("😢", "visage qui pleure", ["triste"])],
        "de": [("😂", "Gesicht mit Freudentränen", ["lachen"]), ("😢", "weinendes Gesicht", ["traurig"])],
    }
    for loc, rows in entries.items():
        (root / loc).mkdir(parents=True)
        data = [{"emoji": e, "label": label, "tags": tags} for e, label, tags in rows]
        (root / loc / "data.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return root


def _torch_pooled(student: Path, texts: list[str], max_tokens: int) -> np.ndarray:
    """The student's mean-pooled vectors, computed by PyTorch: what its served ONNX tower must match."""
    from training.model._towers import load_bert

    bert = load_bert(student).eval()
    enc = TextTokenizer(student / "tokenizer.json", max_tokens).encode(texts)
    with torch.no_grad():
        hidden = bert(
            input_ids=torch.from_numpy(enc.input_ids), attention_mask=torch.from_numpy(enc.attention_mask)
        ).last_hidden_state.numpy()
    m = enc.attention_mask[..., None]
    return (hidden * m).sum(1) / m.sum(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("distil")
    teacher = build_tiny_pbr(seed=1, use_sticker_text=True).eval()
    export_pbr(save_checkpoint(tmp / "t.pt", teacher), tmp / "teacher", quantize=False)
    torch.manual_seed(0)  # the untrained student, and so the gap it starts from, is the same every run
    bert = bert_from_config(teacher.text_tower.bert.config.to_dict())
    bert.save_pretrained(tmp / "student0")
    (tmp / "student0" / "tokenizer.json").write_bytes((tmp / "teacher" / "tokenizer.json").read_bytes())
    cfg = DistilConfig(
        teacher_dir=str(tmp / "teacher"),
        student_dir=str(tmp / "student0"),
        out_dir=str(tmp / "run"),
        cache_dir=str(tmp / "cache"),
        sources=[Source(str(make_dataset(tmp / "ds", n_train=48, n_val=8)), max_samples=40)],
        emojibase=str(_emojibase(tmp / "emojibase")),
        frozen_layers=1,
        max_tokens=16,
        sticker_text_max_tokens=8,
        steps=40,
        batch_size=8,
        lr=1e-3,
        warmup_steps=5,
    )
    return tmp, cfg


def test_held_out_languages_are_never_read(setup) -> None:  # type: ignore[no-untyped-def]
    _, cfg = setup
    corpus, stickers = build_corpus(cfg, PBRRanker(Path(cfg.teacher_dir)))
    joined = " ".join(corpus.texts)
    assert "visage qui pleure" in joined and "crying face" in joined
    assert "weinendes" not in joined and "Freudentränen" not in joined
    french = corpus.texts.index(next(t for t in corpus.texts if "visage qui pleure" in t))
    assert "crying face" in (corpus.target_text[french] or "")  # pulled to the English name's vector
    labelled = [i for i, c in enumerate(corpus.candidates) if c is not None]
    assert labelled and all(corpus.candidates[i][corpus.gold[i]] in stickers for i in labelled)


def test_the_student_learns_the_teachers_vectors_and_serves_them(setup) -> None:  # type: ignore[no-untyped-def]
    tmp, cfg = setup
    teacher = PBRRanker(Path(cfg.teacher_dir))
    texts = ["i finally passed the exam", "my cat is sick", "laugh"]
    want = teacher.text.encode(texts, normalise=False)

    def gap(student_dir: Path) -> float:
        ranker_like = TextTokenizer(student_dir / "tokenizer.json", cfg.max_tokens)
        from training.model._towers import load_bert

        bert = load_bert(student_dir).eval()
        cache = FrozenCache(bert, ranker_like, cfg.frozen_layers)
        cache.build(texts, [cfg.max_tokens] * len(texts))
        with torch.no_grad():
            got = student_pooled(bert, cfg.frozen_layers, *cache.batch(list(range(len(texts))))).numpy()
        return float(((got - want) ** 2).mean())

    before = gap(Path(cfg.student_dir))
    student = run(cfg)
    assert gap(student) < 0.6 * before  # untrained it stays near 1.0x

    export_distilled(Path(cfg.teacher_dir), student, tmp / "served", quantize=False)
    served = PBRRanker(tmp / "served")
    manifest = json.loads((tmp / "served" / "manifest.json").read_text())
    assert manifest["base_version"] == teacher.version != served.version
    for name in ("image.onnx", "match.onnx", "heads.npz"):  # everything but the text tower is the base's
        assert (tmp / "served" / name).read_bytes() == (Path(cfg.teacher_dir) / name).read_bytes()
    np.testing.assert_allclose(
        served.text.encode(texts, normalise=False), _torch_pooled(student, texts, cfg.max_tokens), atol=1e-4
    )


def test_a_stopped_run_resumes_where_it_stopped(setup) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from training.model._towers import load_bert

    tmp, cfg = setup
    straight = run(dataclasses.replace(cfg, steps=12, out_dir=str(tmp / "straight")))
    run(dataclasses.replace(cfg, steps=6, out_dir=str(tmp / "resumed")))  # "killed" after 6 steps
    resumed = run(dataclasses.replace(cfg, steps=12, out_dir=str(tmp / "resumed")))
    a, b = load_bert(straight).state_dict(), load_bert(resumed).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert len(list((tmp / "cache").glob("distil-*.pt"))) == 1  # the frozen states were computed once


def test_a_routed_directory_reads_english_with_the_base_and_other_languages_with_the_student(setup) -> None:  # type: ignore[no-untyped-def]
    from engine.model_check import check_model_dir
    from engine.ranking import read_manifest
    from export.distilled import carry_multilingual

    tmp, cfg = setup
    student = run(cfg)
    teacher_dir = Path(cfg.teacher_dir)
    export_distilled(teacher_dir, student, tmp / "swapped", quantize=False)
    export_distilled(teacher_dir, student, tmp / "routed", quantize=False, routed=True)
    teacher, swapped, routed = PBRRanker(teacher_dir), PBRRanker(tmp / "swapped"), PBRRanker(tmp / "routed")
    english = ["i finally passed the exam", "my cat is sick and i am sad"]
    other = ["Ich bin so traurig, mein Hund ist gestorben", "мне так грустно, моя собака умерла"]
    assert [routed.dialogue_tower(t) for t in english + other] == ["english"] * 2 + ["multilingual"] * 2
    mixed = routed.embed_dialogues(english + other)
    np.testing.assert_allclose(mixed[:2], teacher.embed_dialogues(english), atol=1e-5)
    np.testing.assert_allclose(mixed[2:], swapped.embed_dialogues(other), atol=1e-5)
    assert not np.allclose(mixed[2:], teacher.embed_dialogues(other), atol=1e-3)
    for name in ("text.onnx", "tokenizer.json", "image.onnx", "match.onnx"):
        assert (tmp / "routed" / name).read_bytes() == (teacher_dir / name).read_bytes()
    manifest = read_manifest(tmp / "routed", verify_hashes=True)
    assert manifest["dialogue_routing"]["other"] == "text_multilingual"
    assert check_model_dir(tmp / "routed").ok
    # a routed base whose second tower was an average: a new student replaces it, and the note about it goes
    noted = json.loads((tmp / "routed" / "manifest.json").read_text())
    (tmp / "routed" / "manifest.json").write_text(
        json.dumps({**noted, "averaged": {"role": "text_multilingual"}})
    )
    again = export_distilled(tmp / "routed", student, tmp / "rerouted", quantize=False, routed=True)
    assert "averaged" not in again and again["dialogue_routing"]["other"] == "text_multilingual"
    (tmp / "routed" / "manifest.json").write_text(json.dumps(noted))

    # A retraining candidate is exported English-only; it keeps the serving model's tower for other languages.
    export_pbr(tmp / "t.pt", tmp / "candidate", quantize=False)
    assert carry_multilingual(tmp / "candidate", tmp / "candidate") is None  # nothing to carry from it
    carry_multilingual(tmp / "routed", tmp / "candidate")
    candidate = PBRRanker(tmp / "candidate")
    np.testing.assert_allclose(candidate.embed_dialogues(other), mixed[2:], atol=1e-5)
    read_manifest(tmp / "candidate", verify_hashes=True)
    report = check_model_dir(tmp / "candidate")
    assert report.ok and "multilingual text tower" in [t.name for t in report.towers]


def test_labels_can_score_against_the_stickers_with_their_text(setup) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from training.distil import with_text

    tmp, cfg = setup
    mixed = dataclasses.replace(cfg, label_sticker_text=0.5, steps=4, out_dir=str(tmp / "mixed"))
    corpus, stickers = build_corpus(mixed, PBRRanker(Path(cfg.teacher_dir)))
    plain = [k for k in stickers if not k.startswith("text:")]
    assert plain and all(f"text:{k}" in stickers for k in plain)
    assert any(not np.allclose(stickers[k], stickers[f"text:{k}"]) for k in plain)  # the text moved them
    labelled = [i for i, c in enumerate(corpus.candidates) if c is not None]
    share = sum(with_text(i, 0.5) for i in labelled) / len(labelled)
    assert 0.2 < share < 0.8 and not any(with_text(i, 0.0) for i in labelled)
    assert run(mixed).is_dir()


def test_a_shallower_student_keeps_the_chosen_layers_and_serves_at_its_depth(setup) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from training.distil import keep_layers
    from training.model._towers import load_bert

    tmp, cfg = setup
    full = load_bert(cfg.student_dir)
    assert len(full.encoder.layer) == 2
    top = full.encoder.layer[1].state_dict()
    shallow = keep_layers(load_bert(cfg.student_dir), [1])
    assert shallow.config.num_hidden_layers == len(shallow.encoder.layer) == 1
    kept = shallow.encoder.layer[0].state_dict()
    assert all(torch.equal(kept[k], top[k]) for k in top)  # layer 1 itself, not a fresh one
    for bad in ([2], [0, 0], [-1]):
        with pytest.raises(ValueError, match="student_layers"):
            keep_layers(load_bert(cfg.student_dir), bad)

    one = dataclasses.replace(
        cfg, student_layers=[1], frozen_layers=0, steps=4, out_dir=str(tmp / "one-layer")
    )
    student = run(one)
    assert load_bert(student).config.num_hidden_layers == 1
    export_distilled(Path(cfg.teacher_dir), student, tmp / "one-layer-served", quantize=False)
    texts = ["i finally passed the exam", "my cat is sick"]
    served = PBRRanker(tmp / "one-layer-served")
    np.testing.assert_allclose(
        served.text.encode(texts, normalise=False), _torch_pooled(student, texts, cfg.max_tokens), atol=1e-4
    )


def test_the_served_space_terms_vanish_on_the_teachers_vectors_and_pull_toward_them(setup) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from training.distil import Batches, teacher_targets

    tmp, cfg = setup
    teacher = PBRRanker(Path(cfg.teacher_dir))
    corpus, stickers = build_corpus(cfg, teacher)
    targets, has = teacher_targets(teacher, corpus)
    batches = Batches.of(corpus, stickers, targets, has, teacher.heads)
    both = dataclasses.replace(cfg, proj_weight=1.0, rank_kd_weight=1.0)
    idx = [i for i in range(len(corpus.texts)) if has[i] and corpus.candidates[i] is not None][:6]
    assert idx  # English labelled dialogues: a teacher target and candidates
    exact = batches.targets[torch.tensor(idx)].clone().requires_grad_(True)
    _, parts = batches.loss(both, idx, exact)
    assert parts["mse"] == pytest.approx(0, abs=1e-9)
    assert parts["proj"] == pytest.approx(0, abs=1e-5) and parts["kd"] == pytest.approx(0, abs=1e-5)
    torch.manual_seed(0)
    off = (exact.detach() + 0.5 * torch.randn_like(exact)).requires_grad_(True)
    loss, parts = batches.loss(both, idx, off)
    assert parts["proj"] > 0.01 and parts["kd"] > 1e-4
    loss.backward()  # a step against the gradient brings the student's served vectors nearer the teacher's
    _, after = batches.loss(both, idx, (off - 0.5 * off.grad).detach())
    assert after["proj"] < parts["proj"] and after["kd"] < parts["kd"]
    _, plain = batches.loss(cfg, idx, off)  # off by default: the loss is the MSE and labels alone
    assert plain["proj"] == pytest.approx(parts["proj"]) and float(loss.detach()) > plain["mse"] + plain["ce"]
    assert run(dataclasses.replace(both, steps=4, out_dir=str(tmp / "served-space"))).is_dir()


def test_a_balanced_source_keeps_as_many_samples_of_each_sticker() -> None:
    from collections import Counter

    from training.data.format import CurrentSticker, Sample, Turn
    from training.distil import _balanced

    golds = ["anger"] * 50 + ["joy"] * 30 + ["fear"] * 8
    samples = [
        Sample(context=(Turn(f"line {i}"),), current=CurrentSticker("s", g)) for i, g in enumerate(golds)
    ]
    rng = np.random.default_rng(0)
    kept = _balanced(samples, 100, rng)
    assert Counter(s.current.sticker_id for s in kept) == {"anger": 8, "joy": 8, "fear": 8}  # the rarest's 8
    assert [s.context[0].text for s in kept] == sorted(
        (s.context[0].text for s in kept), key=lambda t: int(t.split()[1])
    )  # in their original order
    small = _balanced(samples, 9, rng)  # fewer wanted than the rarest has: 3 of each
    assert Counter(s.current.sticker_id for s in small) == {"anger": 3, "joy": 3, "fear": 3}
