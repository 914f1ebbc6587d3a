"""What a model computes inside: layer outputs, what each hidden unit adds to a digit's score, its
weights as images, and a 2-D map of the features it gives MNIST's test digits.

Every function runs a plain forward over the model's layers without gradients: nothing is
registered on, or left in, a model that may be cached and shared by every session.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from core.data import Split, to_pixels
from core.nets import IMAGE_SIDE

TOP_UNITS = 3  # units shown pushing for, and against, the predicted digit
MAP_DIGITS = 2000  # test digits on the embedding map: enough to show the clusters, light to send
NEIGHBOURS = 8
MAP_BATCH = 500
# Colour stops, RGB: diverging for values of either sign (blue < 0 < red, white at 0, as RdBu),
# sequential for values >= 0 (black to yellow through red, as inferno). Gaps take the dark page's colour.
DIVERGING_STOPS = ((33, 102, 172), (247, 247, 247), (178, 24, 43))
SEQUENTIAL_STOPS = ((0, 0, 4), (188, 55, 84), (252, 255, 164))
GAP_RGB = (14, 17, 23)


@dataclass
class Inside:
    """One input seen by one model."""

    logits: torch.Tensor  # (10,)
    digit: int  # the highest logit
    hidden: torch.Tensor  # (H,) the classifier's hidden units after ReLU: the penultimate features
    contributions: torch.Tensor  # (H,) hidden × outgoing weight to `digit`
    bias: float  # the output bias of `digit`: contributions.sum() + bias == logits[digit]
    feature_maps: list[torch.Tensor]  # CNN: (C, h, w) after each conv block; MLP: []

    def top_units(self, k: int = TOP_UNITS) -> tuple[list[int], list[int]]:
        """The k units that pushed hardest towards `digit`, and the k that pushed hardest against it
        (only units whose contribution has that sign)."""
        order = torch.argsort(self.contributions, descending=True).tolist()
        towards = [u for u in order[:k] if self.contributions[u] > 0]
        against = [u for u in reversed(order[-k:]) if self.contributions[u] < 0]
        return towards, against


def layer_outputs(model: nn.Sequential, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The output of every layer of `model` for `inputs` (N, 1, 28, 28), in order."""
    outputs = []
    with torch.no_grad():  # not inference_mode: callers may use the results with autograd
        x = inputs
        for layer in model:
            x = layer(x)
            outputs.append(x)
    return outputs


def classifier(model: nn.Sequential) -> nn.Linear:
    """The last layer: hidden units to the ten logits."""
    return model[-1]


def look_inside(model: nn.Sequential, inputs: torch.Tensor) -> Inside:
    """Layer by layer, for one normalised input (1, 1, 28, 28)."""
    outputs = layer_outputs(model, inputs)
    logits, hidden = outputs[-1][0], outputs[-2][0].reshape(-1)
    digit = int(logits.argmax())
    last = classifier(model)
    return Inside(
        logits=logits,
        digit=digit,
        hidden=hidden,
        contributions=hidden * last.weight[digit].detach(),
        bias=float(last.bias[digit].detach()),
        feature_maps=[
            out[0] for layer, out in zip(model, outputs, strict=True) if isinstance(layer, nn.MaxPool2d)
        ],
    )


def _is_block_end(layer: nn.Module) -> bool:
    return isinstance(layer, nn.MaxPool2d)  # a conv block ends with its pooling (core.nets)


def _first_weighted(model: nn.Sequential) -> nn.Module:
    return next(layer for layer in model if isinstance(layer, (nn.Linear, nn.Conv2d)))


def first_layer_weights(model: nn.Sequential) -> torch.Tensor:
    """MLP: each hidden unit's incoming weights as a (H, 28, 28) image, the pattern it matches.
    CNN: the first convolution's filters, (C, k, k)."""
    first = _first_weighted(model)
    weight = first.weight.detach()
    if isinstance(first, nn.Linear):
        return weight.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    return weight[:, 0]


def tile(images: torch.Tensor, columns: int, gap: float = float("nan")) -> torch.Tensor:
    """(N, h, w) images as one (rows*(h+1)-1, columns*(w+1)-1) mosaic, one `gap` pixel between
    tiles (NaN: drawn as background); the last row is padded with gap."""
    n, h, w = images.shape
    rows = -(-n // columns)
    padded = torch.full((rows * columns, h + 1, w + 1), gap)
    padded[:n, :h, :w] = images
    grid = padded.reshape(rows, columns, h + 1, w + 1).permute(0, 2, 1, 3)
    return grid.reshape(rows * (h + 1), columns * (w + 1))[:-1, :-1]


def grid_columns(count: int) -> int:
    """Columns for a near-square grid about twice as wide as high (it fits a wide page)."""
    return max(1, round((2 * count) ** 0.5))


@dataclass
class EmbeddingMap:
    """PCA of the penultimate features of some MNIST test digits."""

    indices: torch.Tensor  # (N,) positions in the test split
    labels: torch.Tensor  # (N,)
    features: torch.Tensor  # (N, H)
    mean: torch.Tensor  # (H,)
    axes: torch.Tensor  # (H, 2) the first two principal directions
    points: torch.Tensor  # (N, 2) features projected on them
    explained: tuple[float, float]  # share of the variance along each axis
    thumbnails: list[str]  # (N,) each digit as a PNG data URL, shown when a point is hovered

    def place(self, hidden: torch.Tensor) -> tuple[float, float]:
        """Where features (H,) of another input fall on the map."""
        x, y = ((hidden - self.mean) @ self.axes).tolist()
        return x, y

    def nearest(self, hidden: torch.Tensor, k: int = NEIGHBOURS) -> list[int]:
        """Rows of the k map digits closest to `hidden` in feature space (not on the 2-D map)."""
        distances = torch.cdist(hidden[None], self.features)[0]
        return torch.topk(distances, min(k, len(distances)), largest=False).indices.tolist()


def penultimate_features(model: nn.Sequential, images: torch.Tensor) -> torch.Tensor:
    """(N, H) hidden units of the classifier, after ReLU, for normalised images (N, 1, 28, 28)."""
    head = model[:-1]
    with torch.no_grad():  # not inference_mode: callers may use the results with autograd
        return torch.cat([head(images[i : i + MAP_BATCH]) for i in range(0, len(images), MAP_BATCH)])


def build_map(model: nn.Sequential, split: Split, count: int = MAP_DIGITS, seed: int = 0) -> EmbeddingMap:
    """The embedding map of `count` test digits drawn with `seed`; the same inputs give the same map."""
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(split), generator=generator)[:count].sort().values
    features = penultimate_features(model, split.images[indices])
    mean = features.mean(0)
    _, singular, directions = torch.linalg.svd(features - mean, full_matrices=False)
    axes = directions[:2].T.clone()
    # An SVD may return either sign of a direction: make each one's largest loading positive, so
    # that the map does not flip between builds.
    signs = torch.sign(axes.gather(0, axes.abs().argmax(0, keepdim=True)))
    axes *= signs
    variance = singular**2
    share = (variance[:2] / variance.sum()).tolist()
    return EmbeddingMap(
        indices=indices,
        labels=split.labels[indices],
        features=features,
        mean=mean,
        axes=axes,
        points=(features - mean) @ axes,
        explained=(share[0], share[1]),
        thumbnails=[png_data_url(image) for image in split.images[indices]],
    )


def png_data_url(image: torch.Tensor) -> str:
    """A normalised (1, 28, 28) MNIST image as a small greyscale PNG data URL (ink white on black)."""
    pixels = (to_pixels(image[0]).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels)).save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def colour(values: torch.Tensor, diverging: bool) -> np.ndarray:
    """(h, w) values as (h, w, 3) uint8 RGB, scaled to the largest magnitude; NaN is a gap.
    Diverging: -max blue, 0 white, +max red. Sequential (values >= 0): 0 black, max yellow."""
    finite = torch.nan_to_num(values, nan=0.0)
    limit = float(finite.abs().max()) or 1.0
    t = finite / limit if diverging else (finite / limit).clamp(min=0) * 2 - 1  # in [-1, 1]
    stops = torch.tensor(DIVERGING_STOPS if diverging else SEQUENTIAL_STOPS, dtype=torch.float32)
    lower = torch.where(t[..., None] < 0, stops[0], stops[1])
    upper = torch.where(t[..., None] < 0, stops[1], stops[2])
    weight = (t + (t < 0).float())[..., None]  # position between the two stops, 0..1
    rgb = lower + (upper - lower) * weight
    rgb[values.isnan()] = torch.tensor(GAP_RGB, dtype=torch.float32)
    return rgb.round().to(torch.uint8).numpy()


INK_SHADE = 0.7  # how dark the input's ink is drawn over a template


def template_on_input(template: torch.Tensor, image28: np.ndarray) -> np.ndarray:
    """A unit's (28, 28) template in diverging colours, with the input's ink (28, 28, 0..1) drawn
    over it in dark grey: ink on red raises the unit, ink on blue lowers it."""
    rgb = colour(template, diverging=True).astype(np.float32)
    return (rgb * (1 - INK_SHADE * image28[..., None])).round().astype(np.uint8)


@dataclass
class DrawingViews:
    """Everything the Inside page shows for one drawing, computed together."""

    inside: Inside
    towards: list[int]  # top units for the predicted digit
    against: list[int]  # and against it
    feature_maps: list[np.ndarray]  # CNN: one RGB mosaic per conv block; MLP: []
    templates: list[np.ndarray]  # MLP: each top unit's template under the ink, RGB; CNN: []
    position: tuple[float, float] | None  # on the embedding map, when there is one
    nearest: list[int]  # rows of the map's digits closest in feature space


def drawing_views(
    model: nn.Sequential, inputs: torch.Tensor, image28: np.ndarray, embedding: EmbeddingMap | None
) -> DrawingViews:
    """All per-drawing views for a normalised input (1, 1, 28, 28) and its 28x28 ink image."""
    inside = look_inside(model, inputs)
    towards, against = inside.top_units()
    mosaics = [colour(tile(maps, grid_columns(len(maps))), diverging=False) for maps in inside.feature_maps]
    templates = []
    if isinstance(_first_weighted(model), nn.Linear):  # an MLP: its hidden units see the pixels
        weights = first_layer_weights(model)
        templates = [template_on_input(weights[u], image28) for u in towards + against]
    return DrawingViews(
        inside=inside,
        towards=towards,
        against=against,
        feature_maps=mosaics,
        templates=templates,
        position=embedding.place(inside.hidden) if embedding is not None else None,
        nearest=embedding.nearest(inside.hidden) if embedding is not None else [],
    )
