"""app.cache outside a running app: a checkpoint re-saved at the same path is served fresh."""

import os

import pytest
import torch

from app import cache
from tests.conftest import save_untrained_mlp


@pytest.fixture(autouse=True)
def empty_caches():
    cache._checkpoint.clear()
    cache._evaluation.clear()
    cache._embedding_map.clear()
    yield
    cache._checkpoint.clear()
    cache._evaluation.clear()
    cache._embedding_map.clear()


def _save(path, seed: int, accuracy: float, stamp: float) -> None:
    save_untrained_mlp(path, {"test_accuracy": accuracy}, seed)
    os.utime(path, (stamp, stamp))  # whole seconds apart, as two saves of a real run are


def test_a_re_saved_checkpoint_is_served_fresh_by_the_caches(tmp_path, tiny_data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tiny_data_dir))
    path = tmp_path / "m.pt"
    _save(path, seed=0, accuracy=11.0, stamp=1_000_000)
    first, first_report = cache.cached_checkpoint(path), cache.cached_evaluation(path)
    first_map = cache.cached_embedding_map(path)
    assert cache.cached_checkpoint(path) is first and cache.cached_embedding_map(path) is first_map
    _save(path, seed=1, accuracy=22.0, stamp=1_000_001)
    again, again_report = cache.cached_checkpoint(path), cache.cached_evaluation(path)
    assert not torch.equal(cache.cached_embedding_map(path).features, first_map.features)  # rebuilt
    assert first.test_accuracy == 11.0 and again.test_accuracy == 22.0
    assert not torch.equal(first.model[1].weight, again.model[1].weight)
    assert again_report.loss != first_report.loss  # evaluated again, with the new weights
