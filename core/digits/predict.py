"""Prediction on users' images, with a saliency map for "why this digit"."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.data import BACKGROUND
from core.images import ImageSource
from core.nets import IMAGE_SIDE, NUM_CLASSES
from core.preprocess import LOW_CONFIDENCE, Preprocessed, preprocess

SALIENCY_STEPS = 16  # integrated-gradients path samples, run as one batch
LATENCY_WARMUP = 5
LATENCY_REPEATS = 50
MS = 1000.0


@dataclass
class Prediction:
    digit: int | None  # None when nothing is drawn
    confidence: float
    probabilities: list[float]  # 10 values summing to 1 (all zero when blank)
    blank: bool
    low_confidence: bool
    processed: Preprocessed


def _probabilities(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(inputs).softmax(1)


def _from_probs(probs: torch.Tensor, processed: Preprocessed) -> Prediction:
    confidence, digit = probs.max(0)
    return Prediction(
        digit=int(digit),
        confidence=float(confidence),
        probabilities=probs.tolist(),
        blank=False,
        low_confidence=float(confidence) < LOW_CONFIDENCE,
        processed=processed,
    )


def _blank_prediction(processed: Preprocessed) -> Prediction:
    return Prediction(None, 0.0, [0.0] * NUM_CLASSES, True, False, processed)


def predict(model: nn.Module, image: ImageSource | Preprocessed) -> Prediction:
    """Preprocess (unless already done) and classify one image; the model is not modified."""
    processed = image if isinstance(image, Preprocessed) else preprocess(image)
    if processed.blank:
        return _blank_prediction(processed)
    return _from_probs(_probabilities(model, processed.tensor)[0], processed)


def predict_batch(model: nn.Module, images: list[ImageSource | Preprocessed]) -> list[Prediction]:
    """Classify many already-readable images with one forward pass."""
    processed = [im if isinstance(im, Preprocessed) else preprocess(im) for im in images]
    drawn = [p for p in processed if not p.blank]
    probs = iter(_probabilities(model, torch.cat([p.tensor for p in drawn])) if drawn else [])
    return [_blank_prediction(p) if p.blank else _from_probs(next(probs), p) for p in processed]


def integrated_gradients(model: nn.Module, inputs: torch.Tensor, digit: int) -> torch.Tensor:
    """(28, 28) attributions to `digit`'s score along the straight path from a blank input: they add
    up to score(input) - score(blank), exactly for a linear model, to the path's sampling otherwise.

    Uses autograd.grad on the input only, so a shared cached model's parameters are untouched.
    """
    baseline = torch.full_like(inputs, BACKGROUND)
    alphas = torch.linspace(1 / SALIENCY_STEPS, 1, SALIENCY_STEPS).view(-1, 1, 1, 1)
    path = (baseline + alphas * (inputs - baseline)).requires_grad_(True)
    with torch.enable_grad():
        scores = model(path)[:, digit].sum()
        (grads,) = torch.autograd.grad(scores, path)
    return ((inputs - baseline) * grads.mean(0, keepdim=True))[0, 0]


def saliency(model: nn.Module, inputs: torch.Tensor, digit: int) -> np.ndarray:
    """(28, 28) in 0..1: how much each pixel of `inputs` (1, 1, 28, 28), normalised, pushed towards
    `digit` (integrated gradients, positive part)."""
    attribution = integrated_gradients(model, inputs, digit).clamp(min=0)
    peak = float(attribution.max())
    return (attribution / peak).numpy() if peak > 0 else np.zeros_like(attribution.numpy())


def call_times_ms(call: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """Milliseconds of each of `repeats` calls, after `warmup` untimed ones (first calls allocate
    and choose kernels)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * MS)
    return times


def latency_ms(model: nn.Module) -> float:
    """Median milliseconds to classify one preprocessed image (forward pass and softmax) on the CPU."""
    inputs = torch.full((1, 1, IMAGE_SIDE, IMAGE_SIDE), BACKGROUND)
    return statistics.median(
        call_times_ms(lambda: _probabilities(model, inputs), LATENCY_REPEATS, LATENCY_WARMUP)
    )
