"""Corrections to and from a zip: each example as a PNG, plus labels.csv with its label, prediction,
source, time, checkpoint and author. An import checks every member before any is used and goes in one
transaction, so a refused or failed import leaves the store as it was."""

from __future__ import annotations

import csv
import io
import os
import zipfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path, PurePosixPath

from core import corrections
from core.access import EVERYONE, Identity, require_owner
from core.corrections import SOURCES, Example, Where
from core.errors import UserError, reason
from core.store import StoreError, write

LABELS_CSV = "labels.csv"
CSV_FIELDS = ("file", "label", "predicted", "confidence", "source", "created_at", "checkpoint", "author")
REQUIRED_CSV_FIELDS = ("file", "label")
HAND_MADE_SOURCE = "upload"  # an image without a source came from a file
MAX_ZIP_BYTES = 512 * 1024 * 1024  # uncompressed, checked before anything is read
MAX_ZIP_MEMBERS = 50_000


def _member_name(example: Example) -> str:
    return f"{example.id:06d}-{example.label}.png"


def export_zip(
    out: str | os.PathLike, where: Where = None, *, by: Identity, whose: str | None = EVERYONE
) -> dict:
    """`whose` examples as PNG, plus labels.csv; written atomically. Returns a summary."""
    from core.checkpoint import write_atomically

    examples = corrections.list_examples(where, by=by, whose=whose)
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
                             example.source, example.created_at, _blank(example.checkpoint),
                             _blank(example.author)))  # fmt: skip
        archive.writestr(LABELS_CSV, table.getvalue())
    return buffer.getvalue()


def _blank(value) -> str:
    return "" if value is None else str(value)


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
        row["label"] = _optional(row["label"], lambda v: corrections.check_label(int(v)), "label", line)
        if row["label"] is None:
            raise _refuse(f"{LABELS_CSV} line {line}: no label")
        row["predicted"] = _optional(
            row.get("predicted") or "", lambda v: corrections.check_label(int(v)), "predicted digit", line
        )
        row["confidence"] = _optional(row.get("confidence") or "", _confidence, "confidence", line)
        row["source"] = row.get("source") or HAND_MADE_SOURCE
        if row["source"] not in SOURCES:
            raise _refuse(f"{LABELS_CSV} line {line}: unknown source {row['source']!r}")
        row["created_at"] = _optional(row.get("created_at") or "", _iso_time, "time", line)
        row["author"] = _optional(row.get("author") or "", _email, "author", line)
    return rows


def _email(value: str) -> str:
    if "@" not in value:
        raise ValueError(value)
    return value.strip().lower()


def read_zip(data: bytes) -> list[Example]:
    """The examples of an exported zip, every member checked before any is used (StoreError)."""
    from core.images import ImageError

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
                example = corrections.example_from_image(
                    archive.read(row["file"]), row["label"], row["source"], row["predicted"],
                    row["confidence"], row.get("checkpoint") or None, created_at=row["created_at"],
                )  # fmt: skip
                examples.append(replace(example, author=row["author"]))
            except (ImageError, zipfile.BadZipFile, OSError) as exc:
                raise _refuse(f"{row['file']!r} is not a usable image ({reason(exc)})") from exc
    return examples


def import_zip(data: bytes, where: Where = None, *, by: Identity) -> dict:
    """Merge an exported zip into the store in one transaction (owners only): all of it or none.
    Each example keeps the author its labels.csv names."""
    require_owner(by, "import a zip")
    examples = read_zip(data)
    with write(where) as conn:
        new = sum(corrections.insert(conn, example)[1] for example in examples)
    return {"imported": new, "skipped": len(examples) - new, "total": len(examples)}
