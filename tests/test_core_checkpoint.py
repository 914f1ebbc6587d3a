import importlib.metadata
import os
import pickle
import stat
import subprocess
import sys

import pytest
import torch

from core.access import LOCAL
from core.catalog import default_checkpoint, delete_checkpoint, list_checkpoints
from core.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    NumberReaderCheckpoint,
    checkpoint_bytes,
    checkpoint_exists,
    default_checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from core.config import ModelConfig
from core.nets import build_model
from core.numbers.reader import READER_PATH
from core.paths import PROJECT_ROOT, SHIPPED_MODELS_DIR
from core.store import blobs as stored
from core.store.engine import DEFAULT_SQLITE

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


def test_versions_are_recorded_without_importing_torchvision(tmp_path):
    """Where importing torchvision raised, a run trained to the end and then lost its model."""
    script = (
        "import sys; sys.modules['torchvision'] = None  # any import of it now raises ImportError\n"
        "from core.checkpoint import load_checkpoint, save_checkpoint\n"
        "from core.config import ModelConfig\n"
        "from core.nets import build_model\n"
        f"path = save_checkpoint({str(tmp_path / 'm.pt')!r}, build_model(ModelConfig('mlp', hidden=8)),"
        " ModelConfig('mlp', hidden=8), {})\n"
        "print(load_checkpoint(path).versions['torchvision'])"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == importlib.metadata.version("torchvision")


def test_bookkeeping_that_fails_never_costs_the_model(tmp_path, monkeypatch):
    def broken(name):
        raise RuntimeError(f"metadata of {name} unreadable")

    monkeypatch.setattr(importlib.metadata, "version", broken)
    _, path = saved(tmp_path)
    assert load_checkpoint(path).versions["torchvision"] == "unknown"


def test_save_leaves_no_temp_files_and_replaces_atomically(tmp_path):
    saved(tmp_path)
    saved(tmp_path, metrics={"test_accuracy": 99.0})
    assert os.listdir(tmp_path) == ["m.pt"]
    assert load_checkpoint(tmp_path / "m.pt").test_accuracy == 99.0


@pytest.mark.parametrize(
    "payload", [b"", b"garbage" * 100, b"not a checkpoint"], ids=["empty", "zip", "pickle"]
)
def test_corrupt_files_are_refused_in_one_line_without_torchs_advice_to_load_them_unsafely(tmp_path, payload):
    path = tmp_path / "bad.pt"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match="refused as damaged or unsafe") as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert "weights_only" not in message and "Re-running" not in message


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
    # A plain pickle (protocol 4) makes torch warn before it refuses: expected, so asserted here.
    with pytest.warns(UserWarning, match="pickle protocol"), pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused as unsafe"):
        load_checkpoint(tmp_path / "evil2.pt")
    assert not marker.exists()


def _stamped(path, created_at: str) -> None:
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "created_at": created_at}, path)


def test_listing_skips_bad_files_and_puts_the_newest_trained_first(tmp_path):
    saved(tmp_path, name="older.pt", metrics={"test_accuracy": 99.0})
    saved(tmp_path, ModelConfig("cnn", channels=(4, 8)), name="newer.pt", metrics={"test_accuracy": 90.0})
    _stamped(tmp_path / "older.pt", "2026-01-01T10:00:00+00:00")
    _stamped(tmp_path / "newer.pt", "2026-01-02T10:00:00+00:00")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    infos = list_checkpoints(tmp_path)
    assert [(os.path.basename(i.path), i.arch) for i in infos] == [("newer.pt", "cnn"), ("older.pt", "mlp")]
    assert not any(i.shipped for i in infos)
    assert default_checkpoint(tmp_path).name == "older.pt"  # the most accurate


def test_the_app_lists_shipped_models_first_then_those_trained_here(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_MODELS_DIR", str(tmp_path))
    saved(tmp_path, name="mine.pt", metrics={"test_accuracy": 99.9})
    infos = list_checkpoints()
    assert [(os.path.basename(i.path), i.shipped) for i in infos] == [
        ("cnn.pt", True),
        ("mlp.pt", True),
        ("mine.pt", False),
    ]
    assert default_checkpoint() == tmp_path / "mine.pt"


def test_trained_models_go_to_the_store_whose_default_file_git_ignores(monkeypatch):
    assert str(default_checkpoint_path("mlp")).startswith("store:mlp-")
    default = PROJECT_ROOT / DEFAULT_SQLITE
    ignored = subprocess.run(["git", "check-ignore", "-q", str(default)], cwd=PROJECT_ROOT)
    assert ignored.returncode == 0  # git check-ignore: 0 when the path is ignored


def test_a_saved_checkpoint_is_readable_by_everyone_like_the_shipped_ones(tmp_path):
    _, path = saved(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((SHIPPED_MODELS_DIR / "cnn.pt").stat().st_mode) == 0o644


def test_empty_models_dir_has_no_default(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoints"):
        default_checkpoint(tmp_path)


def test_a_model_in_the_store_round_trips_and_is_listed_deleted_and_refused_when_unsafe(tmp_path, store):
    torch.manual_seed(0)
    model = build_model(SMALL_MLP).eval()
    name = default_checkpoint_path("mlp")
    assert str(name).startswith("store:mlp-") and not (tmp_path / name.name).exists()
    save_checkpoint(name, model, SMALL_MLP, METRICS, train_config={"epochs": 1})
    loaded = load_checkpoint(str(name))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    assert loaded.test_accuracy == 97.5 and loaded.train_config == {"epochs": 1}
    (listed,) = [info for info in list_checkpoints() if info.path == str(name)]
    assert (
        not listed.shipped
        and listed.origin == "trained here"
        and listed.file_bytes == len(checkpoint_bytes(name))
    )
    with pytest.raises(CheckpointError, match="already holds a model"):
        save_checkpoint(name, model, SMALL_MLP, METRICS)  # written once, never changed
    stored.save("evil.pt", pickle.dumps(os.system), "2026-12-05T00:00:00+00:00")  # not plain weights
    with pytest.raises(CheckpointError, match="refused as damaged or unsafe"):
        load_checkpoint("store:evil.pt")
    assert "store:evil.pt" not in [info.path for info in list_checkpoints()]
    delete_checkpoint(name, by=LOCAL)
    with pytest.raises(CheckpointError, match="no model named"):
        load_checkpoint(str(name))


def test_a_listed_model_is_still_there_until_deleted_and_a_stored_one_not_while_the_store_is_down(
    tmp_path, store, monkeypatch
):
    model = build_model(SMALL_MLP)
    for path in (tmp_path / "mine.pt", default_checkpoint_path("mlp")):
        save_checkpoint(path, model, SMALL_MLP, METRICS)
        assert checkpoint_exists(path)
        delete_checkpoint(path, by=LOCAL)
        assert not checkpoint_exists(path)
    assert checkpoint_exists(SHIPPED_MODELS_DIR / "cnn.pt")
    kept = default_checkpoint_path("mlp")
    save_checkpoint(kept, model, SMALL_MLP, METRICS)
    monkeypatch.setenv("MNIST_STORE_URL", "postgresql+psycopg://app:pw@127.0.0.1:9/class")  # nothing there
    assert not checkpoint_exists(kept)  # as the listing leaves it out


def test_a_checkpoint_of_another_format_version_is_refused(tmp_path):
    _, path = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "format": FORMAT_VERSION + 1}, path)
    with pytest.raises(CheckpointError, match=f"checkpoint format {FORMAT_VERSION + 1} is not supported"):
        load_checkpoint(path)


def test_loading_stays_weights_only_where_torch_is_told_to_default_to_full_pickles(tmp_path, monkeypatch):
    """torch's default is weights_only=True today; the load asks for it explicitly all the same."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # what an older torch's default was
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EXPLOIT_MARKER", str(marker))
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "state_dict": {}, "model_config": _Exploit(), "metrics": {}}, path)
    with pytest.raises(CheckpointError, match="refused as unsafe"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_number_reader_asked_for_as_a_digit_model_says_what_it_is(tmp_path):
    with pytest.raises(NumberReaderCheckpoint, match="is a number reader, not a digit model"):
        load_checkpoint(READER_PATH)
    _, path = saved(tmp_path)
    assert checkpoint_exists(path) and checkpoint_exists(READER_PATH)
    path.unlink()
    assert not checkpoint_exists(path) and not checkpoint_exists("store:never-saved.pt")


def test_every_checkpoint_says_its_kind_and_one_saved_before_kinds_still_loads(tmp_path):
    from core.checkpoint import DIGIT_MODEL, NUMBER_READER, kind_of, read_payload
    from core.numbers.reader import Reader, ReaderConfig, load_reader

    small = ModelConfig("mlp", hidden=8)
    digit = save_checkpoint(tmp_path / "d.pt", build_model(small), small, {})
    reader = save_checkpoint(tmp_path / "r.pt", Reader(ReaderConfig()), ReaderConfig(), {})
    assert [read_payload(p)["kind"] for p in (digit, reader)] == [DIGIT_MODEL, NUMBER_READER]
    for path in (digit, reader):  # as the code before kinds saved them: no "kind" in the payload
        payload = torch.load(path, weights_only=True)
        del payload["kind"]
        torch.save(payload, path)
    assert [kind_of(read_payload(p)) for p in (digit, reader)] == [DIGIT_MODEL, NUMBER_READER]
    assert load_checkpoint(digit).model_config == small
    assert load_reader(reader)[0].training is False
    shipped = (SHIPPED_MODELS_DIR / "mlp.pt", READER_PATH)  # saved before kinds were
    assert [kind_of(read_payload(p)) for p in shipped] == [DIGIT_MODEL, NUMBER_READER]
