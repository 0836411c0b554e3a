"""stickerpick engine: history, sticker library, ONNX ranking and the service facade.

The engine never imports torch, training code or a platform SDK; every adapter (Telegram, Discord,
console) talks to :class:`engine.service.StickerService`.
"""
