"""Issue 7 end to end: simulated console chats (logging on and off, a /forget) → export → a short retrain of a
tiny PBR model → promotion → a running service swaps to it → rollback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bot.console import ConsoleChat
from engine.registry import ModelRegistry
from retraining.settings import RetrainSettings
from tests.engine.test_service import make_pack

sys.path.insert(0, str(Path(__file__).parents[1] / "training"))
from tiny_data import make_dataset

LINES = {
    "pizza": "pizza with cheese, one slice please",
    "sushi": "sushi with fish and rice tonight",
    "cake": "birthday cake with candles!",
    "taco": "taco with salsa in a tortilla",
}


def _tiny_base(tmp: Path, data: Path) -> tuple[Path, Path, Path]:
    """A tiny PBR checkpoint, its fp32 model dir, and the training config a retrain reuses."""
    from export.pbr import export_pbr
    from training.build import build_model
    from training.config import load_config
    from training.model import save_checkpoint

    cfg_file = tmp / "tiny.yaml"
    cfg_file.write_text(
        json.dumps(
            {
                "tiny": True,
                "data": {
                    "train": [{"path": str(data)}],
                    "val": [{"path": str(data), "name": "tiny", "split": "val"}],
                    "cache_dir": str(tmp / "cache"),
                    "views": 3,
                },
                "teacher": {"epochs": 10},
                "batch_size": 16,
                "optim": {"warmup_steps": 2},
            }
        )
    )
    model = build_model(load_config(cfg_file))
    ckpt = save_checkpoint(tmp / "base.pt", model)
    export_pbr(ckpt, tmp / "base-model", quantize=False)
    return ckpt, tmp / "base-model", cfg_file


@pytest.mark.slow
async def test_log_export_retrain_promote_rollback(tmp_path: Path, database_url: str):
    from engine.service import open_service
    from migrations import upgrade_async
    from retraining.retrain import retrain
    from training.chatlogs import export_from_service, read_meta
    from training.data.format import StickerDataset

    ckpt, base_dir, cfg_file = _tiny_base(tmp_path, make_dataset(tmp_path / "tiny-data"))
    settings = RetrainSettings(
        _env_file=None,
        home=tmp_path / "home",
        DATABASE_URL=database_url,
        default_packs=[],
        sticker_cooldown_s=0,
        retrain_config=cfg_file,
        retrain_min_samples=5,
        retrain_margin=100.0,  # the tiny model is random: promotion itself is what is tested here
        model_check_s=0,
        usage_prior_weight=0.5,
    )
    registry = ModelRegistry(settings.models_dir)
    base = registry.add(base_dir, ckpt, label="base")
    registry.promote(base.name)
    await upgrade_async(settings.db_url)
    service = await open_service(settings)
    try:
        pack = make_pack(tmp_path / "food")
        on = ConsoleChat(service, "opted-in", out_dir=tmp_path / "out", cooldown=False)
        off = ConsoleChat(service, "opted-out", out_dir=tmp_path / "out", cooldown=False)
        for chat in (on, off):
            await chat.handle(f"/addpack {pack}")
        assert await on.handle("/logging on") == ["Logging for retraining is on in this chat."]
        for round_ in range(4):
            for sticker, line in LINES.items():
                for chat in (on, off):
                    await chat.handle(f"alice: {line} ({round_})")
                    await chat.handle(f"bob: SECRET-{chat.chat_name} {sticker}")
                    await chat.handle(f"/send {sticker}")
            await on.handle("carol: carol-was-here cake")
            await on.handle("/send cake")
            await on.handle("/sticker 3")
            on.speaker = "alice"  # alice picks from what carol asked for
            await on.handle("/pick 2")
        assert (await on.handle("/forget carol"))[0].startswith("Forgot carol")

        logs = tmp_path / "logs"
        info = await export_from_service(service, logs, salt=b"pepper", val_fraction=0.25)
        ds = StickerDataset.open(logs)
        train, val = ds.load("train"), ds.load("val")
        assert (
            info["chats"] == 1 and len(train) + len(val) == 4 * 4 + 4
        )  # bob's 16 sends + alice's 4 picks; carol's gone
        text = "".join(p.read_text() for p in logs.glob("release_*"))
        assert "opted-out" not in text and "carol" not in text and "pepper" not in text
        assert '"alice"' not in text and "console:" not in text  # ids are salted hashes
        t_train = [m["at"] for m in read_meta(logs, "train")]
        t_val = [m["at"] for m in read_meta(logs, "val")]
        assert max(t_train) < min(t_val)  # split by time, no leakage
        assert all(len(ds.candidates(s)) == 5 for s in val)  # the chat's own stickers
        assert all(ds.index.find(c).is_file() for s in val for c in ds.candidates(s))

        report = retrain(settings, logs, tmp_path / "work", overrides=["teacher.epochs=10"])
        assert report["promoted"] and report["serving_was"] == base.name
        assert set(report["metrics"]["candidate"]) == {"chat-logs", "chat-logs+prior", "tiny"}
        new = registry.current()
        assert new is not None and new.name == report["version"] and new.checkpoint is not None
        assert new.info["metrics"]["serving"]["chat-logs"]["n"] == len(val)

        assert await service.check_model()  # the running service picks it up without a restart
        assert service.ranker.version == new.manifest["version"]
        assert (await on.sticker(3))[0].startswith("Stickers for")  # re-embedded lazily

        assert registry.rollback().name == base.name
        assert await service.check_model()
        assert service.ranker.version == base.manifest["version"]
    finally:
        await service.close()
