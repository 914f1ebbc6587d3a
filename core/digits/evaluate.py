"""Evaluation: one batched pass over a split."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from core.data import Split
from core.nets import NUM_CLASSES

EVAL_BATCH = 2000
TOP_K = 3
PERCENT = 100.0


@dataclass
class Mistake:
    index: int  # position in the evaluated split
    label: int
    predicted: int
    confidence: float  # probability given to the wrong digit
    top: list[tuple[int, float]]  # the TOP_K most probable digits, most probable first


@dataclass
class ClassScores:
    digit: int
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class EvalReport:
    accuracy: float  # percent
    loss: float
    count: int
    confusion: list[list[int]]  # [true][predicted]
    per_class: list[ClassScores]
    mistakes: list[Mistake] = field(default_factory=list)  # most confident first


@torch.inference_mode()
def logits_for(model: nn.Module, images: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Logits (N, 10) in eval mode; the model's train/eval flag is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    finally:
        model.train(was_training)


def accuracy_and_loss(model: nn.Module, split: Split) -> tuple[float, float]:
    """(accuracy in percent, mean cross-entropy) on a split."""
    logits = logits_for(model, split.images)
    accuracy = (logits.argmax(1) == split.labels).float().mean().item() * PERCENT
    return accuracy, F.cross_entropy(logits, split.labels).item()


def _class_scores(confusion: torch.Tensor) -> list[ClassScores]:
    tp = confusion.diag().double()
    predicted = confusion.sum(0).double()
    actual = confusion.sum(1).double()
    precision = tp / predicted.clamp(min=1)
    recall = tp / actual.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return [
        ClassScores(d, precision[d].item(), recall[d].item(), f1[d].item(), int(actual[d]))
        for d in range(NUM_CLASSES)
    ]


def evaluate(model: nn.Module, split: Split) -> EvalReport:
    """Accuracy, loss, confusion matrix, per-class scores and mistakes (most confident first)."""
    logits = logits_for(model, split.images)
    probs = logits.softmax(1)
    confidence, predicted = probs.max(1)
    labels = split.labels
    confusion = torch.bincount(labels * NUM_CLASSES + predicted, minlength=NUM_CLASSES * NUM_CLASSES).view(
        NUM_CLASSES, NUM_CLASSES
    )
    wrong = (predicted != labels).nonzero().flatten()
    wrong = wrong[confidence[wrong].argsort(descending=True)].tolist()
    top_probs, top_digits = (t.tolist() for t in probs[wrong].topk(TOP_K, dim=1))
    label_list = labels.tolist()
    return EvalReport(
        accuracy=(predicted == labels).float().mean().item() * PERCENT,
        loss=F.cross_entropy(logits, labels).item(),
        count=len(labels),
        confusion=confusion.cpu().tolist(),
        per_class=_class_scores(confusion.cpu()),
        mistakes=[
            Mistake(i, label_list[i], digits[0], probs_[0], list(zip(digits, probs_, strict=True)))
            for i, digits, probs_ in zip(wrong, top_digits, top_probs, strict=True)
        ],
    )
