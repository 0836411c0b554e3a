"""The serving engine of stickerpick: history, sticker library, ONNX ranking and the service facade.

The engine never imports torch, training code or a platform SDK; every adapter (Telegram, Discord,
console) talks to :class:`engine.service.StickerService`.
"""

import os as _os

# numpy's BLAS only does matrix-vector products here (≤ 10k × 256 per request): one thread is as fast, and its
# spinning worker threads fight onnxruntime's for the cores (measured: 40 → 18 ms per /sticker at 4k stickers on
# 2 cores). Set before numpy is first imported; an explicit OPENBLAS_NUM_THREADS wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
