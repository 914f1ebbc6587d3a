"""Hostile inputs, unsafe and interrupted checkpoints, concurrent users, training faults, a soak."""

import json
import signal
import subprocess
import sys
import threading
import time
import tomllib

import pytest
import torch

from core.access import LOCAL
from core.checkpoint import load_checkpoint, save_checkpoint
from core.config import ModelConfig, TrainConfig
from core.data import DataError, load_mnist
from core.digits.predict import predict
from core.digits.train import TrainingError, train
from core.images import MAX_FILE_BYTES, ImageError
from core.nets import build_model
from core.runs.jobs import DONE, QueueError
from core.runs.requests import DigitRun
from tests.conftest import DEADLINE_S, ROOT, wait_until
from tests.drawings import encode, seven
from tests.hostile import BLANK, DIGIT, ERROR, hostile_inputs
from tests.test_cli import run_cli

SHIPPED_CNN = ROOT / "models" / "cnn.pt"
SOAK_CALLS = 1000
KILL_DELAYS = (0.05, 0.13, 0.21, 0.37)  # seconds into the save loop
SOAK_RSS_GROWTH_MB = 60
MAX_SERVER_UPLOAD_MB = 50  # what a 2.7 GB Cloud container holds in memory without strain


def mlp_run(config: TrainConfig, data_dir, models_dir) -> DigitRun:
    return DigitRun(ModelConfig("mlp"), config, data_dir, models_dir)


def outcome(model, data: bytes) -> tuple[str, int | None]:
    try:
        prediction = predict(model, data)
    except ImageError:
        return ERROR, None
    return (BLANK, None) if prediction.blank else (DIGIT, prediction.digit)


def test_every_hostile_input_gets_the_right_outcome_in_process():
    model = load_checkpoint(SHIPPED_CNN).model
    cases = hostile_inputs()
    wrong = {name: outcome(model, data) for name, (data, *expected) in cases.items()}
    wrong = {name: got for name, got in wrong.items() if got != tuple(cases[name][1:])}
    print(f"hostile inputs: {len(cases)} tried, {len(wrong)} misbehaved")
    assert wrong == {}


def test_cli_predict_on_a_hostile_batch(tmp_path):
    cases = hostile_inputs()
    paths = []
    for name, (data, _, _) in cases.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    result = run_cli("predict", "--checkpoint", SHIPPED_CNN, *paths)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [r["file"] for r in records] == [str(p) for p in paths]  # every file, in order
    for record, (_, expected, digit) in zip(records, cases.values(), strict=True):
        if expected == ERROR:
            assert set(record) == {"file", "error"} and record["error"]
        elif expected == BLANK:
            assert record["blank"] is True and record["digit"] is None
        else:
            assert record["digit"] == digit, record


WRITER = (
    "import os, sys, time; from core.checkpoint import save_checkpoint; from core.nets import *\n"
    "c = ModelConfig('mlp', hidden=4096); m = build_model(c); i = 1\n"
    "save_checkpoint(sys.argv[1], m, c, {'test_accuracy': 1.0}); print('saving', flush=True)\n"
    "if sys.argv[2] == 'hang':  # stop inside the save, after its data is written\n"
    "    os.fsync = lambda fd: (print('in save', flush=True), time.sleep(60))\n"
    "while True:\n    i += 1; save_checkpoint(sys.argv[1], m, c, {'test_accuracy': float(i)})\n"
)


def kill_writer(path, delay: float | None) -> None:
    """Start a writer saving in a loop and SIGKILL it after `delay` s, or inside a save if None."""
    mode = "hang" if delay is None else "loop"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode], cwd=ROOT, stdout=subprocess.PIPE
    )
    assert process.stdout.readline() == b"saving\n"
    if delay is None:
        assert process.stdout.readline() == b"in save\n"
    else:
        time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    config = ModelConfig("mlp", hidden=4096)  # ~13 MB: the writer spends most of its time saving
    save_checkpoint(path, build_model(config), config, {"test_accuracy": 0.0})
    for delay in KILL_DELAYS:
        kill_writer(path, delay)
        assert load_checkpoint(path).model_config == config  # intact: the old or a complete new one
    assert load_checkpoint(path).test_accuracy >= 1  # the writers did replace it along the way
    kill_writer(path, None)
    assert load_checkpoint(path).test_accuracy == 1.0  # the save it died in changed nothing
    # Killed saves leave only their temp files behind, never a half-written model.pt.
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert leftovers and all(name.endswith(".tmp") for name in leftovers), leftovers


def test_predictions_are_unchanged_while_a_run_is_in_progress(slot, tiny_data_dir, tmp_path):
    model = load_checkpoint(SHIPPED_CNN).model
    png = encode(seven())
    reference = predict(model, png).probabilities
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    endless = TrainConfig(epochs=10_000, device="cpu")
    job = slot.submit(LOCAL, DigitRun(ModelConfig("cnn"), endless, tiny_data_dir, tmp_path))
    wait_until(lambda: job.snapshot().latest is not None, "training's first progress report")
    reports_before = len(job.snapshot().losses)
    results, errors = [], []

    def user():
        try:
            for _ in range(20):
                results.append(predict(model, png).probabilities)
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    users = [threading.Thread(target=user) for _ in range(4)]
    for thread in users:
        thread.start()
    for thread in users:
        thread.join(timeout=DEADLINE_S)
    assert job.running  # the run was in progress from before the first prediction to after the last
    wait_until(lambda: len(job.snapshot().losses) > reports_before, "training to go on")
    assert errors == [] and len(results) == 80
    assert all(r == pytest.approx(reference, abs=1e-6) for r in results)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_of_many_racing_starts_one_trains_one_waits_and_the_rest_are_refused(slot, tiny_data_dir, tmp_path):
    barrier, outcomes = threading.Barrier(8), []
    endless = TrainConfig(epochs=200, device="cpu")

    def racer():
        barrier.wait()
        try:
            outcomes.append(slot.submit(LOCAL, mlp_run(endless, tiny_data_dir, tmp_path)))
        except QueueError:  # one waiting run per person
            outcomes.append("refused")

    racers = [threading.Thread(target=racer) for _ in range(8)]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join(timeout=DEADLINE_S)
    kinds = sorted(type(outcome).__name__ for outcome in outcomes)
    assert kinds == ["TrainingJob", "WaitingRun", *["str"] * 6]
    assert slot.job.running and len(slot.waiting) == 1


def test_out_of_memory_becomes_advice(tiny_data_dir, monkeypatch):
    data = load_mnist(tiny_data_dir, download=False)

    def exhausted(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torch.nn.Sequential, "forward", exhausted)
    with pytest.raises(TrainingError, match="smaller batch size"):
        train(ModelConfig("mlp"), TrainConfig(epochs=1, device="cpu"), data)


def test_data_deleted_mid_run_does_not_break_the_run(slot, tiny_data_dir, tmp_path):
    copy = tmp_path / "mnist"
    subprocess.run(["cp", "-r", str(tiny_data_dir), str(copy)], check=True)
    job = slot.submit(LOCAL, mlp_run(TrainConfig(epochs=30, device="cpu"), copy, tmp_path))
    wait_until(lambda: job.snapshot().epochs, "the first epoch: the child has MNIST in memory")
    subprocess.run(["rm", "-r", str(copy / "MNIST")], check=True)
    job.join(timeout=60)
    assert job.snapshot().status == DONE
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_mnist(copy, download=False)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_soak_mixed_inputs_memory_stays_flat():
    model = load_checkpoint(SHIPPED_CNN).model
    cases = hostile_inputs().values()
    inputs, expected = [data for data, *_ in cases], [tuple(outcome_) for _, *outcome_ in cases]
    for data in inputs:  # warm caches and allocators first
        outcome(model, data)
    before = rss_mb()
    started = time.perf_counter()
    right = sum(
        outcome(model, inputs[i % len(inputs)]) == expected[i % len(inputs)] for i in range(SOAK_CALLS)
    )
    after = rss_mb()
    print(f"soak: {right} right in {time.perf_counter() - started:.1f} s, RSS {before:.0f} -> {after:.0f} MB")
    assert right == SOAK_CALLS and after - before < SOAK_RSS_GROWTH_MB


def test_server_config_takes_phone_photos_keeps_xsrf_on_and_opens_a_local_browser():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    # Above the app's own limit, so that the app refuses bigger files itself, with its reason shown.
    assert MAX_FILE_BYTES // 2**20 < config["maxUploadSize"] <= MAX_SERVER_UPLOAD_MB
    assert config["enableXsrfProtection"] is True
    assert "headless" not in config  # `streamlit run Home.py` opens the browser; tests pass their own
