"""Model definitions built from a dataclass config."""

from __future__ import annotations

import torch
from torch import nn

from core.config import ModelConfig

IMAGE_SIDE = 28
NUM_PIXELS = IMAGE_SIDE * IMAGE_SIDE
NUM_CLASSES = 10


def _conv_block(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    ]


def build_model(config: ModelConfig) -> nn.Module:
    """Build an untrained model; input (N, 1, 28, 28), output logits (N, 10)."""
    if config.arch == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(NUM_PIXELS, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, NUM_CLASSES),
        )
    layers: list[nn.Module] = []
    c_in, side = 1, IMAGE_SIDE
    for i, c_out in enumerate(config.channels):
        # A wide first kernel sees whole stroke segments on the single input channel.
        layers += _conv_block(c_in, c_out, kernel=5 if i == 0 else 3)
        c_in, side = c_out, side // 2
    layers += [
        nn.Flatten(),
        nn.Linear(c_in * side * side, config.hidden),
        nn.ReLU(inplace=True),
        nn.Linear(config.hidden, NUM_CLASSES),
    ]
    # channels_last runs these small convolutions ~1.7x faster on CPU (measured, bench/).
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
