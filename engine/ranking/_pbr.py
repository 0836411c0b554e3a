"""The PBR model served through onnxruntime: dialogue tower, image tower, sticker-text fusion, re-ranking.

Reads a model directory written by the exporter (export/pbr.py describes its layout). The numpy parts
(projection after pooling, the sticker-text gate) are the exact operations of training/model/_pbr.py. A routed
directory (export/distilled.py --routed) has a second dialogue tower for other languages; each dialogue goes to
one of the two by engine/language.py, and both land in the same space as the stickers.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelKind, ModelMissing, ModelProblem
from engine.language import DEFAULT_MIN_ENGLISH, is_english
from engine.preprocess import ImageSpec, dialogue_to_text, images_to_batch, sticker_text
from engine.ranking._base import StickerInput, l2_normalise
from engine.ranking._onnx import OnnxTextEncoder, make_session, read_manifest

# The manifest's role for the bank of known pictures (export/pictures.py): image-only vectors of every emoji of
# the training art styles, with their emoji.
PICTURES_ROLE = "pictures"
# Without a threshold in the manifest, the least cosine at which a known picture names a sticker.
DEFAULT_PICTURE_THRESHOLD = 0.7
# Without a pull in the manifest (banks made before it), a sticker's image vector is not moved toward its
# nearest known picture.
DEFAULT_PICTURE_PULL = 0.0
# How a sticker's known picture is chosen (the manifest's ``pictures.naming``; absent: "nearest"):
# - "nearest": the one nearest picture, sticker by sticker;
# - "pack-vote": over the sticker's whole pack at once (``fuse_stickers`` sees the pack): each sticker's
#   nearest pictures vote across art styles, and a sticker takes its vote's emoji where no sticker of the pack
#   holds that emoji already and none votes higher for it (see ``_pack_vote``).
NAMINGS = ("nearest", "pack-vote")
DEFAULT_PICTURE_NAMING = "nearest"
DEFAULT_VOTE_TOP = 10  # the nearest pictures that vote
DEFAULT_KEEP_EXACT = 0.98  # a sticker this near a known picture is that picture, whatever the vote says
IMAGE_BATCH = 64  # stickers per run of the image tower
_COMPARE_ROWS = 512  # stickers compared with the bank at once (512 x 5,733 cosines: 12 MB)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class PBRRanker:
    name = "pbr"
    needs_images = True

    def __init__(
        self,
        model_dir: Path,
        max_turns: int = 8,
        threads: int = 0,
        sticker_text_on: bool | None = None,
        multilingual: bool = True,
        name_pictures: bool = True,
    ):
        self.model_dir = Path(model_dir)
        manifest = read_manifest(self.model_dir, ModelKind.PBR)
        if manifest.get("kind") != "pbr":
            raise ValueError(f"{model_dir} holds a {manifest.get('kind')!r} model, not a PBR model")
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.max_turns = max_turns
        files = manifest["files"]
        self.text = OnnxTextEncoder(
            self.model_dir / files["text"],
            self.model_dir / files["tokenizer"],
            int(manifest.get("max_tokens", 64)),
            "last_hidden_state",
            threads,
        )
        # The image tower runs only when stickers are indexed: loaded on first use (a serving bot
        # whose library is embedded never pays its memory).
        self._image_path = self.model_dir / files["image"]
        self._threads = threads
        self._image: Any = None
        self._lazy_lock = threading.Lock()  # the towers loaded on first use
        self.match = make_session(self.model_dir / files["match"], threads)
        heads = np.load(self.model_dir / files["heads"])
        self.heads = {k: heads[k] for k in heads.files}
        # A second dialogue tower for other languages (engine/language.py), distilled into the same space and
        # projected by its own copy of the head it was distilled against. Loaded on the first dialogue that
        # needs it (~250 MB resident): a bot whose chats all write English never pays for it.
        routing = manifest.get("dialogue_routing") or {}
        self.min_english = float(routing.get("min_english", DEFAULT_MIN_ENGLISH))
        self.has_multilingual = multilingual and "text_multilingual" in files
        self._multilingual_args = (
            (
                self.model_dir / files["text_multilingual"],
                self.model_dir / files["tokenizer_multilingual"],
                int(routing.get("max_tokens", manifest.get("max_tokens", 64))),
            )
            if self.has_multilingual
            else None
        )
        self._multilingual: OnnxTextEncoder | None = None
        self._multilingual_head = (
            "text_multilingual_proj" if "text_multilingual_proj.weight" in self.heads else "text_proj"
        )
        self.spec = ImageSpec.from_dict(manifest["image"])
        self.use_sticker_text = (
            bool(manifest.get("use_sticker_text"))
            if sticker_text_on is None
            else (sticker_text_on and bool(manifest.get("use_sticker_text")))
        )
        self.sticker_text_max_tokens = int(manifest.get("sticker_text_max_tokens", 32))
        # A sticker with no text of its own is named by its nearest known picture (export/pictures.py), when
        # near enough: loaded on the first stickers embedded. Off, the vectors differ, and so does the version
        # (it keys the stored embeddings).
        bank = files.get(PICTURES_ROLE)
        self._pictures_path = self.model_dir / bank if bank and self.use_sticker_text else None
        if self._pictures_path is not None and not name_pictures:
            self._pictures_path = None
            self.version += "+unnamed"
        made_by = (manifest.get("pictures") or {}).get("image_tower")
        image_sha = (manifest.get("sha256") or {}).get(files["image"], made_by)
        if self._pictures_path is not None and made_by and made_by != image_sha:
            # embedded by another image tower: its nearest pictures would name stickers wrongly, silently (a
            # ranker with the bank off may still open the directory: that is how the bank is rebuilt)
            raise ModelMissing(
                self.model_dir,
                ModelProblem.MISMATCHED_FILE,
                kind=ModelKind.PBR,
                file=bank,
                role="image tower",
            )
        settings = manifest.get("pictures") or {}
        self.picture_threshold = float(settings.get("threshold", DEFAULT_PICTURE_THRESHOLD))
        # how far a sticker's image vector moves toward its nearest known picture (within the threshold)
        # before it is fused with its text: an art style never trained on is read more like the one it resembles
        self.picture_pull = float(settings.get("pull", DEFAULT_PICTURE_PULL))
        self.picture_naming = str(settings.get("naming", DEFAULT_PICTURE_NAMING))
        if self.picture_naming not in NAMINGS:
            raise ValueError(
                f"{model_dir}: unknown picture naming {self.picture_naming!r} (known: {NAMINGS})"
            )
        self.vote_top = int(settings.get("vote_top", DEFAULT_VOTE_TOP))
        self.keep_exact = float(settings.get("keep_exact", DEFAULT_KEEP_EXACT))
        self._pictures: _Bank | None = None

    @property
    def multilingual(self) -> OnnxTextEncoder | None:
        """The tower for other languages (None: this model has none), loaded on first use."""
        if self._multilingual_args is None:
            return None
        with self._lazy_lock:
            if self._multilingual is None:
                model, tokenizer, max_tokens = self._multilingual_args
                self._multilingual = OnnxTextEncoder(
                    model, tokenizer, max_tokens, "last_hidden_state", self._threads
                )
            return self._multilingual

    def image_session(self) -> Any:
        with self._lazy_lock:
            if self._image is None:
                self._image = make_session(self._image_path, self._threads)
            return self._image

    # -- the Ranker protocol ---------------------------------------------------------------------------
    def dialogue_text(self, turns: Sequence[str]) -> str:
        return dialogue_to_text(turns, self.max_turns)

    def count_tokens(self, text: str) -> int:
        return self.text.tokenizer.count_tokens(text)

    def _project(self, pooled: np.ndarray, name: str) -> np.ndarray:
        return pooled @ self.heads[f"{name}.weight"].T + self.heads[f"{name}.bias"]

    def dialogue_tower(self, text: str) -> str:
        """Which tower reads this dialogue text: "english" or "multilingual"."""
        if not self.has_multilingual or is_english(text, self.min_english):
            return "english"
        return "multilingual"

    def embed_dialogues(self, texts: Sequence[str], tower: str | None = None) -> np.ndarray:
        """L2-normalised dialogue vectors; each text goes to the tower its language picks, unless ``tower``
        names one for all of them."""
        texts = list(texts)
        towers = [tower or self.dialogue_tower(t) for t in texts]
        if all(t == "english" for t in towers):
            return self._embed_with("english", texts)
        if all(t == "multilingual" for t in towers):
            return self._embed_with("multilingual", texts)
        out = np.zeros((len(texts), self.heads["text_proj.weight"].shape[0]), dtype=np.float32)
        for name in ("english", "multilingual"):
            idx = [i for i, t in enumerate(towers) if t == name]
            out[idx] = self._embed_with(name, [texts[i] for i in idx])
        return out

    def _embed_with(self, tower: str, texts: list[str]) -> np.ndarray:
        if tower == "english":
            return l2_normalise(self._project(self.text.encode(texts, normalise=False), "text_proj"))
        encoder = self.multilingual if tower == "multilingual" else None
        if encoder is None:
            raise ValueError(f"{self.model_dir} has no {tower!r} dialogue tower")
        pooled = encoder.encode(texts, normalise=False)
        return l2_normalise(self._project(pooled, self._multilingual_head))

    def embed_images(self, images: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """(L2-normalised image embeddings, emotion logits)."""
        batch = images_to_batch(images, self.spec)
        emb, emotion = self.image_session().run(["sticker_embedding", "emotion_logits"], {"pixels": batch})
        return emb.astype(np.float32), emotion.astype(np.float32)

    def embed_stickers(self, stickers: Sequence[StickerInput]) -> np.ndarray:
        """The stickers' vectors. With ``names_per_pack``, ``stickers`` is read as one whole pack (the names
        of its known pictures are chosen together)."""
        if any(s.image is None for s in stickers):
            raise ValueError("the PBR model needs every sticker's image")
        images = [s.image for s in stickers]
        return self.fuse_stickers(self.image_vectors(images), stickers)

    @property
    def names_per_pack(self) -> bool:
        """Whether a sticker's vector depends on the rest of its pack (``fuse_stickers`` must see the whole
        pack at once): known pictures named by the pack vote."""
        return self._pictures_path is not None and self.picture_naming == "pack-vote"

    @property
    def image_key(self) -> str:
        """A key for this model's image-only vectors: the image tower's hash and its preprocessing (a new bank,
        threshold, pull or dialogue tower keeps it)."""
        sha = (self.manifest.get("sha256") or {}).get(self.manifest["files"]["image"]) or self.version
        spec = json.dumps(self.manifest.get("image") or {}, sort_keys=True)
        return "image-" + hashlib.blake2b(f"{sha}|{spec}".encode(), digest_size=12).hexdigest()

    def image_vectors(self, images: Sequence) -> np.ndarray:
        """Image-only sticker vectors, the tower run ``IMAGE_BATCH`` images at a time."""
        dim = int(self.heads["text_proj.weight"].shape[0])
        parts = [
            self.embed_images(images[i : i + IMAGE_BATCH])[0] for i in range(0, len(images), IMAGE_BATCH)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)

    def fuse_stickers(self, image: np.ndarray, stickers: Sequence[StickerInput]) -> np.ndarray:
        """The stickers' vectors from their image vectors (``image_vectors``) and their text (their
        ``image`` is not read): named by the known pictures, pulled toward them, fused with the text."""
        image = np.array(image, dtype=np.float32)
        if not self.use_sticker_text:
            return image
        texts = [sticker_text(s.emoji, s.tags, s.caption) for s in stickers]
        if self._pictures_path is not None and len(texts) and (self.picture_pull > 0 or not all(texts)):
            bank = self._bank()
            best, near = self._known(image)
            for i in np.flatnonzero(near):
                if not texts[i]:  # no text of its own: named by its known picture
                    texts[i] = sticker_text(bank.emoji[best[i]])
            if self.picture_pull > 0 and near.any():
                image[near] = l2_normalise(image[near] + self.picture_pull * bank.vectors[best[near]])
        has_text = np.array([bool(t) for t in texts])
        if not has_text.any():
            return image
        pooled = self.text.encode(texts, normalise=False, max_tokens=self.sticker_text_max_tokens)
        text = l2_normalise(self._project(pooled, "sticker_text_proj"))
        gate = _sigmoid(self._project(np.concatenate([image, text], axis=1), "text_gate"))
        gate = np.where(has_text[:, None], gate, 1.0)
        return l2_normalise(gate * image + (1 - gate) * text)

    @property
    def names_pictures(self) -> bool:
        """Whether stickers without text are named by a known picture."""
        return self._pictures_path is not None

    def nearest_known(self, image_vectors: np.ndarray) -> list[str | None]:
        """For each image-only sticker vector (one pack, with ``names_per_pack``), the emoji of its known
        picture, or None when none is within the threshold (or the model has no bank)."""
        if self._pictures_path is None or len(image_vectors) == 0:
            return [None] * len(image_vectors)
        bank = self._bank()
        best, near = self._known(image_vectors)
        return [str(bank.emoji[b]) if ok else None for b, ok in zip(best, near, strict=True)]

    def _bank(self) -> _Bank:
        """The known pictures, loaded on first use."""
        with self._lazy_lock:
            if self._pictures is None:
                assert self._pictures_path is not None
                with np.load(self._pictures_path) as bank:
                    styles = bank["style"].tolist() if "style" in bank.files else [""] * len(bank["emoji"])
                    self._pictures = _Bank(bank["vectors"].astype(np.float32), bank["emoji"].tolist(), styles)
            return self._pictures

    def _known(self, image_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(each sticker's known picture, whether it is within the threshold): its nearest picture, or with
        the pack vote the picture the vote gives it. The stickers are compared with the bank
        ``_COMPARE_ROWS`` at a time, so a pack of thousands never holds its whole similarity matrix."""
        bank = self._bank()
        n = len(image_vectors)
        vote = self.picture_naming == "pack-vote"
        k = min(self.vote_top, len(bank.emoji))
        best = np.zeros(n, dtype=np.int64)
        top = np.zeros(n, dtype=np.float32)
        near_idx = np.zeros((n, k if vote else 0), dtype=np.int64)
        near_cos = np.zeros((n, k if vote else 0), dtype=np.float32)
        for start in range(0, n, _COMPARE_ROWS):
            rows = slice(start, start + _COMPARE_ROWS)
            sims = image_vectors[rows] @ bank.vectors.T
            best[rows] = sims.argmax(axis=1)
            top[rows] = sims[np.arange(len(sims)), best[rows]]
            if vote and k:
                idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
                near_idx[rows], near_cos[rows] = idx, np.take_along_axis(sims, idx, axis=1)
        near = top >= self.picture_threshold
        if vote and k:
            best = _pack_vote(near_idx, near_cos, best, top, near, bank, self.keep_exact)
        return best, near

    # -- re-ranking ------------------------------------------------------------------------------------
    def rerank_scores(self, dialogue: np.ndarray, stickers: np.ndarray) -> np.ndarray:
        """Matching-head logits of one dialogue vector against K sticker vectors."""
        d = np.repeat(dialogue[None, :].astype(np.float32), stickers.shape[0], axis=0)
        (logits,) = self.match.run(["match_logit"], {"dialogue": d, "sticker": stickers.astype(np.float32)})
        return logits.reshape(-1)


class _Bank:
    """The known pictures: vectors (n, d), and each one's emoji and art style, also as integer codes."""

    def __init__(self, vectors: np.ndarray, emoji: list[str], styles: list[str]) -> None:
        self.vectors, self.emoji, self.styles = vectors, emoji, styles
        codes: dict[str, int] = {}
        self.emoji_code = np.array([codes.setdefault(e, len(codes)) for e in emoji], dtype=np.int64)
        style_codes: dict[str, int] = {}
        self.style_code = np.array(
            [style_codes.setdefault(s, len(style_codes)) for s in styles], dtype=np.int64
        )


def _pack_vote(
    near_idx: np.ndarray,
    near_cos: np.ndarray,
    nearest: np.ndarray,
    nearest_cos: np.ndarray,
    near: np.ndarray,
    bank: _Bank,
    keep_exact: float,
) -> np.ndarray:
    """Each sticker's known picture, chosen over its whole pack (one row per sticker of the pack: its nearest
    pictures ``near_idx`` and their cosines, its one nearest picture, whether that is within the threshold).

    The nearest picture alone misnames look-alike faces of an unseen art style (a crying face read as a sad
    sweating one). The nearest pictures vote instead: each emoji scores the sum, over the art styles, of the
    best cosine among its pictures there, so an emoji that every style draws close by beats one lone near
    match. A vote alone would give look-alikes the same emoji and tie them with each other, so it is taken
    jointly: a sticker takes its vote's emoji only where no sticker of the pack holds that emoji by the
    nearest rule and no other sticker votes higher for it (on a tie, the first of the pack); a sticker within
    ``keep_exact`` of a known picture (its own art, a known style) keeps it. Returns the chosen picture per
    sticker (its best picture of the chosen emoji)."""
    best = nearest.copy()
    rows = np.flatnonzero(near)
    if len(rows) == 0:
        return best
    vote = np.full(len(best), -1, dtype=np.int64)  # the vote's emoji code
    vote_score = np.zeros(len(best))
    vote_pick = best.copy()  # the best picture of the vote's emoji
    for i in rows.tolist():
        per: dict[tuple[int, int], float] = {}  # (emoji, style) -> best cosine
        pick: dict[int, tuple[float, int]] = {}  # emoji -> (cosine, picture) of its best picture here
        for c, v in zip(near_idx[i].tolist(), near_cos[i].tolist(), strict=True):
            e, st = int(bank.emoji_code[c]), int(bank.style_code[c])
            if v > per.get((e, st), -np.inf):
                per[(e, st)] = v
            if e not in pick or v > pick[e][0]:
                pick[e] = (v, c)
        totals: dict[int, float] = {}
        for (e, _), v in per.items():
            totals[e] = totals.get(e, 0.0) + v
        winner = max(totals, key=lambda e: (totals[e], -e))
        vote[i], vote_score[i], vote_pick[i] = winner, totals[winner], pick[winner][1]
    # the highest vote for each emoji (the first of the pack on a tie): sorted by emoji, score down, position
    order = rows[np.lexsort((rows, -vote_score[rows], vote[rows]))]
    first = np.ones(len(order), dtype=bool)
    first[1:] = vote[order[1:]] != vote[order[:-1]]
    highest = np.zeros(len(best), dtype=bool)
    highest[order[first]] = True
    own = bank.emoji_code[best]
    held = np.isin(vote, own[rows])  # an emoji some sticker of the pack holds by the nearest rule
    take = near & highest & (nearest_cos < keep_exact) & (vote != own) & ~held
    best[take] = vote_pick[take]
    return best
