"""Fine-tuning's guard on data the test makes: a fine-tune that forgets is blended back towards its
start, and the checkpoint then reports the blend's test figures; reports per person."""

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from core.checkpoint import Checkpoint
from core.config import ModelConfig, TrainConfig
from core.corrections import example_from_image
from core.data import load_mnist
from core.digits import finetune as finetune_module
from core.digits.evaluate import accuracy_and_loss
from core.digits.finetune import (
    BLENDS,
    GUARD_SHARE,
    MAX_GUARD_DROP,
    MIN_CORRECTIONS,
    Corrections,
    _keep_mnist,
    _without_guard,
    finetune,
)
from core.digits.train import train
from tests.drawings import encode, seven

QUICK = TrainConfig(epochs=2, batch_size=64, lr=5e-3, augment="none", device="cpu", seed=0)


@pytest.fixture(scope="module")
def learnt(tiny_data_dir):
    """A model that reads the tiny task, the run that made it, and the task."""
    data = load_mnist(tiny_data_dir, download=False)
    result = train(ModelConfig("mlp", hidden=32), QUICK, data)
    return result, data


def _as_checkpoint(result) -> Checkpoint:
    return Checkpoint(Path("start.pt"), result.model, result.model_config, {}, {}, "cpu", {}, "")


def _forgetful(model: torch.nn.Module) -> torch.nn.Module:
    """The model after a fine-tune that forgot: its weights pushed far off."""
    torch.manual_seed(1)
    tuned = copy.deepcopy(model)
    with torch.no_grad():
        for weight in tuned.parameters():
            weight.add_(torch.randn_like(weight) * weight.std() * 3)
    return tuned


def test_a_forgetful_fine_tune_is_blended_back_and_reports_the_blends_figures(learnt):
    result, data = learnt
    start = _as_checkpoint(result)
    trained, guard = _without_guard(data)
    assert len(trained.train) + len(guard) == len(data.train) and len(guard) == len(data.train) // 6
    tuned_run = copy.copy(result)
    tuned_run.epochs = list(result.epochs)
    tuned_run.model = _forgetful(result.model)
    guard_before = accuracy_and_loss(result.model, guard)[0]
    assert guard_before - accuracy_and_loss(tuned_run.model, guard)[0] > MAX_GUARD_DROP  # it forgot
    kept = _keep_mnist(start, tuned_run, guard, data.test)
    assert kept in BLENDS and kept < 1
    start_weights, tuned_weights = result.model.state_dict(), _forgetful(result.model).state_dict()
    for name, weight in tuned_run.model.state_dict().items():
        expected = start_weights[name] + kept * (tuned_weights[name] - start_weights[name])
        assert torch.allclose(weight, expected, atol=1e-6)
    accuracy = accuracy_and_loss(tuned_run.model, data.test)[0]
    assert tuned_run.epochs[-1].test_accuracy == pytest.approx(accuracy)  # the checkpoint's figure


def test_a_fine_tune_that_keeps_mnist_is_kept_whole(learnt):
    result, data = learnt
    start = _as_checkpoint(result)
    same = copy.copy(result)
    same.epochs, same.model = list(result.epochs), copy.deepcopy(result.model)
    trained, guard = _without_guard(data)
    assert _keep_mnist(start, same, guard, data.test) == 1.0


def test_forgetting_is_measured_on_held_back_training_images_not_the_test_set(learnt, monkeypatch):
    result, data = learnt
    seen = []

    def keep_mnist(start, run, guard, test):
        seen.append(guard)
        return real_keep_mnist(start, run, guard, test)

    real_keep_mnist = finetune_module._keep_mnist
    monkeypatch.setattr(finetune_module, "_keep_mnist", keep_mnist)
    examples = [example_from_image(encode(seven()), 7, "canvas") for _ in range(MIN_CORRECTIONS)]
    finetune(_as_checkpoint(result), Corrections(examples, "digest"), data, replace(QUICK, epochs=1))
    guard_size = int(len(data.train) * GUARD_SHARE)
    assert torch.equal(seen[0].labels, data.train.labels[-guard_size:].cpu())
