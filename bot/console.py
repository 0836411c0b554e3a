"""The local console adapter: type as one or more named users, ask for stickers, see them as a PNG.

Lines look like ``alice: hi there`` (sets the speaker) or plain text (the last speaker again). Commands (see
:data:`HELP`) answer like the bots': a state when asked without arguments, a usage line for wrong ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import (
    BadPackName,
    EmbeddingFailed,
    InvalidPackJson,
    MetadataProblem,
    NotAPackSource,
    NothingToImport,
    PackBusy,
    PackError,
    PackJsonProblem,
    PackNotEnabled,
    PackSourceMissing,
    SkipKind,
    Skipped,
    SkipReason,
    TooManyImages,
    TooManyStickers,
    UnknownPack,
    UnreadableMetadata,
)
from engine.media import contact_sheet
from engine.preprocess import emoji_names
from engine.service import ChatRef, StickerService, SuggestResult, UserRef
from engine.store import MediaStore

PLATFORM = "console"
# "name: text", the name in any script (a letter first, then up to four words without ":"; Devanagari's vowel
# signs are not \w, so the words are "anything but space and colon")
SPEAKER_RE = re.compile(r"^\s*([^\W\d_][^\s:]{0,31}(?: [^\s:]{1,31}){0,3}):\s+(.*)$")

HELP = """\
Type messages as `name: text` (e.g. `alice: hi`); a line without a name is said by the last speaker.
  /sticker [k]          the k stickers that fit the conversation best (writes a PNG contact sheet)
  /packs                packs enabled in this chat
  /addpack PATH [NAME]  import a folder or zip of images as a pack and enable it here
  /addpack NAME         use a pack of the library here (e.g. noto-emoji)
  /removepack NAME      stop using a pack in this chat
  /logging [on|off]     allow keeping this chat's messages for retraining (off by default); alone: the state
  /cooldown [on|off]    the pause between two /sticker that group chats have (on by default); alone: the state
  /forget [name]        delete everything kept about a user (default: the current speaker)
  /history              the turns /sticker reads
  /send STICKER_ID      send a sticker of this chat's packs (kept for retraining where logging is on)
  /pick N               pick sticker N of the last /sticker (feedback; kept for retraining likewise)
  /quit                 leave"""
# The usage lines of each command (from HELP), shown when its arguments are wrong.
USAGE: dict[str, list[str]] = {}
for _line in HELP.splitlines()[1:]:
    USAGE.setdefault(_line.split()[0], []).append("Usage: " + _line.strip())
# Why /sticker found nothing, by ``SuggestResult.reason`` (the cooldown: COOLDOWN).
NOTHING_TO_SUGGEST = {
    "no_packs": "This chat has no sticker packs yet. An admin can add one with /addpack "
    "(console: `stickerpick packs add PATH --chat ...`).",
    "none_sendable": "None of this chat's stickers can be sent from here yet.",
    "no_conversation": "There is no conversation here yet: say something first.",
}
COOLDOWN = "Easy there — try /sticker again in {seconds} s."
NOTHING = "Nothing to suggest."


def nothing_to_suggest(result: SuggestResult) -> str:
    """The line shown for an answer without stickers."""
    if result.reason == "cooldown":
        return COOLDOWN.format(seconds=max(1, round(result.retry_after_s or 1)))
    return NOTHING_TO_SUGGEST.get(result.reason or "", NOTHING)


# What the engine refuses or skips, worded here: its errors carry the facts (engine/errors.py).
SKIP_REASONS = {
    SkipKind.NO_ID: "the sticker has no usable id",
    SkipKind.DUPLICATE_ID: "another sticker of the pack has the id {sticker_id!r}",
    SkipKind.BYTE_BUDGET: "the import read its limit of {limit:.0f} bytes; /addpack it again to continue",
    SkipKind.TIME_BUDGET: "the import used its {limit:g} s; /addpack it again to continue",
    SkipKind.LINK: "a symbolic link, never followed",
    SkipKind.TOO_LARGE: "too large",
    SkipKind.UNSUPPORTED: "a format that cannot be read",
    SkipKind.DAMAGED: "damaged",
    SkipKind.TIMEOUT: "decoding it took too long",
    SkipKind.UNREADABLE: "it cannot be read",
    SkipKind.FETCH_FAILED: "it could not be downloaded",
}
METADATA_PROBLEMS = {
    MetadataProblem.LINK: "{file} is a symbolic link; links are never followed out of a pack.",
    MetadataProblem.NOT_A_FILE: "{file} is not a regular file that can be opened.",
    MetadataProblem.TOO_LARGE: "{file} is larger than the {limit}-byte limit.",
    MetadataProblem.NOT_UTF8: "{file} is not UTF-8 text.",
    MetadataProblem.DAMAGED: "{file} cannot be read from the zip.",
}
PACK_JSON_PROBLEMS = {
    PackJsonProblem.TOO_DEEP: "pack.json is nested too deeply to be read.",
    PackJsonProblem.NOT_JSON: "pack.json is not valid JSON: {message}",
    PackJsonProblem.NOT_AN_OBJECT: "pack.json must hold a JSON object.",
    PackJsonProblem.SCHEMA: "pack.json: {location}: {message}{more}",
}


def skip_reason(reason: SkipReason) -> str:
    """Why a sticker was skipped, with the decoder's or downloader's own words after it."""
    worded = SKIP_REASONS[reason.kind].format(limit=reason.limit or 0, sticker_id=reason.sticker_id)
    return f"{worded} ({reason.detail})" if reason.detail else worded


def skipped_line(skipped: Skipped) -> str:
    return f"  skipped {skipped.label}: {skip_reason(skipped.reason)}"


def pack_refusal(exc: PackError) -> str:
    """The line for a pack the engine refused (or could not find)."""
    if isinstance(exc, UnknownPack):
        return f"There is no pack called {exc.name!r}. /packs lists this chat's."
    if isinstance(exc, PackNotEnabled):
        return f"The pack {exc.name!r} is not used in this chat. /packs lists the ones it uses."
    if isinstance(exc, PackBusy):
        return (
            f"{exc.name or 'This pack'} is already being imported; /addpack it again once that one is done."
        )
    if isinstance(exc, EmbeddingFailed):
        return (
            f"The stickers were stored, but the model {exc.model_version} could not embed them ({exc.cause}); "
            "the pack is not used until /addpack imports it again with a working model."
        )
    if isinstance(exc, BadPackName):
        return (
            "Pack names use letters, digits, '_' and '-' (at most 64, starting with a letter or digit); "
            f"{exc.name[:80]!r} is not one."
        )
    if isinstance(exc, PackSourceMissing):
        return f"{exc.source} does not exist."
    if isinstance(exc, NotAPackSource):
        return f"{exc.source} is neither a folder nor a zip archive of images."
    if isinstance(exc, TooManyImages):
        return f"{exc.source} holds {exc.count} images; a pack may have at most {exc.limit}."
    if isinstance(exc, TooManyStickers):
        return f"The set has {exc.count} stickers; a pack may have at most {exc.limit}."
    return import_refusal(exc)


def import_refusal(exc: PackError) -> str:
    """The line for a pack whose files were refused (its metadata, or nothing to import)."""
    if isinstance(exc, UnreadableMetadata):
        sentence = METADATA_PROBLEMS[exc.problem].format(file=exc.file, limit=exc.limit)
        return f"{sentence} ({exc.detail})" if exc.detail else sentence
    if isinstance(exc, InvalidPackJson):
        more = f" (and {exc.more} more)" if exc.more else ""
        location = exc.location or "(top level)"
        return PACK_JSON_PROBLEMS[exc.problem].format(location=location, message=exc.message, more=more)
    if isinstance(exc, NothingToImport):
        reasons = "; ".join(f"{s.label}: {skip_reason(s.reason)}" for s in exc.skipped[:5])
        return f"Nothing to import into {exc.pack_name}: {reasons or 'no image files found'}."
    return "That pack cannot be imported or changed."


def plural(n: int, word: str) -> str:
    """``1 message``, ``2 messages``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class ConsoleChat:
    service: StickerService
    chat_name: str = "local"
    out_dir: Path = Path("var/out")
    speaker: str = "you"
    k: int | None = None
    # The per-chat /sticker cooldown protects group chats from floods; the scripted demo turns it off.
    cooldown: bool = True
    sheets_written: list[Path] = field(default_factory=list)
    last: SuggestResult | None = None
    # Every /sticker answer, for `--json` (raw scores: what people see is SuggestResult.fit).
    results: list[SuggestResult] = field(default_factory=list)
    _counter: int = 0

    @property
    def chat(self) -> ChatRef:
        return ChatRef(PLATFORM, self.chat_name, title=f"console:{self.chat_name}")

    def user(self, name: str | None = None) -> UserRef:
        n = (name or self.speaker).strip()
        return UserRef(PLATFORM, n.lower(), n)

    async def handle(self, line: str) -> list[str]:
        """One input line → the lines to print. Never raises for bad input."""
        line = line.strip()
        if not line:
            return []
        if line.startswith("/"):
            return await self._command(line)
        m = SPEAKER_RE.match(line)
        if m:
            self.speaker, text = m.group(1).strip(), m.group(2)
        else:
            text = line
        self._counter += 1
        await self.service.record(self.chat, self.user(), text, message_id=str(self._counter))
        return []

    async def _command(self, line: str) -> list[str]:
        cmd, *args = line.split()
        cmd = cmd.lower()
        try:
            answer = await self._dispatch(cmd, args)
        except PackError as exc:
            return [pack_refusal(exc)]
        if answer is not None:
            return answer
        if cmd in USAGE:  # a known command with the wrong arguments
            return USAGE[cmd]
        return [f"Unknown command {cmd}. /help lists them."]

    async def _dispatch(self, cmd: str, args: list[str]) -> list[str] | None:
        """The command's answer; None when its arguments do not fit (the caller shows its usage)."""
        if cmd == "/sticker":
            if not args:
                return await self.sticker(self.k)
            if len(args) == 1 and args[0].isdigit() and int(args[0]) >= 1:
                return await self.sticker(int(args[0]))
            return None
        if cmd == "/packs" and not args:
            packs = await self.service.list_packs(self.chat)
            if not packs:
                return ["No packs in this chat. /addpack PATH imports one."]
            return [f"  {p.name:<24} {p.stickers:>5} stickers  {p.title or ''}" for p in packs]
        if cmd == "/addpack" and len(args) in (1, 2):
            return await self._addpack(args)
        if cmd == "/removepack" and len(args) == 1:
            await self.service.remove_pack(self.chat, args[0])
            return [f"Removed {args[0]} from this chat."]
        if cmd == "/logging" and len(args) <= 1:
            return await self._logging(args[0] if args else None)
        if cmd == "/cooldown" and len(args) <= 1:
            return self._cooldown(args[0] if args else None)
        if cmd == "/forget" and len(args) <= 1:
            who = args[0] if args else self.speaker
            n = await self.service.forget(self.user(who))
            return [f"Forgot {who}: {plural(n, 'message')} deleted."]
        if cmd == "/history" and not args:
            turns = await self.service.recent(self.chat)
            return [f"  {t.speaker or '?'}: {t.text}" for t in turns] or ["(no conversation yet)"]
        if cmd == "/send" and len(args) == 1:
            return await self._send(args[0])
        if cmd == "/pick" and len(args) == 1 and args[0].isdigit():
            return await self._pick(int(args[0]))
        if cmd in ("/help", "/start"):
            return HELP.splitlines()
        return None

    async def _addpack(self, args: list[str]) -> list[str]:
        path = Path(args[0])
        if len(args) == 1 and not path.exists() and await self.service.has_pack(args[0]):
            await self.service.enable_pack(self.chat, args[0], by=self.user())  # a library pack by name
            return [f"Pack {args[0]} is used in this chat now."]
        report = await self.service.add_pack(
            self.chat, path, name=args[1] if len(args) > 1 else None, by=self.user()
        )
        out = [f"Added pack {report.pack_name}: {report.added} new, {report.unchanged} already there."]
        return out + [skipped_line(s) for s in report.skipped]

    async def _logging(self, state: str | None) -> list[str] | None:
        if state is None:
            state = "on" if await self.service.logging_enabled(self.chat) else "off"
            return [f"Logging for retraining is {state} in this chat. /logging on|off changes it."]
        if state not in ("on", "off"):
            return None
        await self.service.set_logging(self.chat, state == "on")
        return [f"Logging for retraining is {state} in this chat."]

    def _cooldown(self, state: str | None) -> list[str] | None:
        if state is not None and state not in ("on", "off"):
            return None
        if state is not None:
            self.cooldown = state == "on"
        pause = self.service.settings.sticker_cooldown_s
        if not self.cooldown or pause <= 0:
            return ["The /sticker cooldown is off here: ask as often as you like."]
        return [f"The /sticker cooldown is on here: one /sticker per {pause:g} s, as in group chats."]

    async def _send(self, sticker_id: str) -> list[str]:
        if not await self.service.has_chat_sticker(self.chat, sticker_id):
            return [f"No such sticker in this chat's packs: {sticker_id}. /sticker shows some."]
        self._counter += 1
        kept = await self.service.record_sticker(
            self.chat, self.user(), sticker_id, message_id=str(self._counter)
        )
        return [f"{self.speaker} sent {sticker_id}" + (" (logged for retraining)" if kept else "")]

    async def _pick(self, n: int) -> list[str]:
        items = self.last.items if self.last else []
        if self.last is None or not 1 <= n <= len(items):
            return ["/pick N picks one of the stickers the last /sticker showed."]
        item = items[n - 1]
        await self.service.feedback(self.last.suggestion_id, item.sticker_id, self.chat, self.user())
        return [f"{self.speaker} picked {n}. {item.platform_sticker_id}"]

    async def sticker(self, k: int | None = None) -> list[str]:
        result = await self.service.suggest(self.chat, k, user=self.user(), cooldown=self.cooldown)
        self.last = result
        self.results.append(result)
        return self.render(result)

    def render(self, result: SuggestResult) -> list[str]:
        if not result.items:
            return [nothing_to_suggest(result)]
        lines = [f"Stickers for: “{result.context[-1].text}”" if result.context else "Stickers:"]
        for item in result.items:
            lines.append(
                f"  {item.rank + 1}. {item.emoji or ' '}  {_name(item.emoji) or item.platform_sticker_id:<28} "
                f"[{item.pack_name}]  fit {result.fit(item):.0%}"
            )
        path = self.write_sheet(result)
        lines.append(f"  contact sheet: {path}")
        return lines

    def write_sheet(self, result: SuggestResult) -> Path:
        store: MediaStore = self.service.store
        images = [store.open(item.media_path.stem) for item in result.items]
        labels = [
            f"{i.rank + 1}. {_name(i.emoji) or i.platform_sticker_id} {result.fit(i):.0%}"
            for i in result.items
        ]
        sheet = contact_sheet(images, labels)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"suggestion-{result.suggestion_id}.png"
        sheet.save(path)
        latest = self.out_dir / "latest-suggestion.png"
        sheet.save(latest)
        self.sheets_written.append(path)
        return path


def result_json(result: SuggestResult) -> dict[str, object]:
    """One /sticker answer with the model's raw scores (``stickerpick demo --json``)."""
    return {
        "suggestion_id": result.suggestion_id,
        "message": None if result.items else nothing_to_suggest(result),
        "context": [{"speaker": t.speaker, "text": t.text} for t in result.context],
        "score_kind": result.score_kind,
        "items": [
            {
                "rank": i.rank + 1,
                "sticker_id": i.platform_sticker_id,
                "pack": i.pack_name,
                "emoji": i.emoji,
                "score": i.score,
                "fit": round(result.fit(i), 4),
            }
            for i in result.items
        ],
    }


def _name(emoji_char: str | None) -> str:
    names = emoji_names(emoji_char)
    return names[0] if names else ""


# Messages, ("/sticker", k) requests, and NEW_CONVERSATION (the history is cleared: the next lines are another
# conversation). The last three are one sad message each in German, Spanish and Russian.
NEW_CONVERSATION = None
DEMO_SCRIPT: list[str | tuple[str, int] | None] = [
    "alice: guess what, I finally passed my driving test!!",
    "bob: no way, congratulations! that's amazing",
    ("/sticker", 5),
    "alice: thanks! but then I scratched the car backing out of the parking lot",
    "bob: oh no... is your dad going to be mad?",
    ("/sticker", 5),
    "alice: he is furious. he said I'm grounded for a month",
    ("/sticker", 5),
    "bob: want to get pizza tonight to cheer you up? my treat",
    "alice: yes please, I love you, you're the best",
    ("/sticker", 5),
    NEW_CONVERSATION,
    "sam: happy birthday!! 🎂",
    ("/sticker", 5),
    NEW_CONVERSATION,
    "lena: Ich bin so traurig, mein Hund ist gestorben",
    ("/sticker", 5),
    NEW_CONVERSATION,
    "sofía: estoy muy triste, mi perro se murió",
    ("/sticker", 5),
    NEW_CONVERSATION,
    "юля: мне так грустно, моя собака умерла",
    ("/sticker", 5),
]


async def run_demo(chat: ConsoleChat) -> list[str]:
    """The scripted conversation through the same path as `stickerpick chat`; returns what it printed."""
    await chat.service.clear_history(chat.chat)
    chat.cooldown = False
    printed: list[str] = []
    for step in DEMO_SCRIPT:
        if step is NEW_CONVERSATION:
            await chat.service.clear_history(chat.chat)
            printed.append("")
            printed.append("(a new conversation)")
        elif isinstance(step, tuple):
            printed.append("")
            out = await chat.sticker(step[1])
            printed.extend(out)
        else:
            printed.append(step)
            printed.extend(await chat.handle(step))
    return printed
