"""Shared, read-only resources for the Streamlit pages (the only streamlit import in core/).

Cached objects are shared by every session: never train or modify them in place.
"""

from __future__ import annotations

import os

import streamlit as st

from core.catalog import CheckpointInfo, catalog, model_folders, stored_models_stamp
from core.checkpoint import DIGIT_MODEL, NUMBER_READER, Checkpoint, checkpoint_version, load_checkpoint
from core.data import Split, data_dir_from_env, load_split
from core.digits.evaluate import EvalReport, evaluate
from core.digits.export import onnx_bytes
from core.digits.inside import EmbeddingMap, build_map
from core.digits.predict import latency_ms
from core.numbers.reader import Reader, load_reader
from core.runs.jobs import TrainingQueue
from core.threads import use_server_threads

MAX_CACHED_MODELS = 8
MAX_CACHED_FILES = 256  # small values (a float each) for every checkpoint a server may hold


@st.cache_resource(max_entries=MAX_CACHED_MODELS, show_spinner=False)
def _checkpoint(path: str, modified: float) -> Checkpoint:
    return load_checkpoint(path)


def cached_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """A loaded checkpoint, keyed by path and version (a re-saved file reloads)."""
    return _checkpoint(str(path), checkpoint_version(path))


@st.cache_resource(max_entries=MAX_CACHED_MODELS, show_spinner=False)
def _reader(path: str, modified: float) -> Reader:
    return load_reader(path)[0]


def cached_reader(path: str | os.PathLike) -> Reader:
    """A number reader trained here (core.numbers.reader), keyed by path and version."""
    return _reader(str(path), checkpoint_version(path))


@st.cache_data(max_entries=MAX_CACHED_FILES, show_spinner=False)
def _latency_ms(path: str, modified: float) -> float:
    return latency_ms(_checkpoint(path, modified).model)


def cached_latency_ms(path: str | os.PathLike) -> float:
    """Single-image predict latency of a checkpoint, measured once per file version."""
    return _latency_ms(str(path), checkpoint_version(path))


@st.cache_data(max_entries=MAX_CACHED_MODELS, show_spinner=False)
def _onnx(path: str, modified: float) -> bytes:
    return onnx_bytes(_checkpoint(path, modified).model)


def cached_onnx(path: str | os.PathLike) -> bytes:
    """A checkpoint's model as ONNX (core.digits.export), exported once per file version."""
    return _onnx(str(path), checkpoint_version(path))


@st.cache_data(show_spinner=False)
def _catalog(stamp: tuple) -> list[CheckpointInfo]:
    return catalog()


def cached_catalog() -> list[CheckpointInfo]:
    """Every model of both kinds (core.catalog), re-read only when one is added, removed or changed."""
    files = tuple(sorted((str(p), p.stat().st_mtime) for f in model_folders() for p in f.glob("*.pt")))
    return _catalog((files, stored_models_stamp()))


def cached_checkpoint_list() -> list[CheckpointInfo]:
    """The digit models: shipped, trained and stored."""
    return [info for info in cached_catalog() if info.kind == DIGIT_MODEL]


def cached_reader_list() -> list[CheckpointInfo]:
    """The number readers: the shipped one and those trained here."""
    return [info for info in cached_catalog() if info.kind == NUMBER_READER]


@st.cache_resource(show_spinner=False)
def _test_split(data_dir: str) -> Split:
    return load_split(train=False, data_dir=data_dir, download=False)


def test_split() -> Split:
    """The MNIST test split on the CPU, shared by all sessions. The server never needs the
    training split: training loads its own copy in a child process."""
    return _test_split(str(data_dir_from_env()))


@st.cache_data(max_entries=MAX_CACHED_MODELS, show_spinner=False)
def _evaluation(path: str, modified: float, data_dir: str) -> EvalReport:
    return evaluate(_checkpoint(path, modified).model, _test_split(data_dir))


def cached_evaluation(path: str | os.PathLike) -> EvalReport:
    """The test-set evaluation of a checkpoint, computed once per file version."""
    return _evaluation(str(path), checkpoint_version(path), str(data_dir_from_env()))


@st.cache_resource(max_entries=MAX_CACHED_MODELS, show_spinner=False)
def _embedding_map(path: str, modified: float, data_dir: str) -> EmbeddingMap:
    return build_map(_checkpoint(path, modified).model, _test_split(data_dir))


def cached_embedding_map(path: str | os.PathLike) -> EmbeddingMap:
    """The embedding map of a checkpoint's features (core.digits.inside), built once per file version."""
    return _embedding_map(str(path), checkpoint_version(path), str(data_dir_from_env()))


@st.cache_resource
def training_queue() -> TrainingQueue:
    """The server-wide training queue: runs survive page changes, reruns and their starters leaving."""
    return TrainingQueue()


@st.cache_resource(show_spinner=False)
def cpu_threads() -> int:
    """Torch's threads for this server, set once: one, as its sessions run in parallel (core.threads)."""
    return use_server_threads()
