"""The corrections store on images the tests draw: saving, deduplication, relabelling, export and
import that lose nothing, hostile zips, concurrent writers, a killed writer and bad files."""

import csv
import dataclasses
import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import corrections, corrections_zip
from core.access import LOCAL, USER, Identity
from core.catalog import delete_checkpoint, list_checkpoints
from core.checkpoint import load_checkpoint
from core.corrections import (
    MAX_PNG_BYTES,
    StoreError,
    add_example,
    content_hash,
    counts,
    delete,
    example_from_image,
    list_examples,
    relabel,
)
from core.corrections_zip import export_zip, import_zip
from core.store import describe, engine, store_url
from tests.conftest import ROOT, save_untrained_mlp
from tests.drawings import encode, one, pen, seven


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """The store each test runs against: a SQLite file, then a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "store.sqlite"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_db(tmp_path):
    """For what only a SQLite file has: its bytes, its pragmas, its write lock."""
    return tmp_path / "store.sqlite"


def _example(image: Image.Image, label: int, **kw):
    return example_from_image(encode(image), label, kw.pop("source", "canvas"), **kw)


def _strokes(n: int) -> list[Image.Image]:
    """n different drawings: a stroke that moves a little each time."""
    return [pen([(100 + 3 * i, 60), (140, 220)]) for i in range(n)]


def test_an_example_keeps_everything_it_was_saved_with(sqlite_db):
    example = _example(seven(), 3, predicted=7, confidence=0.91, checkpoint="cnn.pt", source="upload")
    example_id, new = add_example(example, sqlite_db, by=LOCAL)
    (stored,) = list_examples(sqlite_db, by=LOCAL)
    assert new and stored.id == example_id and (stored.label, stored.predicted) == (3, 7)
    assert (stored.confidence, stored.checkpoint, stored.source) == (0.91, "cnn.pt", "upload")
    assert stored.png == encode(seven()) and stored.created_at == example.created_at
    assert stored.input28.shape == (28, 28) and np.array_equal(stored.input28, example.input28)
    assert stored.input28.max() > 2.0  # normalised ink, as the models see it
    with sqlite3.connect(sqlite_db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0003"


def test_the_same_image_with_the_same_label_is_stored_once(db):
    first, new = add_example(_example(seven(), 7), db, by=LOCAL)
    again, again_new = add_example(_example(seven(), 7), db, by=LOCAL)
    other, other_new = add_example(_example(seven(), 1), db, by=LOCAL)
    assert new and not again_new and again == first and other_new and other != first
    assert counts(db, by=LOCAL) == {d: {1: 1, 7: 1}.get(d, 0) for d in range(10)}


def test_a_large_image_is_stored_as_a_png_of_at_most_1_mb(db):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8))
    big = encode(noise, "JPEG", quality=98)
    add_example(example_from_image(big, 4, "upload"), db, by=LOCAL)
    stored = list_examples(db, by=LOCAL)[0].png
    assert len(stored) <= MAX_PNG_BYTES and stored.startswith(b"\x89PNG")
    assert 0 < Image.open(io.BytesIO(stored)).width < 1200  # downscaled to fit


def test_relabel_and_delete(db):
    first, _ = add_example(_example(seven(), 1), db, by=LOCAL)
    second, _ = add_example(_example(seven(), 7), db, by=LOCAL)
    with pytest.raises(StoreError, match="already stored as a 7"):
        relabel(first, 7, db, by=LOCAL)  # it would duplicate the second
    relabel(second, 2, db, by=LOCAL)
    assert [(e.id, e.label) for e in list_examples(db, by=LOCAL)] == [(first, 1), (second, 2)]
    delete(first, db, by=LOCAL)
    assert [e.id for e in list_examples(db, by=LOCAL)] == [second]
    with pytest.raises(StoreError, match="no example"):
        delete(first, db, by=LOCAL)
    with pytest.raises(StoreError, match="0 to 9"):
        relabel(second, 10, db, by=LOCAL)


def test_the_newest_examples_come_first_and_only_as_many_as_asked(db):
    drawings = zip(_strokes(5), [1, 7, 1, 7, 1], strict=True)
    ids = [add_example(_example(image, label), db, by=LOCAL)[0] for image, label in drawings]
    assert [e.id for e in list_examples(db, newest=2, by=LOCAL)] == [ids[4], ids[3]]
    assert [e.id for e in list_examples(db, label=1, newest=2, by=LOCAL)] == [ids[4], ids[2]]
    assert [e.id for e in list_examples(db, by=LOCAL)] == ids  # without a limit: all of them, oldest first


def test_reading_the_store_does_not_wait_for_a_writer(sqlite_db, monkeypatch):
    add_example(_example(seven(), 7), sqlite_db, by=LOCAL)
    monkeypatch.setattr(engine, "SQLITE_BUSY_S", 0.1)  # waiting for the lock would fail at once
    engine._engines.clear()
    writer = sqlite3.connect(sqlite_db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another session is saving
    try:
        assert counts(sqlite_db, by=LOCAL)[7] == 1
        assert [e.label for e in list_examples(sqlite_db, by=LOCAL)] == [7]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_export_then_import_loses_nothing(db, tmp_path):
    add_example(_example(seven(), 7, predicted=1, confidence=0.55, checkpoint="mlp.pt"), db, by=LOCAL)
    add_example(_example(one(), 1, source="upload"), db, by=LOCAL)
    add_example(example_from_image(encode(seven()), 2, "cli"), db, by=LOCAL)
    export_zip(tmp_path / "out.zip", db, by=LOCAL)
    other = tmp_path / "other.sqlite"
    imported = import_zip((tmp_path / "out.zip").read_bytes(), other, by=LOCAL)
    assert imported == {"imported": 3, "skipped": 0, "total": 3}
    fields = ("label", "predicted", "confidence", "checkpoint", "source", "created_at", "png", "author")
    for a, b in zip(list_examples(db, by=LOCAL), list_examples(other, by=LOCAL), strict=True):
        assert all(getattr(a, f) == getattr(b, f) for f in fields) and np.array_equal(a.input28, b.input28)
    assert content_hash(db) == content_hash(other)
    again = import_zip((tmp_path / "out.zip").read_bytes(), other, by=LOCAL)
    assert again == {"imported": 0, "skipped": 3, "total": 3}  # merged: duplicates skipped


def _zip(
    members: dict[str, bytes], rows: list[list[str]] | None = None, header=None, method=zipfile.ZIP_STORED
):
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(header or corrections_zip.CSV_FIELDS)
    writer.writerows(rows or [])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("labels.csv", table.getvalue())
    return buffer.getvalue()


def _row(name: str, label="7") -> list[str]:
    return [name, label, "", "", "canvas", "2026-11-25T10:00:00+00:00", ""]


PNG = encode(seven())


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (b"not a zip at all", "not a zip"),
        (_zip({"../evil.png": PNG}, [_row("../evil.png")]), "unsafe file name"),
        (_zip({"/abs.png": PNG}, [_row("/abs.png")]), "unsafe file name"),
        (_zip({"a.png": PNG, "notes.txt": b"hello"}, [_row("a.png")]), "'notes.txt' is not listed"),
        (_zip({"a.txt": b"hello"}, [_row("a.txt")]), "'a.txt' is not a usable image"),
        (_zip({"a.png": PNG}, [_row("a.png", "12")]), "bad label '12'"),
        (_zip({"a.png": PNG}, [_row("a.png", "seven")]), "bad label 'seven'"),
        (_zip({"a.png": PNG}, [_row("b.png")]), "names 'b.png', which is not in the zip"),
        (_zip({"a.png": PNG}, [["a.png"]], header=["file"]), "lacks the column"),
        (
            _zip({"a.png": PNG}, [["a.png", "7", "yesterday"]], header=["file", "label", "created_at"]),
            "bad time",
        ),
        (_zip({"a.png": PNG}, [[*_row("a.png")[:4], "fax", *_row("a.png")[5:]]]), "unknown source 'fax'"),
        (_zip({"a.png": PNG}, [[*_row("a.png")[:3], "1.5", *_row("a.png")[4:]]]), "bad confidence '1.5'"),
        (_zip({"a.png": PNG}, [[*_row("a.png")[:3], "-0.1", *_row("a.png")[4:]]]), "bad confidence '-0.1'"),
    ],
)
def test_a_hostile_or_malformed_zip_is_refused_and_nothing_is_imported(db, archive, message):
    add_example(_example(one(), 1), db, by=LOCAL)
    with pytest.raises(StoreError, match=message):
        import_zip(archive, db, by=LOCAL)
    assert len(list_examples(db, by=LOCAL)) == 1


def test_a_zip_bomb_is_refused_before_anything_is_read(db, monkeypatch):
    """Compressed, as real bombs are: the guard reads the sizes the members declare unpacked, not the
    few bytes they take in the zip."""
    monkeypatch.setattr(corrections_zip, "MAX_ZIP_BYTES", 100_000)
    bomb = _zip(
        {"a.png": PNG, "b.png": bytes(200_000)}, [_row("a.png"), _row("b.png")], method=zipfile.ZIP_DEFLATED
    )
    assert len(bomb) < 10_000  # it packs to a few kB
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *a: pytest.fail("a member was read"))
    with pytest.raises(StoreError, match="zip bomb"):
        import_zip(bomb, db, by=LOCAL)


def test_a_zip_made_by_hand_needs_only_file_and_label(db):
    scans = {f"scan-{i}.png": encode(image) for i, image in enumerate(_strokes(2))}
    rows = [[name, str(label)] for name, label in zip(scans, (4, 7), strict=True)]
    assert import_zip(_zip(scans, rows, header=["file", "label"]), db, by=LOCAL)["imported"] == 2
    stored = sorted(list_examples(db, by=LOCAL), key=lambda e: e.label)
    assert [(e.label, e.predicted, e.confidence, e.source) for e in stored] == [
        (4, None, None, "upload"), (7, None, None, "upload")
    ]  # fmt: skip
    assert all(e.created_at for e in stored)


def test_an_image_over_the_pixel_limit_is_refused(db):
    huge = encode(Image.new("1", (8000, 5001)))  # 40 million pixels, a few kB as PNG
    with pytest.raises(StoreError, match="too large"):
        import_zip(_zip({"a.png": huge}, [_row("a.png")]), db, by=LOCAL)


def test_an_import_that_fails_while_writing_leaves_the_store_as_it_was(db, monkeypatch):
    """The rollback itself: the third of four writes fails, after two went in."""
    add_example(_example(one(), 1), db, by=LOCAL)
    before = content_hash(db)
    good = {f"{i}.png": encode(image) for i, image in enumerate(_strokes(4))}
    insert, written = corrections.insert, []

    def failing_insert(conn, example):
        if len(written) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        written.append(example)
        return insert(conn, example)

    monkeypatch.setattr(corrections, "insert", failing_insert)
    with pytest.raises(sqlite3.OperationalError):
        import_zip(_zip(good, [_row(name) for name in good]), db, by=LOCAL)
    assert len(written) == 2 and content_hash(db) == before and len(list_examples(db, by=LOCAL)) == 1


def test_an_import_is_all_or_nothing(db):
    good = {f"{i}.png": encode(image) for i, image in enumerate(_strokes(3))}
    rows = [_row(name) for name in good] + [_row("bad.png")]
    with pytest.raises(StoreError):
        import_zip(_zip({**good, "bad.png": b"broken"}, rows), db, by=LOCAL)
    assert list_examples(db, by=LOCAL) == []


def test_eight_processes_adding_at_once_store_every_example(db, tmp_path):
    files = []
    for i, image in enumerate(_strokes(8)):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(encode(image))
    command = [sys.executable, "-m", "core", "corrections", "add", "--label", "1", "--db", str(db)]
    writers = [subprocess.Popen([*command, str(f)], cwd=ROOT, stdout=subprocess.PIPE) for f in files]
    outputs = [w.communicate(timeout=120)[0] for w in writers]
    assert [w.returncode for w in writers] == [0] * 8, outputs
    assert len(list_examples(db, by=LOCAL)) == 8


WRITER = """
import sys, time
from core import corrections
from core.store import write
from tests.drawings import encode, seven
with write(sys.argv[1]) as conn:
    corrections.insert(conn, corrections.example_from_image(encode(seven()), 2, "cli"))
    print("inside", flush=True)
    time.sleep(120)
"""


def test_a_writer_killed_in_the_middle_of_a_save_leaves_a_sound_store(db):
    add_example(_example(one(), 1), db, by=LOCAL)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "inside"  # its transaction is open
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
    if isinstance(db, Path):  # SQLite: the file itself is sound; PostgreSQL aborted the transaction
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [e.label for e in list_examples(db, by=LOCAL)] == [1]  # the killed save left nothing behind
    add_example(_example(seven(), 2), db, by=LOCAL)  # and the store takes the next save


@pytest.mark.parametrize("content", [b"garbage, not SQLite", b"SQLite format 3\x00" + bytes(200)])
def test_a_corrupt_store_is_reported_and_left_as_it_is(tmp_path, content):
    bad = tmp_path / "store.sqlite"
    bad.write_bytes(content)
    with pytest.raises(StoreError, match="not a usable store.*left as it is"):
        list_examples(bad, by=LOCAL)
    with pytest.raises(StoreError):
        add_example(_example(seven(), 7), bad, by=LOCAL)
    assert bad.read_bytes() == content


def test_a_store_from_a_newer_version_is_refused_and_left_alone(sqlite_db):
    add_example(_example(seven(), 7), sqlite_db, by=LOCAL)
    with sqlite3.connect(sqlite_db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    engine._ready.clear()  # as a new process would
    with pytest.raises(StoreError, match="newer version of this app"):
        list_examples(sqlite_db, by=LOCAL)
    with sqlite3.connect(sqlite_db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "9999"


LEGACY_COLUMNS = "image_sha256, label, predicted, confidence, checkpoint, source, created_at, png, input28"
LEGACY_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE examples (
    id INTEGER PRIMARY KEY, image_sha256 TEXT NOT NULL,
    label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9), predicted INTEGER CHECK (predicted BETWEEN 0 AND 9),
    confidence REAL CHECK (confidence BETWEEN 0 AND 1), checkpoint TEXT, source TEXT NOT NULL,
    created_at TEXT NOT NULL, png BLOB NOT NULL, input28 BLOB NOT NULL, UNIQUE (image_sha256, label)
);
CREATE INDEX examples_label ON examples (label);
"""


def _legacy_store(path, examples) -> None:
    """A corrections.sqlite as the app wrote it before the store had Alembic migrations."""
    with sqlite3.connect(path) as conn:
        conn.executescript(LEGACY_SCHEMA)
        for e in examples:
            values = (hashlib.sha256(e.png).hexdigest(), e.label, e.predicted, e.confidence, e.checkpoint,
                      e.source, e.created_at, e.png, e.input28.tobytes())  # fmt: skip
            conn.execute(f"INSERT INTO examples ({LEGACY_COLUMNS}) VALUES ({', '.join('?' * 9)})", values)


def test_an_older_store_is_upgraded_in_place_and_keeps_its_examples(sqlite_db):
    _legacy_store(sqlite_db, [_example(seven(), 7, predicted=1, confidence=0.5), _example(one(), 1)])
    assert [(e.label, e.predicted) for e in list_examples(sqlite_db, by=LOCAL)] == [(7, 1), (1, None)]
    with sqlite3.connect(sqlite_db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"examples", "alembic_version", "moved_in"} <= tables and "schema_version" not in tables
    add_example(_example(pen([(60, 60), (200, 200)]), 4), sqlite_db, by=LOCAL)
    assert len(list_examples(sqlite_db, by=LOCAL)) == 3


def test_an_older_apps_corrections_and_models_are_moved_in_once_and_their_files_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(engine.CORRECTIONS_DB_ENV)  # the store of the settings: data/store.sqlite
    monkeypatch.setenv("MNIST_MODELS_DIR", str(tmp_path / "data" / "models"))  # the trained models' folder
    (tmp_path / "data" / "models").mkdir(parents=True)
    legacy = tmp_path / "data" / "corrections.sqlite"
    _legacy_store(legacy, [_example(seven(), 7), _example(one(), 1)])
    old_model = tmp_path / "data" / "models" / "mlp-20261101-101010.pt"
    save_untrained_mlp(old_model, {"test_accuracy": 42.0})
    before = legacy.read_bytes(), old_model.read_bytes()
    assert sorted(e.label for e in list_examples(by=LOCAL)) == [1, 7]
    assert store_url() == f"sqlite:///{tmp_path / 'data' / 'store.sqlite'}"
    listed = [info.path for info in list_checkpoints() if not info.shipped]
    assert listed == ["store:mlp-20261101-101010.pt"]  # listed once, from the store
    assert load_checkpoint("store:mlp-20261101-101010.pt").test_accuracy == 42.0
    delete(list_examples(by=LOCAL)[0].id, by=LOCAL)
    delete_checkpoint("store:mlp-20261101-101010.pt", by=LOCAL)
    engine._ready.clear()  # the next start
    assert len(list_examples(by=LOCAL)) == 1  # not copied twice
    assert not [info for info in list_checkpoints() if not info.shipped]  # the file is not listed again
    assert (legacy.read_bytes(), old_model.read_bytes()) == before


def test_the_store_comes_from_the_argument_then_the_environment_then_the_secrets(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(engine.CORRECTIONS_DB_ENV)
    assert store_url() == f"sqlite:///{tmp_path / 'data' / 'store.sqlite'}"  # embedded, no set-up
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        '[connections.store]\nurl = "postgresql+psycopg://app:s3cret@db.example:5432/mnist"\n'
    )
    assert store_url() == "postgresql+psycopg://app:s3cret@db.example:5432/mnist"
    assert describe(store_url()) == "postgresql+psycopg://app:***@db.example:5432/mnist"
    monkeypatch.setenv(engine.CORRECTIONS_DB_ENV, "old.sqlite")  # the way to write sqlite:///PATH
    assert store_url() == f"sqlite:///{tmp_path / 'old.sqlite'}"
    monkeypatch.setenv(engine.STORE_URL_ENV, "sqlite:///elsewhere.sqlite")  # the environment wins
    assert store_url() == "sqlite:///elsewhere.sqlite"
    assert store_url(tmp_path / "arg.sqlite") == f"sqlite:///{tmp_path / 'arg.sqlite'}"


@pytest.mark.parametrize("label", [10, 12, -1])
def test_labels_outside_0_to_9_are_refused(sqlite_db, label):
    with pytest.raises(StoreError, match="0 to 9"):
        _example(seven(), label)
    example = dataclasses.replace(_example(seven(), 7), label=label)  # past the helper's own check
    with pytest.raises(StoreError, match=f"0 to 9, not {label}"):
        add_example(example, sqlite_db, by=LOCAL)
    assert not sqlite_db.exists()  # refused before the store was opened


def test_the_local_users_examples_are_only_theirs_and_everyones_are_all(db):
    add_example(_example(one(), 1), db, by=LOCAL)
    ada = Identity(USER, "ada@school.org")
    add_example(_example(seven(), 7), db, by=ada)
    assert [e.label for e in list_examples(db, by=LOCAL, whose=None)] == [1]  # not Ada's too
    assert [e.label for e in list_examples(db, by=LOCAL, whose=ada.email)] == [7]
    assert sorted(e.label for e in list_examples(db, by=LOCAL)) == [1, 7]  # EVERYONE, the default
    assert counts(db, by=LOCAL, whose=None)[7] == 0 and counts(db, by=LOCAL)[7] == 1
