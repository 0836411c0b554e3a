"""Fuzzing the pack metadata next to the media fuzzing (tests/engine/test_media.py): whatever a
pack's ``pack.json`` or ``emoji_mapping.txt`` holds, reading a pack gives entries with clean string fields or
one PackError, never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.library import InvalidPackJson, PackError, UnreadableMetadata, iter_pack_source, parse_pack_json
from tests.auxil import media

PNG = media.png_bytes(8, 8)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
)
_sticker = st.fixed_dictionaries(
    {},
    optional={"file": _json | st.just("a.png"), "id": _json, "emoji": _json, "tags": _json, "extra": _json},
)
# near-valid documents reach deeper into the schema than random JSON does
_pack_doc = st.fixed_dictionaries(
    {}, optional={"name": _json, "title": _json, "stickers": st.lists(_sticker, max_size=4) | _json}
)


def _read(folder: Path) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    meta, entries, _ = iter_pack_source(folder, max_files=10, max_bytes=1 << 20)
    assert isinstance(meta, dict)
    out = [(e.file, e.sticker_id, e.emoji, e.tags) for e in entries]
    for file, sticker_id, emoji, tags in out:
        assert isinstance(file, str) and isinstance(sticker_id, str)
        assert emoji is None or isinstance(emoji, str)
        assert all(isinstance(t, str) for t in tags)
    return out


def _pack(pack_json: bytes | None, mapping: bytes | None) -> list | None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "a.png").write_bytes(PNG)
        (folder / "1f600.png").write_bytes(PNG)
        if pack_json is not None:
            (folder / "pack.json").write_bytes(pack_json)
        if mapping is not None:
            (folder / "emoji_mapping.txt").write_bytes(mapping)
        try:
            return _read(folder)
        except PackError as exc:
            assert isinstance(exc, InvalidPackJson | UnreadableMetadata), exc  # the metadata's, typed
            assert str(exc) and "\n" not in str(exc)
            return None


@FUZZ
@given(doc=_pack_doc | _json)
def test_any_json_pack_json_reads_or_gives_one_pack_error(doc):
    try:
        meta = parse_pack_json(json.dumps(doc))
    except InvalidPackJson:
        return
    assert set(meta) >= {"name", "title", "stickers"}
    assert all(isinstance(s["file"], str) for s in meta["stickers"])
    assert _pack(json.dumps(doc).encode(), None) is not None


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_as_pack_json(raw: bytes):
    _pack(raw, None)


@FUZZ
@given(
    lines=st.lists(
        st.tuples(st.sampled_from(["a", "1f600", "", " a ", "x"]) | st.text(max_size=8), st.text(max_size=8)),
        max_size=6,
    ).map(lambda rows: "\n".join("\t".join(r) for r in rows).encode()),
    noise=st.binary(max_size=64),
)
def test_any_emoji_mapping_txt(lines: bytes, noise: bytes):
    _pack(None, lines)
    _pack(None, noise)
    _pack(json.dumps({"stickers": [{"file": "a.png"}]}).encode(), lines + noise)
