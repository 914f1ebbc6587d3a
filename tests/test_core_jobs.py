import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import pytest

from core.access import ANONYMOUS, LOCAL, OWNER, USER, AccessError, Identity
from core.checkpoint import load_checkpoint
from core.config import ModelConfig, TrainConfig
from core.runs import jobs
from core.runs.jobs import DONE, FAILED, STOPPED, QueueError, TrainingJob, WaitingRun
from core.runs.requests import DigitRun
from core.threads import THREADS_ENV
from tests.conftest import end_training, wait_until

ROOT = Path(__file__).resolve().parent.parent
QUICK = TrainConfig(epochs=2, batch_size=32, lr=1e-2, augment="none", device="cpu")
ENDLESS = TrainConfig(epochs=10_000, batch_size=32, device="cpu")


def mlp_run(config: TrainConfig, data_dir, models_dir) -> DigitRun:
    return DigitRun(ModelConfig("mlp"), config, data_dir, models_dir)


def test_a_job_trains_in_the_background_and_publishes_a_checkpoint(
    slot, tiny_data_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv(THREADS_ENV, "1")  # the child sizes its threads as the server does
    job = slot.submit(LOCAL, mlp_run(QUICK, tiny_data_dir, tmp_path))
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
    job = slot.submit(LOCAL, mlp_run(QUICK, tiny_data_dir, tmp_path))
    assert job._process is waiting and slot._standby is None  # the run went to the warm child
    job.join(timeout=60)
    assert job.snapshot().status == DONE
    slot.warm_up()
    slot._standby.stdin.close()  # what the server's exit does to the pipe
    assert slot._standby.wait(timeout=30) == 0 and slot._standby.stdout.read() == b""


def test_no_child_is_kept_waiting_while_a_run_trains(slot, tiny_data_dir, tmp_path):
    job = slot.submit(LOCAL, mlp_run(ENDLESS, tiny_data_dir, tmp_path))
    slot.warm_up()  # the Train page reruns during the run
    assert job.running and slot._standby is None  # its torch import would take the run's CPU and 0.7 GB
    end_training(slot)
    slot.warm_up()  # the page after the run
    assert slot._standby is not None


def test_a_child_that_waited_too_long_is_not_given_the_run(slot, tiny_data_dir, tmp_path, monkeypatch):
    slot.warm_up()
    stale = slot._standby
    monkeypatch.setattr(jobs, "STANDBY_USE_S", 0)  # it would leave on its own any moment now
    job = slot.submit(LOCAL, mlp_run(QUICK, tiny_data_dir, tmp_path))
    assert job._process is not stale and stale.wait(timeout=30) == 0  # told to leave
    job.join(timeout=60)
    assert job.snapshot().status == DONE


def test_a_waiting_child_that_has_just_left_is_replaced(tiny_data_dir, tmp_path):
    gone = jobs.launch_child()
    gone.kill()  # left between the slot's check and the task's sending: its pipe is broken
    gone.wait(timeout=30)
    job = jobs.TrainingJob(mlp_run(QUICK, tiny_data_dir, tmp_path)).start(gone)
    job.join(timeout=60)
    assert job._process is not gone and job.snapshot().status == DONE


def test_one_run_at_a_time_and_stop_saves_the_partial_model(slot, tiny_data_dir, tmp_path):
    job = slot.submit(LOCAL, mlp_run(ENDLESS, tiny_data_dir, tmp_path))
    queued = slot.submit(LOCAL, mlp_run(QUICK, tiny_data_dir, tmp_path))
    assert isinstance(queued, WaitingRun)
    with pytest.raises(QueueError, match="already waiting"):  # one waiting run per person
        slot.submit(LOCAL, mlp_run(QUICK, tiny_data_dir, tmp_path))
    slot.waiting.clear()
    wait_until(lambda: job.snapshot().epochs, "a finished epoch, so that there is a model to save")
    job.stop()
    job.join(timeout=10)
    assert job.snapshot().status == STOPPED and job.snapshot().checkpoint
    again = slot.submit(LOCAL, mlp_run(QUICK, tiny_data_dir, tmp_path))  # free again
    again.join(timeout=60)
    assert again.snapshot().status == DONE


ADA = Identity(USER, "ada@school.org", may_train=True)
BOB = Identity(USER, "bob@school.org", may_train=True)
TEACHER = Identity(OWNER, "teacher@school.org", may_train=True)


def test_runs_wait_their_turn_and_start_by_themselves_when_the_one_before_ends(slot, tiny_data_dir, tmp_path):
    first = slot.submit(ADA, mlp_run(ENDLESS, tiny_data_dir, tmp_path))
    bobs = slot.submit(BOB, mlp_run(QUICK, tiny_data_dir, tmp_path))
    teachers = slot.submit(TEACHER, mlp_run(QUICK, tiny_data_dir, tmp_path))
    assert (slot.position(bobs), slot.position(teachers)) == (1, 2) and first.running
    slot.cancel(teachers.id, TEACHER)  # its owner takes it back
    assert slot.position(teachers) is None and slot.waiting == [bobs]
    wait_until(lambda: first.snapshot().epochs, "Ada's first epoch")
    first.stop_by(ADA)  # nobody has the page open: the queue goes on by itself
    wait_until(lambda: slot.job is not first, "Bob's run taking over")
    slot.job.join(timeout=60)
    bobs_run = slot.job.snapshot()
    assert slot.job.started_by == BOB and bobs_run.status == DONE and bobs_run.checkpoint
    assert first.snapshot().status == STOPPED and first.snapshot().checkpoint  # Ada's model was kept too
    assert slot.waiting == [] and slot.position(bobs) is None


def test_only_the_starter_or_an_owner_may_stop_or_cancel_a_run(slot, tiny_data_dir, tmp_path):
    job = slot.submit(ADA, mlp_run(ENDLESS, tiny_data_dir, tmp_path))
    bobs = slot.submit(BOB, mlp_run(QUICK, tiny_data_dir, tmp_path))
    with pytest.raises(AccessError, match="bob@school.org may not stop ada@school.org's run"):
        job.stop_by(BOB)
    with pytest.raises(AccessError, match="ada@school.org may not cancel bob@school.org's run"):
        slot.cancel(bobs.id, ADA)
    assert job.running and slot.position(bobs) == 1  # nothing happened
    assert job.may_stop(Identity(USER, "ada@school.org"))  # Ada again, signed in anew in another tab
    slot.cancel(bobs.id, TEACHER)
    with pytest.raises(QueueError, match="no longer waiting"):
        slot.cancel(bobs.id, BOB)
    slot.waiting.clear()
    job.stop_by(TEACHER)
    job.join(timeout=30)
    assert job.snapshot().status in (STOPPED, FAILED)  # stopped before or after its first epoch


def test_who_may_not_train_is_refused_and_nothing_is_queued(slot, tiny_data_dir, tmp_path):
    for who in (ANONYMOUS, Identity(USER, "ada@school.org", may_train=False)):
        with pytest.raises(AccessError, match="may not train"):
            slot.submit(who, mlp_run(QUICK, tiny_data_dir, tmp_path))
    assert slot.job is None and slot.waiting == []


def test_a_failing_run_reports_instead_of_dying(slot, tiny_data_dir, tmp_path):
    cuda42 = TrainConfig(device="cuda:42")
    job = slot.submit(LOCAL, mlp_run(cuda42, tiny_data_dir, tmp_path))
    job.join(timeout=10)
    snap = job.snapshot()
    assert snap.status == FAILED and "cuda:42" in snap.error and snap.checkpoint is None


def test_a_child_that_dies_is_reported_not_awaited_forever(slot, tiny_data_dir, tmp_path):
    job = slot.submit(LOCAL, mlp_run(ENDLESS, tiny_data_dir, tmp_path))
    wait_until(lambda: job.snapshot().epochs, "the first epoch")
    os.kill(job._process.pid, signal.SIGKILL)  # as the kernel's OOM killer would
    job.join(timeout=10)
    snap = job.snapshot()
    assert snap.status == FAILED and "ended unexpectedly" in snap.error


def test_a_run_may_be_stopped_by_who_started_it_and_by_owners(tmp_path):
    job = TrainingJob(mlp_run(TrainConfig(), tmp_path, tmp_path), started_by=ADA)
    assert job.may_stop(ADA) and not job.may_stop(BOB) and not job.may_stop(ANONYMOUS)
    assert job.may_stop(TEACHER) and job.may_stop(LOCAL)  # the local user (no sign-in) is the owner
    assert not TrainingJob(mlp_run(TrainConfig(), tmp_path, tmp_path)).may_stop(BOB)


def test_the_first_run_to_wait_is_the_first_to_start_and_each_keeps_its_own_finished_run(
    slot, tiny_data_dir, tmp_path
):
    adas = slot.submit(ADA, mlp_run(ENDLESS, tiny_data_dir, tmp_path))
    slot.submit(BOB, mlp_run(QUICK, tiny_data_dir, tmp_path))
    slot.submit(TEACHER, mlp_run(ENDLESS, tiny_data_dir, tmp_path))
    assert slot.latest_run_of(ADA) is adas and slot.latest_run_of(BOB) is None  # Bob's waits
    wait_until(lambda: adas.snapshot().epochs, "Ada's first epoch")
    adas.stop_by(ADA)
    wait_until(lambda: slot.job is not adas, "the next run taking over")
    assert slot.job.started_by == BOB  # the first to wait, not the last
    assert slot.latest_run_of(ADA) is adas and not adas.running  # her result stays hers to see
    slot.job.join(timeout=60)
    bobs = slot.latest_run_of(BOB).snapshot()
    assert load_checkpoint(bobs.checkpoint).metrics["trained_by"] == BOB.email  # Models shows who
    assert load_checkpoint(adas.snapshot().checkpoint).metrics["trained_by"] == ADA.email


def test_an_owner_cancelling_a_waiting_run_tells_its_owner_once(slot, tiny_data_dir, tmp_path):
    slot.submit(TEACHER, mlp_run(ENDLESS, tiny_data_dir, tmp_path))
    adas = slot.submit(ADA, mlp_run(QUICK, tiny_data_dir, tmp_path))
    bobs = slot.submit(BOB, mlp_run(QUICK, tiny_data_dir, tmp_path))
    slot.cancel(adas.id, TEACHER)
    slot.cancel(bobs.id, BOB)  # his own: nobody else to name
    assert slot.cancelled_by_other(ADA) == TEACHER and slot.cancelled_by_other(ADA) is None
    assert slot.cancelled_by_other(BOB) is None


def test_the_loss_curve_starts_in_the_first_epoch_and_the_eta_counts_down(slot, tiny_data_dir, tmp_path):
    job = slot.submit(LOCAL, mlp_run(QUICK, tiny_data_dir, tmp_path))
    job.join(timeout=60)
    snap = job.snapshot()
    xs = [x for x, _ in snap.losses]
    assert 0 < xs[0] < 1 and xs[-1] == pytest.approx(QUICK.epochs) and xs == sorted(xs)


CLOSE_DELAYS_S = (0.0, 0.0, 0.5, 1.0)  # after the outcome, before the parent closes the pipe


def test_a_child_that_reports_and_is_closed_at_once_exits_cleanly(tiny_data_dir, tmp_path):
    """The parent closes the pipe as soon as the outcome comes, or a moment later, while the child's
    interpreter ends: a thread blocked on the buffered stdin made that "Fatal Python error:
    _enter_buffered_busy". Closed at once, the error was a race this machine no longer loses; closed
    after the child has begun to end, it comes every time."""
    task = jobs.TrainingTask(
        DigitRun(ModelConfig("mlp"), QUICK, str(tmp_path / "no-mnist")), str(tmp_path / "m.pt")
    )
    for delay_s in CLOSE_DELAYS_S:
        child = subprocess.Popen(jobs.CHILD_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, cwd=ROOT)  # fmt: skip
        pickle.dump(task, child.stdin)
        child.stdin.flush()
        assert pickle.load(child.stdout).status == FAILED  # no MNIST there: it reports at once
        time.sleep(delay_s)
        child.stdin.close()
        stderr = child.stderr.read().decode()
        assert child.wait(timeout=30) == 0 and "Fatal Python error" not in stderr, stderr
