"""Which bot message words each reason a sticker is skipped: several kinds read alike to a chat member. Both
bots' catalogs hold a message of each of these names (their ``_texts.py``), worded for their platform."""

from __future__ import annotations

from engine.errors import SkipKind

SKIP_MESSAGES: dict[SkipKind, str] = {
    SkipKind.NO_ID: "SKIP_BAD_ID",
    SkipKind.DUPLICATE_ID: "SKIP_BAD_ID",
    SkipKind.BYTE_BUDGET: "SKIP_LIMIT",
    SkipKind.TIME_BUDGET: "SKIP_LIMIT",
    SkipKind.LINK: "SKIP_LINK",
    SkipKind.TOO_LARGE: "SKIP_TOO_LARGE",
    SkipKind.UNSUPPORTED: "SKIP_UNSUPPORTED",
    SkipKind.DAMAGED: "SKIP_DAMAGED",
    SkipKind.TIMEOUT: "SKIP_DAMAGED",
    SkipKind.UNREADABLE: "SKIP_DAMAGED",
    SkipKind.FETCH_FAILED: "SKIP_FETCH_FAILED",
}
