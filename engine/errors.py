"""The engine's typed errors. Each carries the facts an adapter needs to word it (in the user's language, for its
platform); ``str()`` is a plain English sentence for logs and the operator's CLI, never shown to chat users as is.
"""

from __future__ import annotations

__all__ = ["EmbeddingFailed", "PackBusy", "PackError", "PackNotEnabled", "UnknownPack"]


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
