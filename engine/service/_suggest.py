"""/sticker: rank a chat's stickers for its recent dialogue (or a text), with the per-chat cooldown every
worker sharing the database enforces, and keep the answer for its buttons."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
from cachetools import LRUCache
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import metrics
from engine import samples as logged
from engine.db import Chat, ChatPack, Sticker, rowcount
from engine.history import History, HistoryTurn
from engine.ranking import Ranker, top_k
from engine.service._embeddings import ChatMatrix, MatrixCache
from engine.service._identities import Identities
from engine.service._suggestions import Suggestions
from engine.service._types import ChatRef, SuggestResult, UserRef
from engine.settings import Settings


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
        """:meth:`suggest` without the metrics."""
        k = max(1, min(k or self.settings.top_k, cap or self.settings.max_k))
        ranker = self._ranker()
        # before this request's transaction: on SQLite a lookup that creates the user in a transaction of its
        # own must not wait on this one's write lock
        requested_by = await self.identities.user_id(user)
        async with self.sessions.begin() as session:
            c = await self.identities.existing_chat(session, chat)
            now = time.time()
            cooling = cooldown and self.settings.sticker_cooldown_s > 0
            wait = self._cooldown_wait(c, now) if cooling else 0.0
            if wait > 0:
                return _cooldown_answer(wait)
            pack_chat = c if packs_from is None else await self.identities.existing_chat(session, packs_from)
            mat, reason = await self._matrix(session, pack_chat, ranker, sendable_only)
            if mat is None:
                return SuggestResult(reason=reason)
            dialogue = await self._dialogue(session, c, ranker, text)
            if dialogue is None:
                return SuggestResult(reason="no_conversation")
            turns, query_text = dialogue
            if cooling:  # this process's guard, until the database claim below settles it for every worker
                self._claims[c.id] = now
            chosen = await self._score(session, c, ranker, mat, query_text, k)
            # the first write of the request, after the model ran: SQLite's write lock is held only for the
            # writes, and of two workers answering one chat at once exactly one wins
            if cooling and not await self._claim_cooldown(session, c, now):
                return _cooldown_answer(self.settings.sticker_cooldown_s)
            head = {
                "chat_id": c.id,
                "requested_by": requested_by,
                "model_version": ranker.version,
                "last_message_id": turns[-1].message_id if turns else None,
            }
            suggestion_id, items = await self.suggestions.save(session, head, chosen)
            reranked = getattr(ranker, "rerank_scores", None) is not None and self.settings.rerank_top > 0
            return SuggestResult(
                items=items,
                suggestion_id=suggestion_id,
                context=turns,
                score_kind="match-logit" if reranked else "cosine",
            )

    def _cooldown_wait(self, chat: Chat, now: float) -> float:
        """Seconds until the chat may have its next /sticker. The cooldown lives in the database, so every
        worker sharing it enforces the same one."""
        last = max(chat.last_sticker_at or 0.0, self._claims.get(chat.id) or 0.0)
        return self.settings.sticker_cooldown_s - (now - last)

    async def _matrix(
        self, session: AsyncSession, pack_chat: Chat, ranker: Ranker, sendable_only: bool
    ) -> tuple[ChatMatrix | None, str | None]:
        """The stickers to rank, or None and why there are none ("no_packs", "none_sendable")."""
        mat = await self.matrices.get(session, pack_chat, ranker)
        if mat is None:
            return None, "no_packs"
        if sendable_only:
            mat = await _sendable_subset(session, pack_chat, mat)
            if mat is None:
                return None, "none_sendable"
        return mat, None

    async def _dialogue(
        self, session: AsyncSession, chat: Chat, ranker: Ranker, text: str | None
    ) -> tuple[list[HistoryTurn], str] | None:
        """The turns the suggestion is for (none for a given ``text``) and the model's query text; None when
        the chat has no conversation yet."""
        if text is not None and self.history.normalise(text):
            return [], ranker.dialogue_text([text])
        turns = await self.history.recent(session, chat.id, count_tokens=ranker.count_tokens)
        if not turns:
            return None
        return turns, ranker.dialogue_text([t.text for t in turns])

    async def _score(
        self, session: AsyncSession, chat: Chat, ranker: Ranker, mat: ChatMatrix, query_text: str, k: int
    ) -> list[tuple[int, float]]:
        """The best ``k`` stickers of ``mat`` for the query: (sticker id, score) in rank order."""
        query = (await asyncio.to_thread(ranker.embed_dialogues, [query_text]))[0]
        scores = mat.matrix @ query
        prior = await self._usage_prior(session, chat, mat.ids)
        best, scores = await self._rank(ranker, query, mat.matrix, scores, k, prior)
        return [(int(mat.ids[i]), float(scores[i])) for i in best]

    async def _claim_cooldown(self, session: AsyncSession, chat: Chat, now: float) -> bool:
        """Take this chat's /sticker slot: one conditional UPDATE, so of two workers answering the same chat
        at once exactly one wins (the row lock holds until this request's transaction ends)."""
        result = await session.execute(
            update(Chat)
            .where(
                Chat.id == chat.id,
                (Chat.last_sticker_at.is_(None))
                | (Chat.last_sticker_at <= now - self.settings.sticker_cooldown_s),
            )
            .values(last_sticker_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(rowcount(result))

    async def _usage_prior(self, session: AsyncSession, chat: Chat, ids: np.ndarray) -> np.ndarray | None:
        """``usage_prior_weight`` × how often this chat sent or picked each sticker (logged chats)."""
        weight = self.settings.usage_prior_weight
        if weight <= 0 or not chat.logging_enabled:
            return None
        counts = await logged.usage_counts(session, chat.id)
        return weight * logged.usage_prior(ids, counts) if counts else None

    async def _rank(
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
        logits = await asyncio.to_thread(rerank, query, matrix[shortlist])
        if prior is not None:
            logits = logits + prior[shortlist]
        final = np.full_like(scores, -np.inf)
        final[shortlist] = logits
        return shortlist[np.argsort(-logits, kind="stable")][:k], final


def _cooldown_answer(wait: float) -> SuggestResult:
    return SuggestResult(reason="cooldown", retry_after_s=wait)


async def _sendable_subset(session: AsyncSession, chat: Chat, mat: ChatMatrix) -> ChatMatrix | None:
    """The part of a chat's sticker matrix that has a platform file id (not cached: a view)."""
    unsendable = (
        await session.execute(
            select(Sticker.id)
            .join(ChatPack, ChatPack.pack_id == Sticker.pack_id)
            .where(ChatPack.chat_id == chat.id, Sticker.platform_file_id.is_(None))
        )
    ).scalars()
    keep = ~np.isin(mat.ids, np.fromiter(unsendable, dtype=np.int64))
    if not keep.any():
        return None
    return ChatMatrix(mat.ids[keep], mat.matrix[keep])
