"""The message catalogs: every language covers every message of both adapters, with the same placeholders
(and HTML tags / markdown), and the reader, the writer and the update keep them that way."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bot import i18n
from bot.discord import _texts as discord_texts
from bot.i18n import LANGUAGES, SOURCE_LANGUAGE, Catalog, Entry, placeholders, read_po, write_po
from bot.telegram import _texts as telegram_texts

CATALOGS = [telegram_texts.CATALOG, discord_texts.CATALOG]
TRANSLATED = [lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE]
BOT = Path(i18n.__file__).parent


def _without_plural_suffix(fields: list[str]) -> list[str]:
    # {s} is English's plural "s" ("1 message", "2 messages"); other languages word around it.
    return [f for f in fields if f != "s"]


@pytest.mark.parametrize("catalog", CATALOGS, ids=lambda c: c.domain)
@pytest.mark.parametrize("language", TRANSLATED)
def test_every_catalog_translates_every_message_with_the_same_placeholders(catalog: Catalog, language: str):
    assert {"ru", "es", "pt", "fa"} <= set(TRANSLATED)
    assert catalog.path(language).is_file()
    entries = {e.context: e for e in read_po(catalog.path(language))}
    assert set(entries) == set(catalog.source), "python -m bot.i18n brings the catalogs up to date"
    for name, english in catalog.source.items():
        entry = entries[name]
        assert entry.msgid == english, f"{name}: the English changed since it was translated"
        assert entry.msgstr and not entry.fuzzy, f"{name} is not translated"
        same = {"FOR_USER", "SKIPPED_LINE"} | ({"PACK_LINE"} if language == "es" else set())  # no words
        assert entry.msgstr != english or name in same, f"{name} is still English"
        assert _without_plural_suffix(placeholders(entry.msgstr)) == _without_plural_suffix(
            placeholders(english)
        ), name
        entry.msgstr.format(**{p.partition(":")[0]: 1 for p in placeholders(english)})  # formats as it is
        if catalog.domain == "telegram":  # HTML parse mode: the same tags, or Telegram refuses the message
            assert sorted(re.findall(r"</?\w+>", entry.msgstr)) == sorted(re.findall(r"</?\w+>", english)), (
                name
            )
        else:  # Discord markdown: bold and code spans stay paired
            assert entry.msgstr.count("**") == english.count("**"), name
            assert entry.msgstr.count("`") == english.count("`"), name
    assert catalog.translations(language).keys() == catalog.source.keys()  # all of them are used


def test_command_descriptions_fit_the_platforms_limits():
    for language in LANGUAGES:
        for name in telegram_texts.CATALOG.source:
            if name.startswith("CMD_"):
                assert 1 <= len(telegram_texts.CATALOG.text(name, language)) <= 256, (language, name)
        for name in discord_texts.CATALOG.source:
            if name.startswith("CMD_"):
                assert 1 <= len(discord_texts.CATALOG.text(name, language)) <= 100, (language, name)


def test_every_message_the_adapters_use_exists():
    """``texts.NAME`` goes through the module's ``__getattr__``, so a typo would only fail when that line
    runs: check every use against the English source."""
    for adapter, catalog in (("telegram", telegram_texts.CATALOG), ("discord", discord_texts.CATALOG)):
        for path in sorted((BOT / adapter).glob("*.py")):
            if path.name == "_texts.py":  # its docstrings say `texts.NAME`
                continue
            for name in re.findall(r"\btexts\.([A-Z][A-Z0-9_]+)\b", path.read_text(encoding="utf-8")):
                module = telegram_texts if adapter == "telegram" else discord_texts
                assert name in catalog.source or name in vars(module), f"{path.name}: texts.{name}"
    with pytest.raises(AttributeError):
        _ = telegram_texts.NO_SUCH_MESSAGE


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("ru", "ru"),
        ("pt-BR", "pt"),
        ("es-419", "es"),
        ("es-ES", "es"),
        ("FA", "fa"),
        ("en-GB", "en"),
        ("de", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_platform_language_codes(code, language):
    assert i18n.normalize(code) == language


def test_the_reader_reads_what_the_writer_writes_and_msgfmt_agrees(tmp_path: Path):
    tricky = 'a "quote", a back\\slash, a\ttab,\nlines\nand {placeholder} — ünïcödé\n'
    entries = [
        Entry("ONE", tricky, tricky.upper()),
        Entry("TWO", "x", "", fuzzy=False),
        Entry("T3", "y", "z", True),
    ]
    path = tmp_path / "ru" / "LC_MESSAGES" / "x.po"
    write_po(path, "x", "ru", entries)
    assert read_po(path) == entries
    import subprocess

    if shutil.which("msgfmt"):  # the GNU tools read our files as well
        import gettext

        subprocess.run(["msgfmt", "-o", str(tmp_path / "x.mo"), str(path)], check=True)
        with (tmp_path / "x.mo").open("rb") as f:
            assert gettext.GNUTranslations(f).pgettext("ONE", tricky) == tricky.upper()


def test_update_keeps_translations_and_marks_changed_english_fuzzy(tmp_path: Path):
    old = Catalog("demo", {"HELLO": "Hello", "BYE": "Bye"}, directory=tmp_path)
    write_po(old.path("ru"), "demo", "ru", [Entry("HELLO", "Hello", "Привет"), Entry("BYE", "Bye", "Пока")])
    new = Catalog("demo", {"HELLO": "Hello!", "BYE": "Bye", "NEW": "New"}, directory=tmp_path)
    new.update()
    entries = {e.context: e for e in read_po(new.path("ru"))}
    assert entries["HELLO"] == Entry("HELLO", "Hello!", "Привет", fuzzy=True)  # to be checked, not used
    assert entries["BYE"] == Entry("BYE", "Bye", "Пока") and entries["NEW"] == Entry("NEW", "New", "")
    assert new.text("HELLO", "ru") == "Hello!" and new.text("BYE", "ru") == "Пока"
    assert new.text("NEW", "ru") == "New" and new.text("BYE", "fa") == "Bye"  # no catalog: English


def test_the_shipped_catalogs_are_up_to_date(tmp_path: Path):
    """What ``python -m bot.i18n`` would write is what is committed (the update changes nothing)."""
    for catalog in CATALOGS:
        copy = Catalog(catalog.domain, catalog.source, directory=tmp_path)
        for language in TRANSLATED:
            copy.path(language).parent.mkdir(parents=True, exist_ok=True)
            copy.path(language).write_bytes(catalog.path(language).read_bytes())
        copy.update()
        for language in TRANSLATED:
            assert copy.path(language).read_bytes() == catalog.path(language).read_bytes(), language


def test_the_catalogs_ship_in_the_wheel():
    import tomllib

    pyproject = tomllib.loads((BOT.parent / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["bot"]
    for catalog in CATALOGS:
        for language in TRANSLATED:
            relative = catalog.path(language).relative_to(BOT)
            assert any(relative.match(p) for p in patterns), relative


@pytest.mark.skipif(not shutil.which("msgfmt"), reason="GNU gettext's msgfmt is not installed")
def test_gnu_gettext_reads_the_shipped_catalogs_as_we_do(tmp_path: Path):
    """The reference implementation agrees with the small run-time reader on every shipped entry."""
    import gettext
    import subprocess

    for catalog in CATALOGS:
        for language in TRANSLATED:
            mo = tmp_path / f"{catalog.domain}-{language}.mo"
            subprocess.run(["msgfmt", "--check", "-o", str(mo), str(catalog.path(language))], check=True)
            with mo.open("rb") as f:
                gnu = gettext.GNUTranslations(f)
            for name, text in catalog.translations(language).items():
                assert gnu.pgettext(name, catalog.source[name]) == text, (catalog.domain, language, name)


@pytest.mark.parametrize("catalog", i18n.catalogs(), ids=lambda c: c.domain)
def test_every_skip_kind_has_a_message_in_both_bots(catalog: Catalog):
    from bot.skip_messages import SKIP_MESSAGES
    from engine.errors import SkipKind

    assert set(SKIP_MESSAGES) == set(SkipKind)
    assert {name for name in SKIP_MESSAGES.values() if name not in catalog.source} == set()
