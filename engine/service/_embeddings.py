"""Sticker embeddings (memory → database → the model, once per model version) and the per-chat matrices
suggestions are ranked against."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
from cachetools import LRUCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db import ChatPack, Pack, Sticker, StickerEmbedding
from engine.ranking import PackRanker, Ranker, StickerInput, per_pack
from engine.settings import Settings
from engine.store import MediaStore

EMBED_BATCH = 64  # stickers per call to the image/text tower
_READ_CHUNK = 900  # ids per IN (...) query: under SQLite's bound-parameter limit
_WRITE_CHUNK = 500  # stored vectors per INSERT statement


# What one held vector costs beyond its floats: the numpy array object and the bytes it was read from.
_VECTOR_OVERHEAD = 160


class EmbeddingCache:
    """Every sticker's vector per model version: memory cache → database → computed (then stored). The memory
    cache holds the most recently used vectors within ``budget_mb`` (a library of a million stickers does not
    fit in memory, and every chat's matrix is built from it, then kept by the ``MatrixCache``)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], store: MediaStore, budget_mb: float = 64.0
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.budget = int(budget_mb * 2**20)
        self._vectors: dict[str, LRUCache[int, np.ndarray]] = {}

    def vectors(self, version: str) -> LRUCache[int, np.ndarray]:
        """The vectors held in memory for one model version (sticker id → vector), least recently used
        first out."""
        held = self._vectors.get(version)
        if held is None:
            held = self._vectors[version] = LRUCache(self.budget, getsizeof=_held_size)
        return held

    @property
    def nbytes(self) -> int:
        """The memory the held vectors take (estimated: their floats and their objects)."""
        return int(sum(c.currsize for c in self._vectors.values()))

    def clear(self) -> None:
        """Forget every vector held in memory (they come back from the database)."""
        self._vectors.clear()

    def keep_only(self, version: str) -> None:
        """After a model swap: other versions' vectors stay in the database only."""
        for old in [v for v in self._vectors if v != version]:
            del self._vectors[old]

    async def embed_pack(self, pack_id: int, ranker: Ranker) -> None:
        async with self.sessions() as session:
            ids = list(
                (await session.execute(select(Sticker.id).where(Sticker.pack_id == pack_id))).scalars()
            )
        await self.ensure(ranker, ids)

    async def reembed_all(self, ranker: Ranker, progress: Callable[[int, int], None] | None = None) -> int:
        """Embed every sticker in the library with ``ranker`` (the batch job after a model change)."""
        async with self.sessions() as session:
            ids = list((await session.execute(select(Sticker.id))).scalars())
        for start in range(0, len(ids), 512):
            await self.ensure(ranker, ids[start : start + 512])
            if progress:
                progress(min(start + 512, len(ids)), len(ids))
        return len(ids)

    async def ensure(
        self, ranker: Ranker, sticker_ids: Sequence[int], stored: Mapping[int, bytes] | None = None
    ) -> dict[int, np.ndarray]:
        """Embed each sticker once per model version: memory cache → database → compute (then store).
        Returns the vectors of ``sticker_ids`` (all of them, even those the memory budget let go).
        ``stored``: vectors the caller already read from the database (sticker id → its bytes); they win over
        the memory cache (another worker may have embedded a grown pack again).

        A ranker that names per pack (:func:`~engine.ranking.per_pack`) embeds every pack with a missing
        sticker whole, again: a pack only grows, so a missing sticker means it is new to the pack (or the
        model is), and its arrival can change its pack-mates' names."""
        cache = self.vectors(ranker.version)
        found: dict[int, np.ndarray] = {}
        missing = []
        for i in sticker_ids:
            blob = stored.get(i) if stored is not None else None
            v = cache.get(i) if blob is None else None
            if blob is not None:
                v = cache[i] = np.frombuffer(blob, dtype="<f4")
            if v is None:
                missing.append(i)
            else:
                found[i] = v
        if not missing:
            return found
        async with self.sessions() as session:
            for start in range(0, len(missing), _READ_CHUNK):
                rows = await session.execute(
                    select(StickerEmbedding.sticker_id, StickerEmbedding.vector).where(
                        StickerEmbedding.model_version == ranker.version,
                        StickerEmbedding.sticker_id.in_(missing[start : start + _READ_CHUNK]),
                    )
                )
                for sid, blob in rows:
                    found[sid] = np.frombuffer(blob, dtype="<f4")
        todo = [i for i in missing if i not in found]
        packed = per_pack(ranker)
        if packed is not None and todo:
            computed = await self._compute_packs(packed, ranker.version, todo)
            found.update(computed)
            for sid, vec in computed.items():  # the whole pack: its older stickers' vectors may have changed
                cache[sid] = vec
        else:
            for start in range(0, len(todo), EMBED_BATCH):
                await self._compute(ranker, todo[start : start + EMBED_BATCH], found)
        for i in missing:
            if i in found:
                cache[i] = found[i]
        return found

    async def _compute_packs(
        self, ranker: PackRanker, version: str, todo: list[int]
    ) -> dict[int, np.ndarray]:
        """Embed, whole, every pack that holds one of ``todo``, and store the vectors of all their stickers
        (one transaction per pack: no reader sees half a pack named one way and half the other). The
        pictures are read ``EMBED_BATCH`` at a time; only their vectors are held for the pack. The image
        vectors are stored too, under ``ranker.image_key``: a pack that grows by one sticker runs the image
        tower on that one (and a new bank on the same image tower on none)."""
        async with self.sessions() as session:
            pack_ids: set[int] = set()
            for start in range(0, len(todo), _READ_CHUNK):
                chunk = todo[start : start + _READ_CHUNK]
                pack_ids.update(
                    (await session.execute(select(Sticker.pack_id).where(Sticker.id.in_(chunk)))).scalars()
                )
        out: dict[int, np.ndarray] = {}
        for pack_id in sorted(pack_ids):
            async with self.sessions() as session:
                query = select(Sticker).where(Sticker.pack_id == pack_id).order_by(Sticker.id)
                stickers = list((await session.execute(query)).scalars())
                known = await _stored_vectors(session, ranker.image_key, [s.id for s in stickers])
            # the image tower runs only on the stickers new to the pack (or to this image tower)
            new = [s for s in stickers if s.id not in known]
            for start in range(0, len(new), EMBED_BATCH):
                batch = new[start : start + EMBED_BATCH]
                shas = [s.media_sha256 for s in batch]
                vectors = await asyncio.to_thread(self._image_vectors, ranker, shas)
                known.update({s.id: v for s, v in zip(batch, vectors, strict=True)})
            inputs = [StickerInput(None, s.emoji, tuple(s.tags or ()), s.caption) for s in stickers]
            image = np.stack([known[s.id] for s in stickers]).astype(np.float32)
            fused = await asyncio.to_thread(ranker.fuse_stickers, image, inputs)
            images = (ranker.image_key, new, [known[s.id] for s in new])
            await self._store(version, stickers, fused, out, also=images)
        return out

    async def _compute(self, ranker: Ranker, batch: list[int], out: dict[int, np.ndarray]) -> None:
        async with self.sessions() as session:
            stickers = list((await session.execute(select(Sticker).where(Sticker.id.in_(batch)))).scalars())
        inputs = [
            StickerInput(
                self.store.open(s.media_sha256) if ranker.needs_images else None,
                s.emoji,
                tuple(s.tags or ()),
                s.caption,
            )
            for s in stickers
        ]
        vectors = await asyncio.to_thread(ranker.embed_stickers, inputs)
        await self._store(ranker.version, stickers, vectors, out)

    def _image_vectors(self, ranker: PackRanker, shas: list[str]) -> np.ndarray:
        return ranker.image_vectors([self.store.open(h) for h in shas])

    async def _store(
        self,
        version: str,
        stickers: Sequence[Sticker],
        vectors: np.ndarray | Sequence[np.ndarray],
        out: dict[int, np.ndarray],
        also: tuple[str, Sequence[Sticker], Sequence[np.ndarray]] | None = None,
    ) -> None:
        """Store the stickers' vectors for ``version`` (replacing any), in one transaction, and into ``out``;
        ``also``: more vectors stored in the same transaction under another key (a pack's new image vectors)."""
        rows = []
        for s, v in zip(stickers, vectors, strict=True):
            out[s.id] = vec = np.ascontiguousarray(v, dtype="<f4")
            rows.append(_row(s.id, version, vec))
        if also is not None:
            key, more, more_vectors = also
            rows += [
                _row(s.id, key, np.ascontiguousarray(v, dtype="<f4"))
                for s, v in zip(more, more_vectors, strict=True)
            ]
        async with self.sessions.begin() as session:
            await _upsert(session, rows)


@dataclass
class ChatMatrix:
    """The embeddings of a set of stickers (rows in ``ids`` order); shared by the chats that enable them."""

    ids: np.ndarray
    matrix: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes + self.ids.nbytes)


# (chat's packs_version, model version, digest of its sticker ids)
_ChatKey = tuple[int, str, bytes]


class MatrixCache:
    """Each chat's sticker matrix, kept within ``settings.matrix_cache_mb`` (least recently used first out,
    rebuilt from the embedding cache when their chats speak again). Chats with the same enabled stickers (e.g.
    only the default pack) share one matrix; ``shared=False`` gives every chat its own (the benchmark's naive
    baseline). Its lookups are safe from worker threads (a `/sticker` served in one hop looks its matrix up
    there): every change of its two caches takes one lock, never held across an ``await``."""

    def __init__(self, settings: Settings, embeddings: EmbeddingCache, *, shared: bool = True) -> None:
        self.settings = settings
        self.embeddings = embeddings
        self.shared = shared
        self._lock = threading.Lock()
        self._keys: LRUCache[int, _ChatKey] = LRUCache(max(1, settings.identity_cache))
        self._matrices: LRUCache[tuple[str, bytes], ChatMatrix] = LRUCache(
            math.inf, getsizeof=lambda m: m.nbytes
        )

    def __len__(self) -> int:
        """How many matrices are held."""
        return len(self._matrices)

    @property
    def nbytes(self) -> int:
        """The memory the held matrices take."""
        return int(self._matrices.currsize)

    def clear(self) -> None:
        with self._lock:
            self._matrices.clear()
            self._keys.clear()

    def cached(self, chat_id: int, packs_version: int, ranker: Ranker) -> ChatMatrix | None:
        """The chat's matrix when it is held for its current packs (no database work), else None."""
        with self._lock:
            key = self._keys.get(chat_id)
            if key is None or key[:2] != (packs_version, ranker.version):
                return None
            return self._matrices.get((ranker.version, key[2]))

    async def get(
        self, session: AsyncSession, chat_id: int, packs_version: int, ranker: Ranker
    ) -> ChatMatrix | None:
        """The matrix of the chat's enabled, ready stickers for ``ranker`` (None: it has none);
        ``packs_version``: the chat row's, which every change of its packs bumps."""
        cached = self.cached(chat_id, packs_version, ranker)
        if cached is not None:
            return cached
        ids, stored = await _chat_stickers(session, chat_id, ranker.version)
        if not ids:
            return None
        id_array = np.asarray(ids, dtype=np.int64)
        digest = hashlib.blake2b(id_array.tobytes(), digest_size=16).digest()
        if not self.shared:
            digest += chat_id.to_bytes(8, "little")
        with self._lock:
            self._keys[chat_id] = (packs_version, ranker.version, digest)
            found = self._matrices.get((ranker.version, digest))
        if found is not None:  # another chat with the same stickers built it
            return found
        # the usual cold chat: every vector is stored, so the matrix is one copy straight from the rows
        if len(stored) == len(ids):
            matrix = np.frombuffer(b"".join([stored[i] for i in ids]), dtype="<f4").reshape(len(ids), -1)
        else:
            vectors = await self.embeddings.ensure(ranker, ids, stored)
            matrix = np.stack([vectors[i] for i in ids])
        built = ChatMatrix(id_array, matrix.astype(np.float32))
        with self._lock:
            self._matrices[(ranker.version, digest)] = built
            self._trim()
        return built

    def _trim(self) -> None:
        """Forget the least recently used matrices beyond the budget; the one just built always stays (under
        ``_lock``)."""
        budget = self.settings.matrix_cache_mb * 2**20
        while self._matrices.currsize > budget and len(self._matrices) > 1:
            self._matrices.popitem()


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (sticker, key) DO UPDATE in the database's own dialect (built once: building a
    statement costs more than running it)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    make: Any = sqlite_insert if dialect == "sqlite" else pg_insert
    stmt = make(StickerEmbedding)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[StickerEmbedding.sticker_id, StickerEmbedding.model_version],
        set_={"dim": new.dim, "vector": new.vector, "created_at": new.created_at},
    )


def _row(sticker_id: int, key: str, vec: np.ndarray) -> dict[str, object]:
    return {"sticker_id": sticker_id, "model_version": key, "dim": vec.shape[0], "vector": vec.tobytes()}


async def _upsert(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    """Insert or replace stored vectors in one statement (SQLite and PostgreSQL: ``ON CONFLICT DO UPDATE``,
    atomic, so two workers embedding the same pack at once both succeed); another database: one merge per row."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        for row in rows:
            await session.merge(StickerEmbedding(**row))
        return
    stmt = _upsert_statement(dialect)
    for start in range(0, len(rows), _WRITE_CHUNK):
        await session.execute(stmt, rows[start : start + _WRITE_CHUNK])


async def _stored_vectors(session: AsyncSession, key: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
    """The vectors stored under ``key`` for those of ``ids`` that have one."""
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), _READ_CHUNK):
        rows = await session.execute(
            select(StickerEmbedding.sticker_id, StickerEmbedding.vector).where(
                StickerEmbedding.model_version == key,
                StickerEmbedding.sticker_id.in_(ids[start : start + _READ_CHUNK]),
            )
        )
        found.update({sid: np.frombuffer(blob, dtype="<f4") for sid, blob in rows})
    return found


def _held_size(vector: np.ndarray) -> int:
    return int(vector.nbytes) + _VECTOR_OVERHEAD


async def _chat_stickers(
    session: AsyncSession, chat_id: int, version: str | None
) -> tuple[list[int], dict[int, bytes]]:
    """The ids of the chat's enabled, ready stickers, one per picture (the same picture in two packs is one
    suggestion), and, given a model ``version``, the vectors the database holds for them, in the same
    statement (a cold chat's matrix is one read, not one more per 900 ids)."""
    query = (
        select(Sticker.id, Sticker.media_sha256, StickerEmbedding.vector)
        if version
        else select(Sticker.id, Sticker.media_sha256)
    )
    query = query.join(ChatPack, ChatPack.pack_id == Sticker.pack_id).join(Pack, Pack.id == Sticker.pack_id)
    if version:
        query = query.outerjoin(
            StickerEmbedding,
            (StickerEmbedding.sticker_id == Sticker.id) & (StickerEmbedding.model_version == version),
        )
    result = await session.execute(
        query.where(ChatPack.chat_id == chat_id, ChatPack.enabled, Pack.status == "ready")
    )
    # Sorted here, not by the database: an ORDER BY sorts the rows with their vectors, and at 3,000 stickers
    # that sort (3 MB of blobs) was 9 of SQLite's 21 ms (docs/BENCHMARKS.md, the cold chat).
    rows = sorted(result.all(), key=itemgetter(0))
    ids: list[int] = []
    stored: dict[int, bytes] = {}
    seen_media: set[str] = set()
    for sid, sha, *blob in rows:
        if sha not in seen_media:
            seen_media.add(sha)
            ids.append(sid)
            if blob and blob[0] is not None:
                stored[sid] = blob[0]
    return ids, stored
