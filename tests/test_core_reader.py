"""The number reader (core.numbers.reader), its written numbers (core.numbers.written) and its training
(core.numbers.train), on numbers and log-probabilities the tests make."""

import math
import threading
from dataclasses import asdict

import numpy as np
import pytest
import torch

from core import catalog
from core.access import LOCAL
from core.catalog import delete_checkpoint, list_readers
from core.checkpoint import CheckpointError, save_checkpoint
from core.config import NUMBER_CANVAS as CANVAS
from core.config import ModelConfig
from core.data import load_split
from core.nets import build_model
from core.numbers import train as reader_train
from core.numbers.reader import (
    BLANK,
    CLASSES,
    HEIGHT,
    PAD,
    READER_PATH,
    STRIDE,
    Reader,
    ReaderConfig,
    decode,
    ink_column,
    load_reader,
    read_lines,
    text_of,
    to_line,
)
from core.numbers.train import ReaderTrainConfig, RoundProgress, RoundReport, train_reader, write_lines
from core.numbers.written import INK, random_numbers, write_line
from core.preprocess import _pieces
from core.store import blobs as stored
from tests.conftest import store_reader

SURE = 0.9


def _log_probs(classes: list[int]) -> torch.Tensor:
    """(T, CLASSES) log-probabilities, SURE of the given class in each column."""
    probs = torch.full((len(classes), CLASSES), (1 - SURE) / (CLASSES - 1))
    probs[torch.arange(len(classes)), torch.tensor(classes)] = SURE
    return probs.log()


def test_decoding_merges_repeats_and_a_blank_separates_a_double_digit():
    b = BLANK
    read = decode(_log_probs([b, 1, 1, b, b, 1, b, 7, 7, 7, b, 0]))
    assert text_of(read) == "1170"
    assert [d.peak for d in read] == [1, 5, 7, 11]  # the first column of a run, all equally sure
    assert all(d.confidence == pytest.approx(SURE) for d in read)
    assert text_of(decode(_log_probs([b, b, b]))) == ""


def test_a_line_is_the_ink_cropped_to_the_readers_height_and_maps_back():
    ink = np.zeros((112, 500), np.float32)
    ink[20:80, 100:160] = 1.0  # 60 px high, 60 wide
    line = to_line(ink)
    assert line.pixels.shape == (HEIGHT, HEIGHT)  # square ink: as wide as high, with PAD around
    assert line.pixels[PAD:-PAD, PAD:-PAD].min() == 1.0 and line.pixels[:PAD].max() == 0
    assert (line.left, line.top) == (100, 20)
    assert ink_column(line, 0) == pytest.approx(100 + (STRIDE / 2 - PAD) / line.scale)
    assert to_line(np.zeros((112, 500), np.float32)) is None


def test_the_reader_gives_one_column_per_stride_and_reads_a_batch_of_any_widths():
    reader = Reader(ReaderConfig(channels=(4, 4, 4, 4), hidden=4)).eval()
    lines = [np.random.default_rng(0).random((HEIGHT, width), dtype=np.float32) for width in (40, 97)]
    readings = read_lines(reader, lines)
    assert [lp.shape for _, lp in readings] == [(40 // STRIDE, CLASSES), (97 // STRIDE, CLASSES)]
    assert all(torch.allclose(lp.exp().sum(1), torch.ones(len(lp))) for _, lp in readings)


def test_a_reader_is_saved_and_loaded_and_a_digit_model_is_not_taken_for_one(tmp_path):
    config = ReaderConfig(channels=(4, 8, 8, 8), hidden=6)
    reader = Reader(config).eval()
    path = save_checkpoint(tmp_path / "r.pt", reader, config, {"test_accuracy": 12.5}, {})
    loaded, metrics = load_reader(path)
    assert metrics["test_accuracy"] == 12.5
    line = np.random.default_rng(1).random((HEIGHT, 64), dtype=np.float32)
    assert torch.equal(read_lines(loaded, [line])[0][1], read_lines(reader, [line])[0][1])
    digit_model = save_checkpoint(
        tmp_path / "cnn.pt", build_model(ModelConfig("cnn")), ModelConfig("cnn"), {}
    )
    with pytest.raises(CheckpointError, match="not a number reader"):
        load_reader(digit_model)
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_reader(tmp_path / "broken.pt")


def test_readers_are_listed_shipped_first_then_those_trained_here_newest_first(store, tmp_path, monkeypatch):
    store_reader("reader-old.pt", "2026-12-01T10:00:00+00:00", 40.0)
    store_reader("reader-new.pt", "2026-12-02T10:00:00+00:00", 50.0)
    save_checkpoint("store:cnn-x.pt", build_model(ModelConfig("cnn")), ModelConfig("cnn"), {})
    stored.save("reader-broken.pt", b"not a checkpoint", "2026-12-03T10:00:00+00:00")
    readers = list_readers()
    assert [(r.path, r.test_accuracy, r.shipped) for r in readers] == [
        (str(READER_PATH), load_reader(READER_PATH)[1]["test_accuracy"], True),
        ("store:reader-new.pt", 50.0, False),
        ("store:reader-old.pt", 40.0, False),
    ]  # the digit model and the broken file are not readers
    shipped = tmp_path / "reader" / READER_PATH.name  # a copy: were it deleted, the real one stays
    shipped.parent.mkdir()
    shipped.write_bytes(READER_PATH.read_bytes())
    monkeypatch.setattr(catalog, "SHIPPED_MODELS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="ships with the app"):
        delete_checkpoint(shipped, by=LOCAL)  # in a folder of models/, as the reader is
    delete_checkpoint("store:reader-old.pt", by=LOCAL)
    assert [r.path for r in list_readers()][1:] == ["store:reader-new.pt"]


def _digits(count: int) -> np.ndarray:
    """Bars 4 px wide and 20 px high in 28x28 frames, like ones."""
    digits = np.zeros((count, 28, 28), np.float32)
    digits[:, 4:24, 12:16] = 1.0
    return digits


@pytest.mark.parametrize(("kind", "pieces"), [("separated", 3), ("touching", 1)])
def test_written_gaps_keep_digits_apart_or_make_them_touch(kind, pieces):
    line, kinds = write_line(_digits(3), kind, np.random.default_rng(0))
    assert kinds == [kind, kind]
    assert int(_pieces(torch.from_numpy(line) > INK).max()) == pieces


def test_numbers_come_on_the_canvas_or_photographed(tiny_data_dir):
    split = load_split(True, tiny_data_dir, download=False)
    numbers = random_numbers(split, 40, seed=3)
    sizes = {n.image.size for n in numbers}
    assert CANVAS in sizes and any(size != CANVAS for size in sizes)  # some photos
    assert any(n.image.format == "JPEG" for n in numbers)
    assert all(1 <= len(n.text) <= 8 and len(n.kinds) == len(n.text) - 1 for n in numbers)


def test_training_writes_its_numbers_with_training_digits_and_judges_on_test_digits(
    tiny_data_dir, monkeypatch
):
    calls = []
    monkeypatch.setattr(
        reader_train, "write_lines", lambda train, *a: calls.append(train) or write_lines(train, *a)
    )
    config = ReaderTrainConfig(minutes=0.1, numbers=60, val_numbers=20, test_numbers=20, epochs=2, workers=1)
    reports = []
    reader, metrics = train_reader(
        config, ReaderConfig(channels=(8, 8, 8, 8), hidden=8), tiny_data_dir, reports.append
    )
    assert calls == [True, False, False]  # training numbers, validation numbers, test numbers
    rounds = [r for r in reports if isinstance(r, RoundReport)]
    batches = [r for r in reports if isinstance(r, RoundProgress)]
    assert [r.round for r in rounds] == [1, 2] and metrics["rounds"] == [asdict(r) for r in rounds]
    assert metrics["val_accuracy"] == max(r.val_accuracy for r in rounds)  # the best round's weights are kept
    assert batches and all(math.isfinite(b.loss) and 0 < b.fraction_done <= 1 for b in batches)
    assert 0 <= metrics["test_accuracy"] <= 100 and not reader.training and not metrics["stopped"]


def test_a_stopped_reader_run_keeps_what_it_learnt(tiny_data_dir):
    stop = threading.Event()
    stop.set()
    config = ReaderTrainConfig(minutes=5, numbers=20, val_numbers=10, test_numbers=10, workers=1)
    reader, metrics = train_reader(
        config, ReaderConfig(channels=(4, 4, 4, 4), hidden=4), tiny_data_dir, stop=stop
    )
    assert metrics["stopped"] and metrics["steps"] == 0 and len(metrics["rounds"]) == 1
