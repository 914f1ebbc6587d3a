"""Moving in what an older app kept on its disk, once: data/corrections.sqlite and data/models/."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from core.clock import iso, now_iso
from core.errors import reason
from core.paths import PROJECT_ROOT
from core.store.engine import IMMEDIATE, StoreUnavailable, as_url, insert_example
from core.store.schema import examples, models, moved_in

LEGACY_CORRECTIONS = Path("data") / "corrections.sqlite"  # the app's store before this one
MODELS_DIR_ENV = "MNIST_MODELS_DIR"
NOT_IN_LEGACY = ("id", "author")  # columns an old corrections.sqlite lacks (its rows are the local user's)


def move_in_once(engine: Engine, url: str) -> None:
    """What an older app kept on its disk is copied into the store of the settings the first time
    it is used: the rows of data/corrections.sqlite and each checkpoint in data/models/. The files
    stay where they are; each copy is recorded in the store, so it never happens twice."""
    with engine.connect().execution_options(**{IMMEDIATE: True}) as connection, connection.begin():
        done = set(connection.execute(select(moved_in.c.source)).scalars())
        legacy = LEGACY_CORRECTIONS.absolute()
        if legacy.is_file() and url != as_url(legacy) and str(legacy) not in done:
            copied = sum(insert_example(connection, row)[1] for row in _legacy_rows(legacy))
            connection.execute(moved_in.insert().values(source=str(legacy), rows=copied, at=now_iso()))
        for file in sorted(legacy_models_dir().glob("*.pt")):
            if str(file) not in done:
                copied = _model_if_new(connection, file)
                connection.execute(moved_in.insert().values(source=str(file), rows=copied, at=now_iso()))


def legacy_models_dir() -> Path:
    """Where the app kept the models it trained before the store: $MNIST_MODELS_DIR, else data/models."""
    return Path(os.environ.get(MODELS_DIR_ENV) or PROJECT_ROOT / "data" / "models").absolute()


def _model_if_new(connection: Connection, file: Path) -> int:
    """A checkpoint file into the models table under its file name, unless that name is taken."""
    if connection.execute(select(models.c.name).where(models.c.name == file.name)).first():
        return 0
    made = iso(datetime.fromtimestamp(file.stat().st_mtime, UTC))
    connection.execute(models.insert().values(name=file.name, created_at=made, checkpoint=file.read_bytes()))
    return 1


def _legacy_rows(path: Path) -> list[dict]:
    """The old file's examples, read only: neither migrated nor switched to WAL, left as it was."""
    columns = [column.name for column in examples.columns if column.name not in NOT_IN_LEGACY]
    legacy = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        rows = legacy.execute(f"SELECT {', '.join(columns)} FROM examples ORDER BY id").fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreUnavailable(
            f"{path} cannot be moved into the store ({reason(exc)}); it was left as it is"
        ) from exc
    finally:
        legacy.close()
    return [dict(zip(columns, row, strict=True)) for row in rows]
