"""Corrections: digits users labelled, kept in the store (core.store); their zip export and import
are core.corrections_zip.

One transaction per change, through SQLAlchemy Core. A store that is corrupt, unreachable or newer
is reported in one line and left as it is. Torch-free, so that the CLI's `corrections` verbs start
fast. `where`, in every function, is the store: a URL, a SQLite file's path, or None for the settings.
`by` is the acting identity (core.access): every write, and every read of stored examples, asks it.
`whose` picks examples by author: an email, None (the local user's), or EVERYONE.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from core.access import (
    EVERYONE,
    Identity,
    may_change,
    require,
    require_owner,
    require_teacher,
    visible_author,
)
from core.clock import now_iso
from core.store import StoreError, describe, read, store_url, write
from core.store import blobs as stored_models
from core.store.engine import insert_example
from core.store.schema import examples as table

Where = str | os.PathLike | None  # a store: its URL, a SQLite file, or None for the settings
SOURCES = ("canvas", "upload", "cli")
MAX_PNG_BYTES = 1024 * 1024  # an example's stored image; larger ones are downscaled
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DOWNSCALE_STEP = 0.7
INPUT_SIDE = 28
# A zip made by hand (scans and a labels.csv) needs only these; the other columns may be left out.


@dataclass
class Example:
    id: int
    label: int
    predicted: int | None
    confidence: float | None
    checkpoint: str | None
    source: str
    created_at: str
    png: bytes
    input28: np.ndarray  # (28, 28) float32, the normalised model input
    author: str | None = None  # who added it: an email, or None for the local user


def where_stored(where: Where = None) -> str:
    """The store, for people (a password never shows)."""
    return describe(store_url(where))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def capped_png(image: Image.Image) -> bytes:
    """The image as PNG, downscaled step by step until it fits MAX_PNG_BYTES."""
    data = _png(image)
    while len(data) > MAX_PNG_BYTES:
        image = image.resize(
            (max(1, int(image.width * DOWNSCALE_STEP)), max(1, int(image.height * DOWNSCALE_STEP)))
        )
        data = _png(image)
    return data


def check_label(label: int, what: str = "label") -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label <= 9:
        raise StoreError(f"{what} must be a digit from 0 to 9, not {label!r}")
    return int(label)


def insert(conn: Connection, example: Example) -> tuple[int, bool]:
    """(id, True) for a new row; (the existing id, False) when this image has this label already."""
    row = {
        "image_sha256": hashlib.sha256(example.png).hexdigest(), "label": example.label,
        "predicted": example.predicted, "confidence": example.confidence, "checkpoint": example.checkpoint,
        "source": example.source, "created_at": example.created_at, "png": example.png,
        "input28": example.input28.astype(np.float32).tobytes(), "author": example.author,
    }  # fmt: skip
    return insert_example(conn, row)


def add_example(example: Example, where: Where = None, *, by: Identity) -> tuple[int, bool]:
    """Save one example, as `by`'s, in its own transaction: (its id, whether it was new)."""
    require_teacher(by)
    check_label(example.label)
    if example.source not in SOURCES:
        raise StoreError(f"source must be one of {', '.join(SOURCES)}, not {example.source!r}")
    with write(where) as conn:
        return insert(conn, replace(example, author=by.email))


def _example(row) -> Example:
    pixels = np.frombuffer(row.input28, dtype=np.float32).reshape(INPUT_SIDE, INPUT_SIDE)
    return Example(row.id, row.label, row.predicted, row.confidence, row.checkpoint, row.source,
                   row.created_at, bytes(row.png), pixels, row.author)  # fmt: skip


def _of(query, whose: str | None):
    """The query narrowed to one author's examples, unless `whose` is EVERYONE."""
    if whose == EVERYONE:
        return query
    return query.where(table.c.author.is_(None) if whose is None else table.c.author == whose)


def list_examples(
    where: Where = None,
    label: int | None = None,
    newest: int | None = None,
    *,
    by: Identity,
    whose: str | None = EVERYONE,
) -> list[Example]:
    """`whose` examples (or those of one label), oldest first; or only the `newest` few, newest
    first. Owners see anyone's; a signed-in user only their own."""
    query = _of(select(table), _visible(by, whose))
    if label is not None:
        query = query.where(table.c.label == check_label(label))
    query = query.order_by(table.c.id) if newest is None else query.order_by(table.c.id.desc()).limit(newest)
    with read(where) as conn:
        return [_example(row) for row in conn.execute(query)]


def _visible(by: Identity, whose: str | None) -> str | None:
    require(visible_author(by, whose) == whose, by, "see another person's examples")
    return whose


def counts(where: Where = None, *, by: Identity, whose: str | None = EVERYONE) -> dict[int, int]:
    """`whose` examples per label, for every digit (0 where there are none)."""
    query = _of(select(table.c.label, func.count()), _visible(by, whose)).group_by(table.c.label)
    with read(where) as conn:
        found = dict(conn.execute(query).all())
    return {digit: found.get(digit, 0) for digit in range(10)}


def counts_by_author(where: Where = None, *, by: Identity) -> dict[str | None, dict[int, int]]:
    """{author: {digit: examples}} for everyone who added any (owners only: the class view)."""
    require_owner(by, "see everyone's examples")
    query = select(table.c.author, table.c.label, func.count()).group_by(table.c.author, table.c.label)
    found: dict[str | None, dict[int, int]] = {}
    with read(where) as conn:
        for author, label, count in conn.execute(query):
            found.setdefault(author, dict.fromkeys(range(10), 0))[label] = count
    return found


def _require_change(conn: Connection, example_id: int, by: Identity) -> None:
    """Refuse to change an example that is gone, or that `by` may not change (core.access)."""
    row = conn.execute(select(table.c.author).where(table.c.id == example_id)).first()
    if row is None:
        raise StoreError(f"no example with id {example_id}")
    require(may_change(by, row.author), by, f"change example {example_id}: it is someone else's")


def relabel(example_id: int, label: int, where: Where = None, *, by: Identity) -> None:
    """Give an example another label; refused if the same image already has that label."""
    label = check_label(label)
    try:
        with write(where) as conn:
            _require_change(conn, example_id, by)
            conn.execute(table.update().where(table.c.id == example_id).values(label=label))
    except IntegrityError as exc:
        raise StoreError(f"this image is already stored as a {label}") from exc


def delete(example_id: int, where: Where = None, *, by: Identity) -> None:
    with write(where) as conn:
        _require_change(conn, example_id, by)
        conn.execute(table.delete().where(table.c.id == example_id))


def content_hash(where: Where = None, whose: str | None = EVERYONE) -> str:
    """A digest of what the store holds of `whose` (each image and its label), whatever the ids and
    times."""
    with read(where) as conn:
        return _digest(conn.execute(_of(select(table.c.image_sha256, table.c.label), whose)).all())


def copy_store(source: str | os.PathLike, target: str | os.PathLike, *, by: Identity) -> dict:
    """Everything of one store into another (owners only): the examples (duplicates skipped) and the
    models (a name the target holds already is skipped), each in one transaction. Then both stores
    are counted and hashed, and the copy is refused as incomplete unless the target holds all of
    the source."""
    require_owner(by, "copy a store")
    if store_url(source) == store_url(target):
        raise StoreError("the two stores are the same")
    examples = list_examples(source, by=by)
    with write(target) as conn:
        copied = sum(insert(conn, example)[1] for example in examples)
    listed = stored_models.listing(source)  # (name, created_at, size), read once
    models = {name: stored_models.load(name, source) for name, _, _ in listed}
    taken = {name for name, _, _ in stored_models.listing(target)}
    for name, created, _ in listed:
        if name not in taken:
            stored_models.save(name, models[name], created, target)
    report = {"from": where_stored(source), "to": where_stored(target),
              "examples": _compared(examples, list_examples(target, by=by), _example_key, copied),
              "models": _compared(list(models.items()), _stored_models_of(target), _model_key,
                                  len(set(models) - taken))}  # fmt: skip
    if any(part["missing"] for part in (report["examples"], report["models"])):
        raise StoreError(f"the copy into {where_stored(target)} is incomplete")
    return report


def _example_key(example: Example) -> str:
    return f"{hashlib.sha256(example.png).hexdigest()}:{example.label}"


def _model_key(model: tuple[str, bytes]) -> str:
    return f"{model[0]}:{hashlib.sha256(model[1]).hexdigest()}"


def _stored_models_of(where: str | os.PathLike) -> list[tuple[str, bytes]]:
    return [(name, stored_models.load(name, where)) for name, _, _ in stored_models.listing(where)]


def _compared(source: list, target: list, key, copied: int) -> dict:
    """Counts and content hashes of one kind of row in both stores, and how many of the source's
    rows the target lacks (0 for a complete copy)."""
    source_keys, target_keys = {key(row) for row in source}, {key(row) for row in target}
    return {"copied": copied, "skipped": len(source) - copied, "from_rows": len(source),
            "to_rows": len(target), "from_hash": _keys_digest(source_keys),
            "to_hash": _keys_digest(target_keys), "missing": len(source_keys - target_keys)}  # fmt: skip


def _keys_digest(keys: set[str]) -> str:
    return hashlib.sha256("".join(f"{k};" for k in sorted(keys)).encode()).hexdigest()


def examples_hash(examples: list[Example]) -> str:
    """content_hash of a store that held these examples."""
    return _digest([(hashlib.sha256(e.png).hexdigest(), e.label) for e in examples])


def _digest(pairs: list[tuple[str, int]]) -> str:
    return _keys_digest({f"{digest}:{label}" for digest, label in pairs})


def model_input(processed) -> np.ndarray:
    """(28, 28) float32: a Preprocessed's image as the models see it (MNIST-normalised); a blank
    one is all background."""
    from core.data import standardise

    return standardise(np.asarray(processed.image28, dtype=np.float32))


def example_from_image(
    data: bytes,
    label: int,
    source: str,
    predicted: int | None = None,
    confidence: float | None = None,
    checkpoint: str | None = None,
    processed=None,
    created_at: str | None = None,
) -> Example:
    """An example from an image file's bytes (ImageError if unreadable); preprocessed unless given."""
    from core.images import open_image
    from core.preprocess import preprocess

    image = open_image(data)
    is_small_png = data.startswith(PNG_SIGNATURE) and len(data) <= MAX_PNG_BYTES  # kept byte for byte
    png = data if is_small_png else capped_png(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    processed = processed if processed is not None else preprocess(image)
    return Example(0, check_label(label), predicted, confidence, checkpoint, source, created_at or now_iso(),
                   png, model_input(processed))  # fmt: skip
