"""/sticker: rank a chat's stickers for its recent dialogue (or a text), with the per-chat cooldown every
worker sharing the database enforces, and keep the answer for its buttons."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from cachetools import LRUCache
from sqlalchemy import Connection, bindparam, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import metrics
from engine import samples as logged
from engine.db import Chat, ChatPack, Sticker
from engine.history import History, HistoryTurn
from engine.ranking import Ranker, top_k
from engine.service._embeddings import ChatMatrix, MatrixCache
from engine.service._identities import Identities
from engine.service._suggestions import Saved, Suggestions
from engine.service._types import ChatRef, SuggestResult, UserRef
from engine.settings import Settings

# How many chats' token counts are kept, at most (never more than ``identity_cache``, the bound every per-chat
# cache follows); each chat keeps only the counts of its last window.
TOKEN_CACHE_CHATS = 1024


class Suggester:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        history: History,
        identities: Identities,
        matrices: MatrixCache,
        suggestions: Suggestions,
        ranker: Callable[[], Ranker],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.history = history
        self.identities = identities
        self.matrices = matrices
        self.suggestions = suggestions
        self._ranker = ranker  # the model served now (it may be swapped between two requests)
        # when /sticker last answered each chat here: this process's guard until the database claim settles
        self._claims: LRUCache[int, float] = LRUCache(max(1, settings.identity_cache))
        # per chat: (ranker version, {(text hash, length): token count}) of its last window's turns
        self._tokens: LRUCache[int, tuple[str, dict[tuple[int, int], int]]] = LRUCache(
            min(TOKEN_CACHE_CHATS, max(1, settings.identity_cache))
        )
        self.db = suggestions.db  # the request's reads, one hop each (engine.db.OneShot)
        # where the database allows (a SQLite file), the suggestion is written from the model's thread;
        # False: a hop of its own, group-committed (the benchmark's alternative)
        self.write_in_model_thread = True
        # where it allows, a chat seen before whose matrix is held is read in the model's thread too: the
        # whole request is one hop; False: the chat read is a hop of its own (the benchmark's alternative)
        self.read_in_model_thread = True
        # the per-chat caches above are shared by the event loop and the worker threads of one-hop requests
        self._lock = threading.Lock()
        self._reader = ChatReader(history)

    async def suggest(
        self,
        chat: ChatRef,
        k: int | None = None,
        user: UserRef | None = None,
        text: str | None = None,
        cooldown: bool = True,
        *,
        cap: int | None = None,
        packs_from: ChatRef | None = None,
        sendable_only: bool = False,
    ) -> SuggestResult:
        """The top-k of the chat's stickers for its recent dialogue (or for ``text``, e.g. an inline query),
        counted and timed for the metrics endpoint.
        ``cooldown=False`` for requests a platform already rate-limits (inline queries, button presses).
        ``cap`` replaces ``settings.max_k`` as the most items returned (Telegram's inline results: up to 50).
        ``packs_from`` (Discord): rank the stickers enabled in that chat instead of in ``chat``, for
        platforms whose packs belong to a group of chats (a Discord server) while each channel or thread
        keeps its own history and cooldown.
        ``sendable_only`` (Telegram inline mode): rank only stickers the platform can send by its
        own file id (an inline answer cannot upload a local pack's picture)."""
        start = time.perf_counter()
        try:
            result = await self._suggest(
                chat, k, user, text, cooldown, cap=cap, packs_from=packs_from, sendable_only=sendable_only
            )
        except Exception:
            metrics.ERRORS.labels(chat.platform, "suggest").inc()
            raise
        metrics.SUGGESTION_SECONDS.labels(chat.platform).observe(time.perf_counter() - start)
        metrics.SUGGESTIONS.labels(chat.platform, "stickers" if result.items else "message").inc()
        return result

    async def _suggest(
        self,
        chat: ChatRef,
        k: int | None,
        user: UserRef | None,
        text: str | None,
        cooldown: bool,
        *,
        cap: int | None,
        packs_from: ChatRef | None,
        sendable_only: bool,
    ) -> SuggestResult:
        """:meth:`suggest` without the metrics. On a SQLite file, a chat seen before whose matrix is held is
        served in one hop off the event loop (:meth:`_serve_here`: the chat read, the model and the write in
        one worker thread). Otherwise two: read the chat (its row and its recent history, one statement), then
        run the model (tower, scoring, re-ranking) and write the suggestion with the cooldown claim, in the
        model's thread on a SQLite file, elsewhere as one more hop, group-committed with other requests'."""
        k = max(1, min(k or self.settings.top_k, cap or self.settings.max_k))
        ranker = self._ranker()
        requested_by = await self.identities.user_id(user)
        given = text is not None and bool(self.history.normalise(text))
        cooling = cooldown and self.settings.sticker_cooldown_s > 0
        if not given and not sendable_only and self._one_hop():
            served = await asyncio.to_thread(
                self._serve_here, ranker, chat, packs_from, k, requested_by, cooling
            )
            if served is not None:
                return served
        c, pack_chat, rows = await self._read(chat, packs_from, history=not given)
        now = time.time()
        wait = self._cooldown_wait(c, now) if cooling else 0.0
        if wait > 0:
            return _cooldown_answer(wait)
        mat, reason = await self._matrix(pack_chat, ranker, sendable_only)
        if mat is None:
            return SuggestResult(reason=reason)
        if given:
            turns, query_text = [], ranker.dialogue_text([text or ""])
        else:
            turns = self.history.window(rows, count_tokens=self._token_counter(ranker, c.id))
            if not turns:
                return SuggestResult(reason="no_conversation")
            query_text = ranker.dialogue_text([t.text for t in turns])
        head, claim = self._head(ranker, c, turns, requested_by, now, cooling)  # the guard before any await
        prior = await self._usage_prior(c, mat.ids)
        score = partial(self._score, ranker, mat, query_text, k, prior)
        if self.db.threaded and self.write_in_model_thread:  # a SQLite file: no hop of its own
            saved = await asyncio.to_thread(lambda: self.suggestions.save_here(head, score(), claim))
        else:  # group-committed with the other requests' suggestions
            saved = await self.suggestions.save(head, await asyncio.to_thread(score), claim)
        return self._answer(ranker, saved, turns)

    def _one_hop(self) -> bool:
        """Whether a /sticker may be served in one worker-thread call (a SQLite file, both switches on)."""
        return self.db.threaded and self.write_in_model_thread and self.read_in_model_thread

    def _serve_here(
        self,
        ranker: Ranker,
        chat: ChatRef,
        packs_from: ChatRef | None,
        k: int,
        requested_by: int | None,
        cooling: bool,
    ) -> SuggestResult | None:
        """The whole request in the calling worker thread (a SQLite file): the chat read, the cooldown check,
        the history window, the model and the suggestion write. None, before anything is written or claimed,
        for what the event loop's path must serve: a chat new here (or renamed), a matrix to build, or a usage
        prior to read."""
        found = self.db.read_here(self._reader, chat, packs_from, True)
        if found is None:
            return None
        c, pack_chat, rows = found
        now = time.time()
        wait = self._cooldown_wait(c, now) if cooling else 0.0
        if wait > 0:
            return _cooldown_answer(wait)
        mat = self.matrices.cached(pack_chat.id, pack_chat.packs_version, ranker)
        if mat is None or (self.settings.usage_prior_weight > 0 and c.logging_enabled):
            return None
        turns = self.history.window(rows, count_tokens=self._token_counter(ranker, c.id))
        if not turns:
            return SuggestResult(reason="no_conversation")
        query_text = ranker.dialogue_text([t.text for t in turns])
        head, claim = self._head(ranker, c, turns, requested_by, now, cooling)
        chosen = self._score(ranker, mat, query_text, k, None)
        return self._answer(ranker, self.suggestions.save_here(head, chosen, claim), turns)

    def _head(
        self,
        ranker: Ranker,
        chat: ChatState,
        turns: Sequence[HistoryTurn],
        requested_by: int | None,
        now: float,
        cooling: bool,
    ) -> tuple[dict[str, Any], Callable[[Connection], bool] | None]:
        """The suggestion's row, and the cooldown claim its transaction runs first (None: no cooldown). Takes
        this process's guard on the chat, until the database claim settles it for every worker."""
        if cooling:
            with self._lock:
                self._claims[chat.id] = now
        head = {
            "chat_id": chat.id,
            "requested_by": requested_by,
            "model_version": ranker.version,
            "last_message_id": turns[-1].message_id if turns else None,
        }
        # the only write of the request, after the model ran: of two workers answering one chat at once
        # exactly one wins the claim, and only the winner's suggestion is written
        return head, (partial(self._claim_cooldown, chat.id, now) if cooling else None)

    def _answer(self, ranker: Ranker, saved: Saved | None, turns: list[HistoryTurn]) -> SuggestResult:
        """What the request returns once its suggestion is written (None: another worker took the slot)."""
        if saved is None:
            return _cooldown_answer(self.settings.sticker_cooldown_s)
        suggestion_id, items = saved
        reranked = getattr(ranker, "rerank_scores", None) is not None and self.settings.rerank_top > 0
        return SuggestResult(
            items=items,
            suggestion_id=suggestion_id,
            context=turns,
            score_kind="match-logit" if reranked else "cosine",
        )

    async def _read(
        self, chat: ChatRef, packs_from: ChatRef | None, history: bool
    ) -> tuple[ChatState, ChatState, list[Sequence[Any]]]:
        """The chat's state, the state of the chat whose packs are ranked, and (``history``) its newest
        messages, newest first. A chat seen for the first time (or renamed) goes through :class:`Identities` first."""
        found = await self.db.read(self._reader, chat, packs_from, history)
        if found is None:
            async with self.sessions.begin() as session:  # first sight: create it (default packs), or rename
                await self.identities.existing_chat(session, chat)
                if packs_from is not None:
                    await self.identities.existing_chat(session, packs_from)
            found = await self.db.read(self._reader, chat, packs_from, history, False)
            assert found is not None, "a chat just created is there"
        return found

    def _token_counter(self, ranker: Ranker, chat_id: int) -> Callable[[str], int]:
        """``ranker.count_tokens`` remembered per chat: a chat's history turns come back request after request.
        The chat keeps the counts of this window only (older turns drop out with it), keyed by the text's hash,
        never by the text itself, so no message outlives its row here."""
        version = ranker.version
        with self._lock:
            cached = self._tokens.get(chat_id)
            old = cached[1] if cached is not None and cached[0] == version else {}
            new: dict[tuple[int, int], int] = {}
            self._tokens[chat_id] = (version, new)

        def count(text: str) -> int:
            key = (hash(text), len(text))
            n = new.get(key)
            if n is None:
                n = new[key] = old[key] if key in old else ranker.count_tokens(text)
            return n

        return count

    def _cooldown_wait(self, chat: ChatState, now: float) -> float:
        """Seconds until the chat may have its next /sticker. The cooldown lives in the database, so every
        worker sharing it enforces the same one."""
        with self._lock:
            claimed = self._claims.get(chat.id)
        last = max(chat.last_sticker_at or 0.0, claimed or 0.0)
        return self.settings.sticker_cooldown_s - (now - last)

    async def _matrix(
        self, pack_chat: ChatState, ranker: Ranker, sendable_only: bool
    ) -> tuple[ChatMatrix | None, str | None]:
        """The stickers to rank, or None and why there are none ("no_packs", "none_sendable")."""
        mat = self.matrices.cached(pack_chat.id, pack_chat.packs_version, ranker)
        if mat is None:  # built once per chat and packs version
            async with self.sessions() as session:
                mat = await self.matrices.get(session, pack_chat.id, pack_chat.packs_version, ranker)
        if mat is None:
            return None, "no_packs"
        if sendable_only:
            async with self.sessions() as session:
                mat = await _sendable_subset(session, pack_chat.id, mat)
            if mat is None:
                return None, "none_sendable"
        return mat, None

    def _score(
        self, ranker: Ranker, mat: ChatMatrix, query_text: str, k: int, prior: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """The best ``k`` stickers of ``mat`` for the query: (sticker id, score) in rank order. In a worker
        thread: the tower, the scores and the re-ranking in one hop."""
        query = ranker.embed_dialogues([query_text])[0]
        scores = mat.matrix @ query
        best, scores = self._rank(ranker, query, mat.matrix, scores, k, prior)
        return [(int(mat.ids[i]), float(scores[i])) for i in best]

    def _claim_cooldown(self, chat_id: int, now: float, conn: Connection) -> bool:
        """Take this chat's /sticker slot: one conditional UPDATE, so of two workers answering the same chat
        at once exactly one wins (the row lock holds until the suggestion's transaction ends)."""
        free_before = now - self.settings.sticker_cooldown_s
        result = conn.execute(_CLAIM, {"chat_id": chat_id, "free_before": free_before, "now": now})
        return bool(result.rowcount)

    async def _usage_prior(self, chat: ChatState, ids: np.ndarray) -> np.ndarray | None:
        """``usage_prior_weight`` × how often this chat sent or picked each sticker (logged chats)."""
        weight = self.settings.usage_prior_weight
        if weight <= 0 or not chat.logging_enabled:
            return None
        async with self.sessions() as session:
            counts = await logged.usage_counts(session, chat.id)
        return weight * logged.usage_prior(ids, counts) if counts else None

    def _rank(
        self,
        ranker: Ranker,
        query: np.ndarray,
        matrix: np.ndarray,
        scores: np.ndarray,
        k: int,
        prior: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by the dual encoder; models with a matching head re-rank the best ``rerank_top`` first.
        ``prior`` is added to the final scores (the dual encoder's, or the re-ranking logits)."""
        rerank = getattr(ranker, "rerank_scores", None)
        if rerank is None or self.settings.rerank_top <= 0:
            if prior is not None:
                scores = scores + prior
            return top_k(scores, k), scores
        shortlist = top_k(scores if prior is None else scores + prior, max(k, self.settings.rerank_top))
        logits = rerank(query, matrix[shortlist])
        if prior is not None:
            logits = logits + prior[shortlist]
        final = np.full_like(scores, -np.inf)
        final[shortlist] = logits
        return shortlist[np.argsort(-logits, kind="stable")][:k], final


@dataclass(frozen=True)
class ChatState:
    """What a request reads of a chat's row."""

    id: int
    title: str | None
    packs_version: int
    logging_enabled: bool
    last_sticker_at: float | None


_STATE = (Chat.id, Chat.title, Chat.packs_version, Chat.logging_enabled, Chat.last_sticker_at)
_BY_REF = (Chat.platform == bindparam("platform")) & (Chat.platform_chat_id == bindparam("chat"))
_CHAT = select(*_STATE).where(_BY_REF)


class ChatReader:
    """A chat's row and its newest messages in one statement. The statements are built once: building and
    hashing a SELECT took most of the read's time, the query itself tens of microseconds."""

    def __init__(self, history: History) -> None:
        chat_id = select(Chat.id).where(_BY_REF).scalar_subquery()
        recent = history.recent_query(chat_id).subquery()
        self._with_history = (
            select(*_STATE, *recent.c)
            .select_from(Chat)
            .outerjoin(recent, true())
            .where(_BY_REF)
            .order_by(recent.c.message_id.desc())
        )

    def __call__(
        self,
        conn: Connection,
        chat: ChatRef,
        packs_from: ChatRef | None,
        history: bool,
        check_title: bool = True,
    ) -> tuple[ChatState, ChatState, list[Sequence[Any]]] | None:
        """The chat's state, the state of the chat whose packs are ranked, and (``history``) the chat's
        newest messages, newest first; None when a row is missing, or ``check_title`` and a title changed."""
        q = self._with_history if history else _CHAT
        rows = conn.execute(q, _ref_params(chat)).all()
        if not rows or (check_title and chat.title and rows[0].title != chat.title):
            return None
        state = ChatState(*rows[0][: len(_STATE)])
        turns: list[Sequence[Any]] = [r[len(_STATE) :] for r in rows if history and r.message_id is not None]
        if packs_from is None:
            return state, state, turns
        other = conn.execute(_CHAT, _ref_params(packs_from)).first()
        if other is None or (check_title and packs_from.title and other.title != packs_from.title):
            return None
        return state, ChatState(*other), turns


def _ref_params(ref: ChatRef) -> dict[str, str]:
    return {"platform": ref.platform, "chat": str(ref.chat_id)}


_CLAIM = (
    update(Chat)
    .where(
        Chat.id == bindparam("chat_id"),
        (Chat.last_sticker_at.is_(None)) | (Chat.last_sticker_at <= bindparam("free_before")),
    )
    .values(last_sticker_at=bindparam("now"))
)


def _cooldown_answer(wait: float) -> SuggestResult:
    return SuggestResult(reason="cooldown", retry_after_s=wait)


async def _sendable_subset(session: AsyncSession, chat_id: int, mat: ChatMatrix) -> ChatMatrix | None:
    """The part of a chat's sticker matrix that has a platform file id (not cached: a view)."""
    unsendable = (
        await session.execute(
            select(Sticker.id)
            .join(ChatPack, ChatPack.pack_id == Sticker.pack_id)
            .where(ChatPack.chat_id == chat_id, Sticker.platform_file_id.is_(None))
        )
    ).scalars()
    keep = ~np.isin(mat.ids, np.fromiter(unsendable, dtype=np.int64))
    if not keep.any():
        return None
    return ChatMatrix(mat.ids[keep], mat.matrix[keep])
