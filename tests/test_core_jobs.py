import os
import signal

import pytest

from core import jobs
from core.checkpoint import load_checkpoint
from core.config import ModelConfig, TrainConfig
from core.jobs import DONE, FAILED, STOPPED, BusyError, TrainingJob
from core.threads import THREADS_ENV
from tests.conftest import end_training, wait_until

QUICK = TrainConfig(epochs=2, batch_size=32, lr=1e-2, augment="none", device="cpu")
ENDLESS = TrainConfig(epochs=10_000, batch_size=32, device="cpu")


def test_a_job_trains_in_the_background_and_publishes_a_checkpoint(
    slot, tiny_data_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv(THREADS_ENV, "1")  # the child sizes its threads as the server does
    job = slot.start(ModelConfig("mlp"), QUICK, tiny_data_dir, models_dir=tmp_path)
    job.join(timeout=60)
    snap = job.snapshot()
    assert snap.status == DONE and snap.error is None
    assert [e.epoch for e in snap.epochs] == [1, 2] and snap.losses and snap.latest.fraction_done == 1
    ckpt = load_checkpoint(snap.checkpoint)
    assert ckpt.test_accuracy == snap.epochs[-1].test_accuracy and ckpt.metrics["threads"] == 1


def test_a_warmed_up_child_takes_the_run_and_a_waiting_child_leaves_with_the_server(
    slot, tiny_data_dir, tmp_path
):
    slot.warm_up()
    waiting = slot._standby
    job = slot.start(ModelConfig("mlp"), QUICK, tiny_data_dir, models_dir=tmp_path)
    assert job._process is waiting and slot._standby is None  # the run went to the warm child
    job.join(timeout=60)
    assert job.snapshot().status == DONE
    slot.warm_up()
    slot._standby.stdin.close()  # what the server's exit does to the pipe
    assert slot._standby.wait(timeout=30) == 0 and slot._standby.stdout.read() == b""


def test_no_child_is_kept_waiting_while_a_run_trains(slot, tiny_data_dir, tmp_path):
    job = slot.start(ModelConfig("mlp"), ENDLESS, tiny_data_dir, models_dir=tmp_path)
    slot.warm_up()  # the Train page reruns during the run
    assert job.running and slot._standby is None  # its torch import would take the run's CPU and 0.7 GB
    end_training(slot)
    slot.warm_up()  # the page after the run
    assert slot._standby is not None


def test_a_child_that_waited_too_long_is_not_given_the_run(slot, tiny_data_dir, tmp_path, monkeypatch):
    slot.warm_up()
    stale = slot._standby
    monkeypatch.setattr(jobs, "STANDBY_USE_S", 0)  # it would leave on its own any moment now
    job = slot.start(ModelConfig("mlp"), QUICK, tiny_data_dir, models_dir=tmp_path)
    assert job._process is not stale and stale.wait(timeout=30) == 0  # told to leave
    job.join(timeout=60)
    assert job.snapshot().status == DONE


def test_a_waiting_child_that_has_just_left_is_replaced(tiny_data_dir, tmp_path):
    gone = jobs.launch_child()
    gone.kill()  # left between the slot's check and the task's sending: its pipe is broken
    gone.wait(timeout=30)
    job = jobs.TrainingJob(ModelConfig("mlp"), QUICK, tiny_data_dir, models_dir=tmp_path).start(gone)
    job.join(timeout=60)
    assert job._process is not gone and job.snapshot().status == DONE


def test_one_run_at_a_time_and_stop_saves_the_partial_model(slot, tiny_data_dir, tmp_path):
    job = slot.start(ModelConfig("mlp"), ENDLESS, tiny_data_dir, models_dir=tmp_path)
    with pytest.raises(BusyError, match="already in progress"):
        slot.start(ModelConfig("mlp"), QUICK, tiny_data_dir, models_dir=tmp_path)
    wait_until(lambda: job.snapshot().epochs, "a finished epoch, so that there is a model to save")
    job.stop()
    job.join(timeout=10)
    assert job.snapshot().status == STOPPED and job.snapshot().checkpoint
    again = slot.start(ModelConfig("mlp"), QUICK, tiny_data_dir, models_dir=tmp_path)  # free again
    again.join(timeout=60)
    assert again.snapshot().status == DONE


def test_a_failing_run_reports_instead_of_dying(slot, tiny_data_dir, tmp_path):
    job = slot.start(ModelConfig("mlp"), TrainConfig(device="cuda:42"), tiny_data_dir, models_dir=tmp_path)
    job.join(timeout=10)
    snap = job.snapshot()
    assert snap.status == FAILED and "cuda:42" in snap.error and snap.checkpoint is None


def test_a_child_that_dies_is_reported_not_awaited_forever(slot, tiny_data_dir, tmp_path):
    job = slot.start(ModelConfig("mlp"), ENDLESS, tiny_data_dir, models_dir=tmp_path)
    wait_until(lambda: job.snapshot().epochs, "the first epoch")
    os.kill(job._process.pid, signal.SIGKILL)  # as the kernel's OOM killer would
    job.join(timeout=10)
    snap = job.snapshot()
    assert snap.status == FAILED and "ended unexpectedly" in snap.error


def test_a_run_may_be_stopped_by_who_started_it_and_locally_by_anyone(tmp_path):
    job = TrainingJob(ModelConfig("mlp"), TrainConfig(), tmp_path, tmp_path, started_by="ada@school.org")
    assert job.may_stop("ada@school.org") and not job.may_stop("bob@school.org")
    assert job.may_stop()  # the local user, where nobody signs in
    assert TrainingJob(ModelConfig("mlp"), TrainConfig(), tmp_path, tmp_path).may_stop()
