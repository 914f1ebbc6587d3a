"""Checkpoints kept in the store, by name: their bytes, written and read whole in one statement."""

from __future__ import annotations

import os

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.store.engine import StoreError, read, write
from core.store.schema import models, moved_in


def save(name: str, data: bytes, created_at: str, where: str | os.PathLike | None = None) -> None:
    try:
        with write(where) as conn:
            conn.execute(models.insert().values(name=name, created_at=created_at, checkpoint=data))
    except IntegrityError as exc:
        raise StoreError(f"the store already holds a model named {name}") from exc


def load(name: str, where: str | os.PathLike | None = None) -> bytes:
    with read(where) as conn:
        data = conn.execute(select(models.c.checkpoint).where(models.c.name == name)).scalar()
    if data is None:
        raise StoreError(f"no model named {name} in the store")
    return bytes(data)


def holds(name: str, where: str | os.PathLike | None = None) -> bool:
    with read(where) as conn:
        return conn.execute(select(models.c.name).where(models.c.name == name)).first() is not None


def listing(where: str | os.PathLike | None = None) -> list[tuple[str, str, int]]:
    """(name, created_at, size in bytes) of every stored model."""
    size = func.length(models.c.checkpoint)
    with read(where) as conn:
        return [tuple(row) for row in conn.execute(select(models.c.name, models.c.created_at, size))]


def delete(name: str, where: str | os.PathLike | None = None) -> None:
    with write(where) as conn:
        if not conn.execute(models.delete().where(models.c.name == name)).rowcount:
            raise StoreError(f"{name} is already gone")


def moved_in_files(where: str | os.PathLike | None = None) -> set[str]:
    """The files whose contents were copied into the store (listed from the store only)."""
    with read(where) as conn:
        return set(conn.execute(select(moved_in.c.source)).scalars())
