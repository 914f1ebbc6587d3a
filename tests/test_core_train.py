import threading
from dataclasses import replace

import pytest
import torch
from torch import nn

from core.config import ModelConfig, TrainConfig
from core.data import MnistData, Split, load_mnist
from core.devices import DeviceError, available_devices, resolve_device
from core.digits.evaluate import accuracy_and_loss, evaluate, logits_for
from core.digits.train import BatchReport, EpochReport, TrainingError, train
from core.nets import build_model, count_parameters
from tests.conftest import DEADLINE_S

FAST = TrainConfig(epochs=3, batch_size=32, lr=1e-2, augment="none", device="cpu")


@pytest.fixture(scope="module")
def tiny(tiny_data_dir):
    return load_mnist(tiny_data_dir, download=False)


@pytest.mark.parametrize("config", [ModelConfig("mlp"), ModelConfig("mlp", hidden=32), ModelConfig("cnn")])
def test_models_map_images_to_ten_logits(config):
    out = build_model(config)(torch.zeros(5, 1, 28, 28))
    assert out.shape == (5, 10)


def test_default_mlp_is_the_classic_784_128_10():
    model = build_model(ModelConfig())
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 128), (128, 10)]
    assert count_parameters(model) == 784 * 128 + 128 + 128 * 10 + 10


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="unknown arch"):
        ModelConfig("transformer")


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_training_learns_the_tiny_task_and_reports_progress(tiny, arch):
    updates = []
    result = train(ModelConfig(arch), FAST, tiny, callback=updates.append)
    epochs = [u for u in updates if isinstance(u, EpochReport)]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert epochs[-1].test_accuracy >= 95.0
    assert any(isinstance(u, BatchReport) for u in updates)
    assert result.steps == 3 * 19 and not result.stopped  # 600 / 32 -> 19 batches
    assert not result.model.training


def test_stop_flag_stops_within_one_batch(tiny):
    stop = threading.Event()
    stopped_at = []

    def stop_at_first_report(update):
        if isinstance(update, BatchReport) and not stop.is_set():
            stopped_at.append(update.epoch * 1000 + update.batch)
            stop.set()

    result = train(ModelConfig("mlp"), FAST, tiny, callback=stop_at_first_report, stop=stop)
    assert result.stopped
    assert result.steps == 10  # the report came after batch 10; batch 11 never ran
    assert len(result.epochs) == 1  # the partial epoch is still reported


def test_stop_from_another_thread_lands_mid_epoch(tiny):
    """Another thread sets Stop at epoch 2's first progress report (batch 10 of 19): the run ends after
    a batch or two, keeping the partly trained epoch 2."""
    stop = threading.Event()

    def stop_in_epoch_2(update):
        if isinstance(update, BatchReport) and update.epoch == 2 and not stop.is_set():
            threading.Thread(target=stop.set).start()

    config = TrainConfig(epochs=500, batch_size=32, device="cpu")
    result_box = {}
    worker = threading.Thread(
        target=lambda: result_box.setdefault(
            "r", train(ModelConfig("mlp"), config, tiny, callback=stop_in_epoch_2, stop=stop)
        )
    )
    worker.start()
    worker.join(timeout=DEADLINE_S)
    result = result_box["r"]
    batches_per_epoch = -(-len(tiny.train) // config.batch_size)
    assert result.stopped and [e.epoch for e in result.epochs] == [1, 2]  # epoch 2 kept, partly trained
    assert batches_per_epoch < result.steps < 2 * batches_per_epoch


def test_seeded_training_is_reproducible_on_cpu(tiny):
    a = train(ModelConfig("mlp"), FAST, tiny).model.state_dict()
    b = train(ModelConfig("mlp"), FAST, tiny).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("strength", ["mild", "pen"])
def test_augmented_training_changes_training_and_still_learns(tiny, strength):
    # The tiny task's bars are 2 px apart, so +-2 px shifts blur classes: well above chance is the bar.
    config = TrainConfig(epochs=4, batch_size=32, lr=1e-2, augment=strength, device="cpu")
    augmented = train(ModelConfig("mlp"), config, tiny)
    plain = train(ModelConfig("mlp"), TrainConfig(**{**config.__dict__, "augment": "none"}), tiny)
    assert augmented.final.test_accuracy >= 60.0
    assert not torch.equal(augmented.model[1].weight, plain.model[1].weight)


def test_the_model_returned_is_the_weight_average_that_was_reported(tiny):
    averaged = train(ModelConfig("cnn", channels=(4, 8)), FAST, tiny)
    raw = train(ModelConfig("cnn", channels=(4, 8)), replace(FAST, ema_decay=0.0), tiny)
    assert averaged.final.test_accuracy == accuracy_and_loss(averaged.model, tiny.test)[0]
    assert averaged.final.test_accuracy >= 90.0
    # Same seed and steps: only the averaging differs. BatchNorm statistics start at zero and are averaged.
    averaged_mean, raw_mean = averaged.model[1].running_mean, raw.model[1].running_mean
    assert averaged_mean.abs().sum() > 0 and not torch.equal(averaged_mean, raw_mean)
    assert not averaged.model.training


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_a_weight_average_decay_outside_0_1_is_refused(decay):
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=decay)


def test_non_finite_loss_stops_with_a_message(tiny):
    images = tiny.train.images.clone()
    images[::7] = float("nan")
    poisoned = MnistData(Split(images, tiny.train.labels), tiny.test)
    with pytest.raises(TrainingError, match="lower the learning rate"):
        train(ModelConfig("mlp"), FAST, poisoned)


@pytest.mark.parametrize(
    "gpus, mps, expected",
    [(2, False, "cuda:0"), (0, True, "mps"), (0, False, "cpu"), (1, True, "cuda:0")],
)
def test_device_auto_picks_the_fastest_that_exists(monkeypatch, gpus, mps, expected):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: f"GPU {index}")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert str(resolve_device("auto")) == expected
    assert [d.id for d in available_devices()][-1] == "cpu" and len(available_devices()) == gpus + mps + 1


@pytest.mark.parametrize("name", ["tpu", "cuda:99", "banana"])
def test_unavailable_device_gives_a_clear_error(name):
    with pytest.raises(DeviceError, match=name):
        resolve_device(name)


class FixedLogits(nn.Module):
    """Returns preset logits, so evaluation results are known exactly."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[: len(x)]


def test_evaluate_confusion_per_class_and_mistakes():
    labels = torch.tensor([0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0])
    logits = torch.full((5, 10), -5.0)
    logits[torch.arange(5), predicted] = 5.0
    logits[1, 1] = 9.0  # the most confident mistake
    report = evaluate(FixedLogits(logits), Split(torch.zeros(5, 1, 28, 28), labels))
    assert report.accuracy == pytest.approx(60.0)
    assert report.confusion[0][:3] == [1, 1, 0] and report.confusion[1][:3] == [0, 2, 0]
    assert report.confusion[2][:3] == [1, 0, 0]
    assert report.per_class[1].precision == pytest.approx(2 / 3) and report.per_class[1].recall == 1.0
    assert report.per_class[2].f1 == 0.0 and report.per_class[2].support == 1
    assert [(m.index, m.label, m.predicted) for m in report.mistakes] == [(1, 0, 1), (4, 2, 0)]
    assert report.mistakes[0].confidence > report.mistakes[1].confidence


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_matches_cpu_quality(tiny):
    result = train(ModelConfig("cnn"), TrainConfig(epochs=3, batch_size=32, lr=1e-2, device="cuda"), tiny)
    assert result.device.startswith("cuda") and result.final.test_accuracy >= 95.0


def test_the_learning_rate_rises_for_the_warm_up_then_falls_to_almost_nothing(tiny, monkeypatch):
    """One-cycle: from peak / 25 up to the peak over the first 15 % of steps, then down to ~0."""
    rates, step = [], torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    config = replace(FAST, lr=0.01)
    train(ModelConfig("mlp", hidden=16), config, tiny)
    peak = max(range(len(rates)), key=rates.__getitem__)
    assert rates[0] == pytest.approx(0.01 / 25) and rates[peak] == pytest.approx(0.01, rel=0.02)
    assert abs(peak / len(rates) - config.warmup) < 0.02
    assert rates[-1] < 0.01 / 1000


def test_the_eta_counts_down_to_zero(tiny):
    updates = []
    train(ModelConfig("mlp"), FAST, tiny, callback=updates.append)
    etas = [u.eta_s for u in updates if isinstance(u, BatchReport)]
    assert etas[0] > 0 and etas[-1] == 0 and etas == sorted(etas, reverse=True)


@pytest.mark.parametrize("training", [True, False])
def test_logits_for_leaves_the_models_mode_as_it_found_it(training):
    model = build_model(ModelConfig("cnn")).train(training)
    logits_for(model, torch.zeros(3, 1, 28, 28))
    assert model.training is training
