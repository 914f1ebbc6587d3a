"""What owners set for everyone, one text value per key (core.access decides who may)."""

from __future__ import annotations

import os

from sqlalchemy import select

from core.store.engine import read, write
from core.store.schema import settings

DEFAULT_MODEL = "default_model"  # the file name (or store:NAME) of the model new sessions start with


def value(key: str, where: str | os.PathLike | None = None) -> str | None:
    with read(where) as conn:
        return conn.execute(select(settings.c.value).where(settings.c.key == key)).scalar()


def set_value(key: str, text: str, where: str | os.PathLike | None = None) -> None:
    with write(where) as conn:
        conn.execute(settings.delete().where(settings.c.key == key))
        conn.execute(settings.insert().values(key=key, value=text))
