"""Bot messages in the user's language: one gettext catalog (``.po``) per adapter and language.

Each adapter's ``_texts.py`` holds the English messages (the source, by name) and a :class:`Catalog`; its
module ``__getattr__`` answers ``texts.NAME`` in the language of the update being handled, which the adapter
sets once per update with :func:`use_language` (Telegram: the sender's ``language_code``; Discord: the
interaction's ``locale``). A context variable carries it, so concurrent updates each keep their own, and tasks
started while handling an update inherit it. Anything not translated falls back to English.

The catalogs are ``bot/locale/<lang>/LC_MESSAGES/<domain>.po``, read at run time by the small reader below (no
compile step: a clean clone and the wheel, which ships them as package data, work alike). Each entry is keyed
by ``msgctxt`` = the message's name; ``msgid`` is the English it translates, so an entry whose English has
changed since is stale (``tests/bot/test_i18n.py`` catches both that and a missing entry or placeholder).
``python -m bot.i18n`` rewrites the catalogs after the English changed: new messages get an empty
translation, changed ones keep theirs marked ``#, fuzzy`` (and are not used until someone checks them).
"""

from __future__ import annotations

import ast
import functools
import re
import string
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
SOURCE_LANGUAGE = "en"
LANGUAGES = ("en", "ru", "es", "pt", "fa")  # English is the source; the others have catalogs
DOMAINS = ("telegram", "discord")

_language: ContextVar[str] = ContextVar("stickerpick_language", default=SOURCE_LANGUAGE)


def normalize(code: str | None) -> str:
    """A platform's language code ("pt-BR", "es_419", "RU", None) → one of :data:`LANGUAGES` (else English)."""
    if not code:
        return SOURCE_LANGUAGE
    base = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    return base if base in LANGUAGES else SOURCE_LANGUAGE


def use_language(code: str | None) -> str:
    """Answer in ``code``'s language from here on, in this update's context (task). Returns the language."""
    language = normalize(code)
    _language.set(language)
    return language


def current_language() -> str:
    return _language.get()


@dataclass(frozen=True)
class Entry:
    context: str
    msgid: str
    msgstr: str
    fuzzy: bool = False


def _unquote(line: str) -> str:
    value = ast.literal_eval(line)  # a .po string is a C string: the escapes are Python's too
    if not isinstance(value, str):
        raise ValueError(f"not a string: {line!r}")
    return value


def read_po(path: Path) -> list[Entry]:
    """The entries of a ``.po`` file (``msgctxt``, ``msgid``, ``msgstr``, the ``fuzzy`` flag; no plurals:
    the messages word around them). The header (empty ``msgid``) is left out."""
    entries: list[Entry] = []
    fields: dict[str, str] = {}
    fuzzy = False
    key: str | None = None

    def flush() -> None:
        nonlocal fields, fuzzy, key
        if fields.get("msgid"):
            entries.append(Entry(fields.get("msgctxt", ""), fields["msgid"], fields.get("msgstr", ""), fuzzy))
        fields, fuzzy, key = {}, False, None

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        try:
            if not line:
                flush()
            elif line.startswith("#,"):
                if "msgid" in fields:
                    flush()
                fuzzy = "fuzzy" in line
            elif line.startswith("#"):
                continue
            elif line.startswith('"') and key is not None:
                fields[key] += _unquote(line)
            else:
                word, _, rest = line.partition(" ")
                if word not in ("msgctxt", "msgid", "msgstr"):
                    raise ValueError(f"unknown keyword {word!r}")
                if word in fields or (word == "msgctxt" and "msgid" in fields):
                    flush()
                key = word
                fields[key] = _unquote(rest)
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
    flush()
    return entries


def _po_string(text: str) -> str:
    """``text`` as a .po string, split after each newline for readability."""
    parts = text.split("\n")
    pieces = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])

    def quote(piece: str) -> str:
        escaped = piece.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{escaped}"'

    if len(pieces) <= 1:
        return quote(text)
    return '""\n' + "\n".join(quote(p) for p in pieces)


def write_po(path: Path, domain: str, language: str, entries: list[Entry]) -> None:
    header = (
        f"# stickerpick: the {domain} adapter's messages in {language}. msgctxt is the message's name in\n"
        f"# bot/{domain}/_texts.py, msgid its English; keep every {{placeholder}} (and HTML tag) as it is.\n"
        'msgid ""\n'
        'msgstr ""\n'
        '"Project-Id-Version: stickerpick\\n"\n'
        f'"Language: {language}\\n"\n'
        '"MIME-Version: 1.0\\n"\n'
        '"Content-Type: text/plain; charset=UTF-8\\n"\n'
        '"Content-Transfer-Encoding: 8bit\\n"\n'
    )
    blocks = [header]
    for entry in entries:
        lines = ["#, fuzzy"] if entry.fuzzy else []
        lines.append(f"msgctxt {_po_string(entry.context)}")
        lines.append(f"msgid {_po_string(entry.msgid)}")
        lines.append(f"msgstr {_po_string(entry.msgstr)}")
        blocks.append("\n".join(lines) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(blocks), encoding="utf-8")


def placeholders(text: str) -> list[str]:
    """The ``str.format`` fields of ``text``, with their format specs, sorted (``{seconds:.0f}`` →
    ``seconds:.0f``)."""
    found = []
    for _, name, spec, _ in string.Formatter().parse(text):
        if name is not None:
            found.append(f"{name}:{spec}" if spec else name)
    return sorted(found)


class Catalog:
    """One adapter's messages: the English source by name, and their translations per language."""

    def __init__(self, domain: str, source: Mapping[str, str], directory: Path = LOCALE_DIR) -> None:
        self.domain = domain
        self.source = dict(source)
        self.directory = directory

    def path(self, language: str) -> Path:
        return self.directory / language / "LC_MESSAGES" / f"{self.domain}.po"

    @functools.cache  # noqa: B019 — a handful of catalogs living as long as the process
    def translations(self, language: str) -> dict[str, str]:
        """name → translation, for the entries that are current (not fuzzy, their English unchanged)."""
        if language == SOURCE_LANGUAGE or not self.path(language).is_file():
            return {}
        return {
            e.context: e.msgstr
            for e in read_po(self.path(language))
            if e.msgstr and not e.fuzzy and self.source.get(e.context) == e.msgid
        }

    def text(self, name: str, language: str | None = None) -> str:
        """Message ``name`` in ``language`` (default: the current update's), else in English."""
        english = self.source[name]  # KeyError: no such message
        return self.translations(language or current_language()).get(name, english)

    def translate(self, name: str, language: str) -> str | None:
        """The translation only, or None (English, or not translated)."""
        return self.translations(language).get(name)

    def update(self) -> None:
        """Rewrite every language's catalog for the current English: entries in source order, old
        translations kept (marked fuzzy where the English changed), messages no longer there dropped."""
        for language in LANGUAGES:
            if language == SOURCE_LANGUAGE:
                continue
            old = (
                {e.context: e for e in read_po(self.path(language))} if self.path(language).is_file() else {}
            )
            entries = []
            for name, english in self.source.items():
                previous = old.get(name)
                if previous is None:
                    entries.append(Entry(name, english, ""))
                else:
                    stale = previous.fuzzy or previous.msgid != english
                    entries.append(
                        Entry(name, english, previous.msgstr, fuzzy=stale and bool(previous.msgstr))
                    )
            write_po(self.path(language), self.domain, language, entries)


def catalogs() -> list[Catalog]:
    from bot.discord._texts import CATALOG as DISCORD
    from bot.telegram._texts import CATALOG as TELEGRAM

    return [TELEGRAM, DISCORD]


if __name__ == "__main__":  # python -m bot.i18n: bring the catalogs up to date with the English
    for catalog in catalogs():
        catalog.update()
        print(f"updated {catalog.domain}: {', '.join(lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE)}")
