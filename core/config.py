"""Configs as dataclasses, and the default recipes. Torch-free, so that the CLI's help is fast."""

from __future__ import annotations

from dataclasses import dataclass, replace

ARCHS = ("mlp", "cnn")  # digit models
READER_ARCH = "reader"  # the number reader (core.numbers.reader): not a digit model
READER_MINUTES = 10.5  # its training steps' time; writing its numbers takes 2.5 min more on a quiet CPU
NO_AUGMENT = "none"
NUMBER_CANVAS = (700, 220)  # px: Number mode's canvas, on which the reader's training numbers are written


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and sizes: everything needed to rebuild a model."""

    arch: str = "mlp"
    hidden: int = 128  # MLP hidden units; CNN classifier width
    channels: tuple[int, ...] = (16, 32, 64)  # CNN only: one conv block per entry

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.hidden < 1 or not all(c >= 1 for c in self.channels):
            raise ValueError("hidden size and channel counts must be positive")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    @property
    def shape(self) -> str:
        """'784-128-10' for an MLP; 'conv 16-32-64, 128' for a CNN (its channels, then its width)."""
        if self.arch == "mlp":
            return f"784-{self.hidden}-10"
        return f"conv {'-'.join(map(str, self.channels))}, {self.hidden}"


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the on-device random affine and stroke-width changes."""

    rotation_deg: float
    scale: tuple[float, float]
    shift_px: float
    shear: float
    stroke_change: float  # share of images thickened or thinned by one pixel
    # Share of each batch augmented; the rest stays as MNIST wrote it, like the test set and the
    # preprocessed drawings. Half trains faster and no less robust than all (measured, see README).
    share: float = 0.5
    # Share of each batch first re-drawn along its skeleton with an even round pen, as the canvas
    # draws (core.data.redraw_with_pen); independent of `share`.
    pen_share: float = 0.0


# "strong" suits the CNN (more robust on drawings and photos); on the 128-unit MLP it reads
# drawings no better than "mild", so the MLP trains with "mild" (measured, see README).
AUGMENTATIONS = {
    "mild": Augmentation(rotation_deg=12.0, scale=(0.85, 1.1), shift_px=2.0, shear=0.2, stroke_change=0.3),
    "strong": Augmentation(rotation_deg=15.0, scale=(0.8, 1.15), shift_px=2.0, shear=0.3, stroke_change=0.5),
}
# "pen": "strong" with half of each batch re-drawn as a canvas pen would (docs/models.md: the shipped
# CNN reads re-drawn MNIST test digits better with it).
AUGMENTATIONS["pen"] = replace(AUGMENTATIONS["strong"], pen_share=0.5)
AUGMENT_HELP = (
    "Random changes to half of each batch. mild: small turns, stretches and shifts; strong: larger "
    "ones (the CNN's default); pen: strong, and half of each batch first re-drawn along its skeleton "
    "with an even pen, as the canvas draws: reads drawings better; an epoch takes more than twice as "
    "long on a CPU."
)


def require_positive(settings: tuple[tuple[str, float], ...]) -> None:
    """ValueError naming the first (name, value) that is not positive."""
    for name, value in settings:
        if value <= 0:
            raise ValueError(f"{name} must be positive, not {value}")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters."""

    epochs: int = 8
    batch_size: int = 256
    lr: float = 5e-3  # peak of the one-cycle schedule
    warmup: float = 0.15  # share of steps spent raising the learning rate to its peak
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: str = "mild"  # "none" or a key of AUGMENTATIONS
    ema_decay: float = 0.99  # per-step weight averaging (see core.digits.train); 0 keeps the raw weights
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        require_positive(
            (("epochs", self.epochs), ("batch size", self.batch_size), ("learning rate", self.lr))
        )
        if not 0 <= self.ema_decay < 1:
            raise ValueError("ema_decay must be in [0, 1)")
        if self.augment != NO_AUGMENT and self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be {NO_AUGMENT!r} or one of {', '.join(AUGMENTATIONS)}")


# Default recipes per architecture (see README for how they were chosen).
RECIPES = {
    "mlp": TrainConfig(epochs=8, batch_size=256, lr=5e-3, augment="mild"),
    "cnn": TrainConfig(epochs=4, batch_size=128, lr=5e-3, augment="strong"),
}


def default_train_config(arch: str, **overrides) -> TrainConfig:
    """The default recipe for `arch`, with any fields replaced (None keeps the recipe's value)."""
    return replace(RECIPES[arch], **{k: v for k, v in overrides.items() if v is not None})


EXPORT_FORMATS = ("onnx",)  # what `python -m core export` and the Models page write
