import os
import pickle

import pytest
import torch

from core.checkpoint import (
    CheckpointError,
    default_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from core.models import ModelConfig, build_model

METRICS = {"test_accuracy": 97.5, "test_loss": 0.1}


SMALL_MLP = ModelConfig("mlp", hidden=16)


def saved(tmp_path, config=SMALL_MLP, name="m.pt", metrics=METRICS):
    torch.manual_seed(0)
    model = build_model(config).eval()
    path = save_checkpoint(tmp_path / name, model, config, metrics, train_config={"epochs": 1}, device="cpu")
    return model, path


@pytest.mark.parametrize("config", [SMALL_MLP, ModelConfig("cnn", channels=(4, 8))])
def test_round_trip_gives_identical_logits_and_metadata(tmp_path, config):
    model, path = saved(tmp_path, config)
    ckpt = load_checkpoint(path)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), ckpt.model(x))
    assert ckpt.model_config == config and ckpt.test_accuracy == 97.5
    assert ckpt.train_config == {"epochs": 1} and ckpt.device == "cpu"
    assert {"torch", "torchvision", "python"} <= set(ckpt.versions) and ckpt.created_at
    assert not ckpt.model.training


def test_save_leaves_no_temp_files_and_replaces_atomically(tmp_path):
    saved(tmp_path)
    saved(tmp_path, metrics={"test_accuracy": 99.0})
    assert os.listdir(tmp_path) == ["m.pt"]
    assert load_checkpoint(tmp_path / "m.pt").test_accuracy == 99.0


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"", "not a readable"),
        (b"garbage" * 100, "not a readable"),
    ],
)
def test_corrupt_files_give_a_clear_error_naming_the_file(tmp_path, payload, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_truncated_checkpoint_is_refused(tmp_path):
    _, path = saved(tmp_path)
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(CheckpointError, match="bad.pt|m.pt"):
        load_checkpoint(path)


def test_bare_state_dict_is_refused(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(build_model(ModelConfig()).state_dict(), path)
    with pytest.raises(CheckpointError, match="bare state dict"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    _, path = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["model_config"] = {"arch": "cnn", "hidden": 16, "channels": [4, 8]}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)


class _Exploit:
    def __reduce__(self):
        return (open, (os.environ["EXPLOIT_MARKER"], "w"))


def test_pickle_payload_is_refused_without_running(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EXPLOIT_MARKER", str(marker))
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": 1, "state_dict": _Exploit()}, f)
    torch.save(
        {"format": 1, "state_dict": {}, "model_config": _Exploit(), "metrics": {}}, tmp_path / "evil2.pt"
    )
    for bad in (path, tmp_path / "evil2.pt"):
        with pytest.raises(CheckpointError, match="refused"):
            load_checkpoint(bad)
    assert not marker.exists()


def test_listing_skips_bad_files_and_sorts_by_accuracy(tmp_path):
    saved(tmp_path, name="low.pt", metrics={"test_accuracy": 90.0})
    saved(tmp_path, ModelConfig("cnn", channels=(4, 8)), name="high.pt", metrics={"test_accuracy": 99.0})
    (tmp_path / "junk.pt").write_bytes(b"junk")
    infos = list_checkpoints(tmp_path)
    assert [(os.path.basename(i.path), i.arch) for i in infos] == [("high.pt", "cnn"), ("low.pt", "mlp")]
    assert default_checkpoint(tmp_path).name == "high.pt"


def test_empty_models_dir_has_no_default(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoints"):
        default_checkpoint(tmp_path)
