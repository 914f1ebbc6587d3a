"""The corrections store: digits users labelled, in one SQLite file, with zip export and import.

One connection per call (Streamlit serves sessions from many threads), WAL, one transaction per
change, parameterised queries only. A file that is corrupt or not SQLite is reported and left as it
is. Torch-free, so that the CLI's `corrections` verbs start fast.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sqlite3
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from .errors import UserError, reason

DB_ENV = "MNIST_CORRECTIONS_DB"
DEFAULT_DB = Path("data") / "corrections.sqlite"
SOURCES = ("canvas", "upload", "cli")
MAX_PNG_BYTES = 1024 * 1024  # an example's stored image; larger ones are downscaled
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DOWNSCALE_STEP = 0.7
INPUT_SIDE = 28
BUSY_TIMEOUT_S = 30  # how long a writer waits for another's transaction
LABELS_CSV = "labels.csv"
CSV_FIELDS = ("file", "label", "predicted", "confidence", "source", "created_at", "checkpoint")
# A zip made by hand (scans and a labels.csv) needs only these; the other columns may be left out.
REQUIRED_CSV_FIELDS = ("file", "label")
HAND_MADE_SOURCE = "upload"  # an image without a source came from a file
MAX_ZIP_BYTES = 512 * 1024 * 1024  # uncompressed, checked before anything is read
MAX_ZIP_MEMBERS = 50_000

# Each entry takes the schema from its index to the next version; a store records its version.
MIGRATIONS = (
    """
    CREATE TABLE examples (
        id INTEGER PRIMARY KEY,
        image_sha256 TEXT NOT NULL,
        label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
        predicted INTEGER CHECK (predicted BETWEEN 0 AND 9),
        confidence REAL CHECK (confidence BETWEEN 0 AND 1),
        checkpoint TEXT,
        source TEXT NOT NULL,
        created_at TEXT NOT NULL,
        png BLOB NOT NULL,
        input28 BLOB NOT NULL,
        UNIQUE (image_sha256, label)
    );
    CREATE INDEX examples_label ON examples (label);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(UserError):
    """The store cannot be used (corrupt, not SQLite, newer schema) or an input is refused."""


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


def db_path(path: str | os.PathLike | None = None) -> Path:
    """The store: the argument, else $MNIST_CORRECTIONS_DB, else data/corrections.sqlite."""
    return Path(path or os.environ.get(DB_ENV) or DEFAULT_DB)


@contextmanager
def _connect(path: str | os.PathLike | None) -> Iterator[sqlite3.Connection]:
    """A connection for one call, schema up to date. Autocommit: callers open their transactions."""
    file = db_path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(file, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the corrections store {file}: {reason(exc)}") from exc
    try:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            _migrate(conn, file)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{file} is not a usable corrections store ({reason(exc)}); it was left as it is: "
                f"move it away or set {DB_ENV} to another file"
            ) from exc
        yield conn
    finally:
        conn.close()


def _version(conn: sqlite3.Connection) -> int | None:
    """The store's schema version, read without taking the write lock; None for a new file."""
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    if conn.execute(query).fetchone() is None:
        return None
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return row[0] if row else None


def _migrate(conn: sqlite3.Connection, file: Path) -> None:
    if _version(conn) == SCHEMA_VERSION:  # the usual case: readers never wait for a writer
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(f"{file} was written by a newer version of this app (schema {version})")
        for migration in MIGRATIONS[version:]:
            for statement in filter(str.strip, migration.split(";")):
                conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif version < SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlock between two upgrades
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


def _check_label(label: int, what: str = "label") -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label <= 9:
        raise StoreError(f"{what} must be a digit from 0 to 9, not {label!r}")
    return int(label)


def _insert(conn: sqlite3.Connection, example: Example) -> tuple[int, bool]:
    """(id, True) for a new row; (the existing id, False) when this image has this label already."""
    digest = hashlib.sha256(example.png).hexdigest()
    cursor = conn.execute(
        "INSERT OR IGNORE INTO examples (image_sha256, label, predicted, confidence, checkpoint, source,"
        " created_at, png, input28) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (digest, example.label, example.predicted, example.confidence, example.checkpoint, example.source,
         example.created_at, example.png, example.input28.astype(np.float32).tobytes()),
    )  # fmt: skip
    if cursor.rowcount:
        return cursor.lastrowid, True
    found = conn.execute(
        "SELECT id FROM examples WHERE image_sha256 = ? AND label = ?", (digest, example.label)
    ).fetchone()
    return found[0], False


def add_example(example: Example, path: str | os.PathLike | None = None) -> tuple[int, bool]:
    """Save one example in its own transaction: (its id, whether it was new)."""
    _check_label(example.label)
    if example.source not in SOURCES:
        raise StoreError(f"source must be one of {', '.join(SOURCES)}, not {example.source!r}")
    with _connect(path) as conn, _transaction(conn):
        return _insert(conn, example)


def _row(row: tuple) -> Example:
    id_, label, predicted, confidence, checkpoint, source, created_at, png, input28 = row
    pixels = np.frombuffer(input28, dtype=np.float32).reshape(INPUT_SIDE, INPUT_SIDE)
    return Example(id_, label, predicted, confidence, checkpoint, source, created_at, png, pixels)


COLUMNS = "id, label, predicted, confidence, checkpoint, source, created_at, png, input28"


def list_examples(
    path: str | os.PathLike | None = None, label: int | None = None, newest: int | None = None
) -> list[Example]:
    """Every example (or those of one label), oldest first; or only the `newest` few, newest first."""
    where, values = ("", []) if label is None else ("WHERE label = ?", [_check_label(label)])
    order = "ORDER BY id" if newest is None else "ORDER BY id DESC LIMIT ?"
    values += [] if newest is None else [newest]
    with _connect(path) as conn:
        rows = conn.execute(f"SELECT {COLUMNS} FROM examples {where} {order}", values).fetchall()
    return [_row(row) for row in rows]


def counts(path: str | os.PathLike | None = None) -> dict[int, int]:
    """Examples per label, for every digit (0 where there are none)."""
    with _connect(path) as conn:
        found = dict(conn.execute("SELECT label, COUNT(*) FROM examples GROUP BY label").fetchall())
    return {digit: found.get(digit, 0) for digit in range(10)}


def relabel(example_id: int, label: int, path: str | os.PathLike | None = None) -> None:
    """Give an example another label; refused if the same image already has that label."""
    label = _check_label(label)
    with _connect(path) as conn, _transaction(conn):
        try:
            changed = conn.execute("UPDATE examples SET label = ? WHERE id = ?", (label, example_id)).rowcount
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"this image is already stored as a {label}") from exc
    if not changed:
        raise StoreError(f"no example with id {example_id}")


def delete(example_id: int, path: str | os.PathLike | None = None) -> None:
    with _connect(path) as conn, _transaction(conn):
        if not conn.execute("DELETE FROM examples WHERE id = ?", (example_id,)).rowcount:
            raise StoreError(f"no example with id {example_id}")


def content_hash(path: str | os.PathLike | None = None) -> str:
    """A digest of what the store holds (each image and its label), whatever the ids and times."""
    with _connect(path) as conn:
        return _digest(conn.execute("SELECT image_sha256, label FROM examples").fetchall())


def examples_hash(examples: list[Example]) -> str:
    """content_hash of a store that held these examples."""
    return _digest([(hashlib.sha256(e.png).hexdigest(), e.label) for e in examples])


def _digest(pairs: list[tuple[str, int]]) -> str:
    text = "".join(f"{digest}:{label};" for digest, label in sorted(pairs))
    return hashlib.sha256(text.encode()).hexdigest()


def _member_name(example: Example) -> str:
    return f"{example.id:06d}-{example.label}.png"


def export_zip(out: str | os.PathLike, path: str | os.PathLike | None = None) -> dict:
    """Every example as PNG, plus labels.csv; written atomically. Returns a summary."""
    from .checkpoint import write_atomically

    examples = list_examples(path)
    data = zip_bytes(examples)
    write_atomically(Path(out), lambda f: f.write(data))
    return {"exported": len(examples), "out": str(out), "bytes": len(data)}


def zip_bytes(examples: list[Example]) -> bytes:
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for example in examples:
            name = _member_name(example)
            archive.writestr(name, example.png)
            writer.writerow((name, example.label, _blank(example.predicted), _blank(example.confidence),
                             example.source, example.created_at, _blank(example.checkpoint)))  # fmt: skip
        archive.writestr(LABELS_CSV, table.getvalue())
    return buffer.getvalue()


def _blank(value) -> str:
    return "" if value is None else str(value)


def model_input(processed) -> np.ndarray:
    """(28, 28) float32: a Preprocessed's image as the models see it (MNIST-normalised); a blank
    one is all background."""
    from .data import standardise

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
    from .preprocess import open_image, preprocess

    image = open_image(data)
    is_small_png = data.startswith(PNG_SIGNATURE) and len(data) <= MAX_PNG_BYTES  # kept byte for byte
    png = data if is_small_png else capped_png(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    processed = processed if processed is not None else preprocess(image)
    return Example(0, _check_label(label), predicted, confidence, checkpoint, source, created_at or now(),
                   png, model_input(processed))  # fmt: skip


def _refuse(why: str) -> StoreError:
    return StoreError(f"import refused: {why}; nothing was imported")


def _safe_name(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return not name.startswith(("/", "\\")) and ".." not in parts and not (parts and ":" in parts[0])


def _check_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos = [info for info in archive.infolist() if not info.is_dir()]
    if len(infos) > MAX_ZIP_MEMBERS:
        raise _refuse(f"{len(infos):,} files, more than {MAX_ZIP_MEMBERS:,}")
    total = sum(info.file_size for info in archive.infolist())
    if total > MAX_ZIP_BYTES:
        raise _refuse(
            f"it would unpack to {total / 2**20:,.0f} MB (limit {MAX_ZIP_BYTES // 2**20} MB), a zip bomb?"
        )
    unsafe = [info.filename for info in archive.infolist() if not _safe_name(info.filename)]
    if unsafe:
        raise _refuse(f"unsafe file name {unsafe[0]!r} (absolute, or with ..)")
    return infos


def _optional(value: str, parse, what: str, line: int):
    if value == "":
        return None
    try:
        return parse(value)
    except (ValueError, UserError) as exc:
        raise _refuse(f"{LABELS_CSV} line {line}: bad {what} {value!r}") from exc


def _iso_time(value: str) -> str:
    datetime.fromisoformat(value)  # ValueError when it is no time
    return value


def _confidence(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError(value)
    return number


def _rows(archive: zipfile.ZipFile, names: set[str]) -> list[dict]:
    if LABELS_CSV not in names:
        raise _refuse(f"no {LABELS_CSV} in the zip")
    try:
        reader = csv.DictReader(io.StringIO(archive.read(LABELS_CSV).decode("utf-8")))
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _refuse(f"{LABELS_CSV} is not readable text ({reason(exc)})") from exc
    missing = [f for f in REQUIRED_CSV_FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise _refuse(f"{LABELS_CSV} lacks the column(s) {', '.join(missing)}")
    for line, row in enumerate(rows, start=2):
        if row["file"] not in names:
            raise _refuse(f"{LABELS_CSV} line {line} names {row['file']!r}, which is not in the zip")
        row["label"] = _optional(row["label"], lambda v: _check_label(int(v)), "label", line)
        if row["label"] is None:
            raise _refuse(f"{LABELS_CSV} line {line}: no label")
        row["predicted"] = _optional(
            row.get("predicted") or "", lambda v: _check_label(int(v)), "predicted digit", line
        )
        row["confidence"] = _optional(row.get("confidence") or "", _confidence, "confidence", line)
        row["source"] = row.get("source") or HAND_MADE_SOURCE
        if row["source"] not in SOURCES:
            raise _refuse(f"{LABELS_CSV} line {line}: unknown source {row['source']!r}")
        row["created_at"] = _optional(row.get("created_at") or "", _iso_time, "time", line)
    return rows


def read_zip(data: bytes) -> list[Example]:
    """The examples of an exported zip, every member checked before any is used (StoreError)."""
    from .preprocess import ImageError

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise _refuse("the file is not a zip") from exc
    with archive:
        names = {info.filename for info in _check_members(archive)}
        rows = _rows(archive, names)
        stray = names - {row["file"] for row in rows} - {LABELS_CSV}
        if stray:
            raise _refuse(f"{sorted(stray)[0]!r} is not listed in {LABELS_CSV}")
        examples = []
        for row in rows:
            try:
                examples.append(example_from_image(
                    archive.read(row["file"]), row["label"], row["source"], row["predicted"],
                    row["confidence"], row.get("checkpoint") or None, created_at=row["created_at"],
                ))  # fmt: skip
            except (ImageError, zipfile.BadZipFile, OSError) as exc:
                raise _refuse(f"{row['file']!r} is not a usable image ({reason(exc)})") from exc
    return examples


def import_zip(data: bytes, path: str | os.PathLike | None = None) -> dict:
    """Merge an exported zip into the store in one transaction: all of it or none."""
    examples = read_zip(data)
    with _connect(path) as conn, _transaction(conn):
        new = sum(_insert(conn, example)[1] for example in examples)
    return {"imported": new, "skipped": len(examples) - new, "total": len(examples)}
