"""The engine's typed errors. Each carries the facts an adapter needs to word it (in the user's language, for its
platform); ``str()`` is a plain English sentence for logs and the operator's CLI, never shown to chat users as is.
The skip reasons of an import report (:class:`SkipReason`) are typed the same way. No sentence here names a
command to run: what fixes an error is for the CLI and the bots to say (they know their own commands).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "BadPackName",
    "EmbeddingFailed",
    "InvalidPackJson",
    "MetadataProblem",
    "ModelKind",
    "ModelMissing",
    "ModelProblem",
    "NotAPackSource",
    "NothingToImport",
    "PackBusy",
    "PackError",
    "PackJsonProblem",
    "PackNotEnabled",
    "PackSourceMissing",
    "SchemaOutOfDate",
    "SkipKind",
    "SkipReason",
    "Skipped",
    "TooManyImages",
    "TooManyStickers",
    "UnknownPack",
    "UnreadableMetadata",
]


class PackError(ValueError):
    """A pack cannot be imported, found or changed. Subclasses say why, with fields; adapters word them."""


class UnknownPack(PackError):
    """There is no pack of this name in the library."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"There is no pack called {name!r}.")


class PackNotEnabled(PackError):
    """The pack exists but is not enabled in this chat."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"The pack {name!r} is not enabled in this chat.")


class PackBusy(PackError):
    """Another import of the same new pack is running: run it again when that one is done (it skips what is
    there)."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        super().__init__(
            f"{name or 'this pack'} is already being imported; run the import again once that one is done"
        )


class EmbeddingFailed(PackError):
    """The stickers were stored but the model could not embed them; the pack is not served until an import with
    a working model."""

    def __init__(self, model_version: str, cause: str) -> None:
        self.model_version = model_version
        self.cause = cause
        super().__init__(
            f"the stickers were stored, but the model {model_version} could not embed them ({cause}); "
            "the pack is not served"
        )


class BadPackName(PackError):
    """A pack name that is not letters, digits, '_' and '-' (at most 64, starting with a letter or digit)."""

    def __init__(self, name: object) -> None:
        self.name = str(name)
        super().__init__(
            "Pack names use letters, digits, '_' and '-' (at most 64, starting with a letter or digit); "
            f"{self.name[:80]!r} is not one."
        )


class PackSourceMissing(PackError):
    """The folder or zip to import does not exist. ``source``: the label the caller gave for it."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(f"{source} does not exist")


class NotAPackSource(PackError):
    """What was given to import is neither a folder nor a zip archive."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(f"{source} is neither a folder nor a zip archive of images")


class TooManyStickers(PackError):
    """A platform's sticker set holds more stickers than a pack may have."""

    def __init__(self, count: int, limit: int) -> None:
        self.count, self.limit = count, limit
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        return f"the set has {self.count} stickers; a pack may have at most {self.limit}"


class TooManyImages(TooManyStickers):
    """A folder or zip holds more images than a pack may have."""

    def __init__(self, source: str, count: int, limit: int) -> None:
        self.source = source
        super().__init__(count, limit)

    def _sentence(self) -> str:
        return f"{self.source} holds {self.count} images; a pack may have at most {self.limit}"


class MetadataProblem(StrEnum):
    """Why a metadata file (``pack.json``, ``emoji_mapping.txt``) of a folder or zip could not be read."""

    LINK = "link"  # a symbolic link: never followed out of a pack
    NOT_A_FILE = "not_a_file"  # a device, FIFO or another non-regular file, or one that cannot be opened
    TOO_LARGE = "too_large"  # over ``limit`` bytes
    NOT_UTF8 = "not_utf8"
    DAMAGED = "damaged"  # a zip member that cannot be read (damaged, encrypted, an unknown compression)


class UnreadableMetadata(PackError):
    """A metadata file of the pack cannot be read; ``detail`` is the technical cause, for logs."""

    _SENTENCES = {
        MetadataProblem.LINK: "{file} is a symbolic link; links are never followed out of a pack",
        MetadataProblem.NOT_A_FILE: "{file} is not a regular file that can be opened",
        MetadataProblem.TOO_LARGE: "{file} is larger than the {limit}-byte limit",
        MetadataProblem.NOT_UTF8: "{file} is not UTF-8 text",
        MetadataProblem.DAMAGED: "{file} cannot be read from the zip",
    }

    def __init__(
        self, file: str, problem: MetadataProblem, limit: int | None = None, detail: str = ""
    ) -> None:
        self.file, self.problem, self.limit, self.detail = file, problem, limit, detail
        sentence = self._SENTENCES[problem].format(file=file, limit=limit)
        super().__init__(f"{sentence} ({detail})" if detail else sentence)


class PackJsonProblem(StrEnum):
    TOO_DEEP = "too_deep"  # nested past what the parser (or the validator) recurses through
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    SCHEMA = "schema"  # valid JSON, but a field is missing or of the wrong type


class InvalidPackJson(PackError):
    """``pack.json`` is not what the README documents. ``location``: where (``stickers.0.file``; None at the
    top level or for a syntax error), ``message``: the parser's or validator's own (English, technical) words,
    ``more``: how many other problems it found."""

    def __init__(
        self, problem: PackJsonProblem, location: str | None = None, message: str = "", more: int = 0
    ) -> None:
        self.problem, self.location, self.message, self.more = problem, location, message, more
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        if self.problem is PackJsonProblem.TOO_DEEP:
            return "pack.json is nested too deeply to be read"
        if self.problem is PackJsonProblem.NOT_JSON:
            return f"pack.json is not valid JSON: {self.message}"
        if self.problem is PackJsonProblem.NOT_AN_OBJECT:
            return "pack.json must hold a JSON object"
        more = f" (and {self.more} more)" if self.more else ""
        return f"pack.json: {self.location or '(top level)'}: {self.message}{more}"


class NothingToImport(PackError):
    """No sticker of the source could be imported (and the pack has none yet): nothing was changed.
    ``skipped``: every sticker that was skipped, and why (empty: no image files at all)."""

    def __init__(self, pack_name: str, skipped: Sequence[Skipped]) -> None:
        self.pack_name = pack_name
        self.skipped = tuple(skipped)
        reasons = "; ".join(f"{s.label}: {s.reason}" for s in self.skipped[:5]) or "no image files found"
        super().__init__(f"Nothing to import into {pack_name}: {reasons}")


# ---------------------------------------------------------------------------------------------- skip reasons
class SkipKind(StrEnum):
    """Why one sticker of an import was skipped (the rest of the pack is imported)."""

    NO_ID = "no_id"  # nothing usable is left of its id once cleaned
    DUPLICATE_ID = "duplicate_id"  # another sticker of the same import has its id
    BYTE_BUDGET = "byte_budget"  # the import read its byte limit: a re-run continues
    TIME_BUDGET = "time_budget"  # the import used its seconds: a re-run continues
    LINK = "link"  # a symbolic link in a folder: never followed
    TOO_LARGE = "too_large"  # past a size, pixel or frame limit
    UNSUPPORTED = "unsupported"  # a format (or zip encryption or compression) that cannot be read
    DAMAGED = "damaged"  # a known format, but truncated or malformed
    TIMEOUT = "timeout"  # decoding took too long and was stopped
    UNREADABLE = "unreadable"  # could not be opened or decoded for another reason
    FETCH_FAILED = "fetch_failed"  # a platform sticker whose download failed

    @property
    def resumable(self) -> bool:
        """Running the import again picks it up (the import stopped at a limit, not at the sticker)."""
        return self in (SkipKind.BYTE_BUDGET, SkipKind.TIME_BUDGET)


@dataclass(frozen=True)
class SkipReason:
    """``kind`` and its facts: ``limit`` for the budgets, ``sticker_id`` for a duplicate, ``detail`` the
    decoder's or downloader's own (English, technical) words. ``str()`` is the English sentence."""

    kind: SkipKind
    detail: str = ""
    limit: float | None = None
    sticker_id: str | None = None

    def __str__(self) -> str:
        if self.kind is SkipKind.NO_ID:
            return "the sticker has no usable id"
        if self.kind is SkipKind.DUPLICATE_ID:
            return f"duplicate sticker id {self.sticker_id!r}"
        if self.kind is SkipKind.BYTE_BUDGET:
            return f"the import read its limit of {self.limit:.0f} bytes; run it again to continue"
        if self.kind is SkipKind.TIME_BUDGET:
            return f"the import used its {self.limit:g} s; run it again to continue"
        if self.kind is SkipKind.FETCH_FAILED:
            return f"could not be fetched: {self.detail}"
        return self.detail or self.kind.value.replace("_", " ")


class Skipped(NamedTuple):
    """One skipped sticker of an import report: its label (file name or platform name) and why."""

    label: str
    reason: SkipReason


# ---------------------------------------------------------------------------------------------- start-up
class SchemaOutOfDate(RuntimeError):
    """The database is not at the newest Alembic revision. ``url``: the database's URL without its password,
    ``current``: its revision (None: it has no schema yet), ``head``: the revision this code needs."""

    def __init__(self, url: str, current: str | None, head: str) -> None:
        self.url, self.current, self.head = url, current, head
        state = "has no schema yet" if current is None else f"is at revision {current}"
        super().__init__(f"The database {url} {state}; this version needs revision {head}.")


class ModelKind(StrEnum):
    """The model a directory is meant to hold (a manifest's ``kind``)."""

    BASELINE = "text-baseline"
    PBR = "pbr"


class ModelProblem(StrEnum):
    """What is wrong with a model directory."""

    NO_MANIFEST = "no_manifest"  # no manifest.json: nothing was built there
    UNREADABLE_MANIFEST = "unreadable_manifest"  # it cannot be read or is not JSON (``detail``)
    WRONG_FORMAT = "wrong_format"  # another manifest format (``found``; this engine reads ``expected``)
    MISSING_FILE = "missing_file"  # a file the manifest lists (``file``, its ``role``) is not there
    CHANGED_FILE = "changed_file"  # ``file`` does not match the SHA-256 its manifest records
    UNLOADABLE_FILE = "unloadable_file"  # onnxruntime cannot load ``file`` (``detail``)
    WRONG_OUTPUTS = "wrong_outputs"  # ``file`` lacks the output ``expected`` (it has ``found``)
    WRONG_KIND = "wrong_kind"  # the directory holds a ``found`` model, ``expected`` was asked for
    UNKNOWN_KIND = "unknown_kind"  # the manifest names a kind (``found``) this engine does not serve
    # ``file`` was made from another ``role`` file than the directory's (a bank of known pictures embedded by
    # another image tower): it would serve wrong answers without failing
    MISMATCHED_FILE = "mismatched_file"


class ModelMissing(RuntimeError):
    """A model directory is absent, incomplete, damaged or not what was asked for. ``model_dir``: the
    directory; ``problem``: what is wrong; ``kind``: the model it should hold, where the caller knows
    (None: whichever model is served from it); ``file``: the file concerned (the manifest, or a model file);
    ``role``, ``found``, ``expected``, ``detail``: the problem's facts (``detail``: a library's own,
    technical, words). ``str()`` is the English sentence, without the command that builds the directory."""

    _SENTENCES = {
        ModelProblem.NO_MANIFEST: "No model at {dir} (missing {file}).",
        ModelProblem.UNREADABLE_MANIFEST: "Unreadable {file}: {detail}.",
        ModelProblem.WRONG_FORMAT: "{file} has format {found}; this engine reads format {expected}.",
        ModelProblem.MISSING_FILE: "{dir} lacks its {role} file {file}.",
        ModelProblem.CHANGED_FILE: "{file} does not match the SHA-256 in manifest.json: the file was changed "
        "or damaged.",
        ModelProblem.UNLOADABLE_FILE: "{file} is not a model onnxruntime can load ({detail}).",
        ModelProblem.WRONG_OUTPUTS: "{file} has outputs {found}, expected {expected}",
        ModelProblem.WRONG_KIND: "{dir} holds a {found} model but the ranker {expected} was asked for",
        ModelProblem.UNKNOWN_KIND: "{dir}: unknown model kind {found}",
        ModelProblem.MISMATCHED_FILE: "{file} in {dir} was made by another {role} than the one beside it.",
    }

    def __init__(
        self,
        model_dir: Path,
        problem: ModelProblem,
        *,
        kind: ModelKind | None = None,
        file: Path | str | None = None,
        role: str | None = None,
        found: str | None = None,
        expected: str | None = None,
        detail: str = "",
    ) -> None:
        self.model_dir, self.problem, self.kind = Path(model_dir), problem, kind
        self.file, self.role, self.found, self.expected, self.detail = file, role, found, expected, detail
        super().__init__(
            self._SENTENCES[problem].format(
                dir=model_dir, file=file, role=role, found=found, expected=expected, detail=detail
            )
        )
