"""Augmentation of the digit models' training batches, on the device: random affine warps, thicker
and thinner strokes, and some digits re-drawn with an even pen along their skeletons (the strokes of
a canvas, which MNIST's scanned pen strokes are not)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from core.config import Augmentation
from core.data import BACKGROUND, standardise, to_pixels
from core.nets import IMAGE_SIDE
from core.thinning import thin_to_lines

PEN_UPSCALE = 2  # digits are re-drawn at twice the size: a 28 px skeleton loses small loops
# The pen grows from the skeleton in steps, alternately to the 4 and the 8 neighbours (an octagon,
# near a disk); pens of 1 to 3 steps are 1.5 to 3.5 px wide at 28 px, thin to thick as drawn.
PEN_STEPS = (1, 3)
INK_LEVEL = 0.5  # pixels this dark or more are the stroke that is thinned
THINNING_ROUNDS = 6


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device) * (high - low) + low


def _pixel_grid(device: torch.device) -> torch.Tensor:
    """(28, 28, 3) homogeneous pixel-centre coordinates in [-1, 1], as affine_grid uses."""
    coords = (torch.arange(IMAGE_SIDE, device=device) * 2 + 1) / IMAGE_SIDE - 1
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([x, y, torch.ones_like(x)], -1)


def augment(images: torch.Tensor, generator: torch.Generator, ranges: Augmentation) -> torch.Tensor:
    """Random affine and stroke width change of the first `ranges.share` of a (shuffled) batch,
    after re-drawing a random `ranges.pen_share` of it with an even pen."""
    if ranges.pen_share:
        images = _redraw_some(images, generator, ranges.pen_share)
    n = round(images.shape[0] * ranges.share)
    return torch.cat([_warp(images[:n], generator, ranges), images[n:]])


def _redraw_some(images: torch.Tensor, generator: torch.Generator, share: float) -> torch.Tensor:
    n = images.shape[0]
    pick = torch.rand(n, generator=generator, device=generator.device) < share
    steps = torch.randint(PEN_STEPS[0], PEN_STEPS[1] + 1, (n,), generator=generator, device=generator.device)
    return _change_picked(images, pick, redraw_with_pen, steps)


def redraw_with_pen(images: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) model inputs re-drawn along their skeletons with a round pen `steps` (N,)
    wide (see PEN_STEPS): the even strokes of a canvas, which MNIST's scanned pen strokes are not."""
    big = F.interpolate(to_pixels(images), scale_factor=PEN_UPSCALE, mode="bilinear", align_corners=False)
    # reach[k]: the pixels within k steps of the skeleton
    reach = [thin_to_lines((big > INK_LEVEL).float(), THINNING_ROUNDS)]
    for step in range(1, PEN_STEPS[1] + 1):
        reach.append(_dilate(reach[-1], fill=0.0) if step % 2 == 0 else _dilate_cross(reach[-1]))
    drawn = torch.stack(reach)[steps, torch.arange(images.shape[0], device=images.device)]
    return standardise(F.avg_pool2d(drawn, PEN_UPSCALE))  # anti-aliased edges, like the canvas


def _warp(images: torch.Tensor, generator: torch.Generator, ranges: Augmentation) -> torch.Tensor:
    # Rotate, scale, shear and shift each image, then thicken or thin some strokes.
    n = images.shape[0]
    angle = torch.deg2rad(_uniform(n, -ranges.rotation_deg, ranges.rotation_deg, generator))
    scale = _uniform(n, *ranges.scale, generator)
    shear = _uniform(n, -ranges.shear, ranges.shear, generator)
    shift = _uniform(2 * n, -1, 1, generator).view(n, 2) * (2 * ranges.shift_px / IMAGE_SIDE)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # theta maps output to input coordinates: (N, 2, 3)
    theta = torch.stack(
        [torch.stack([cos, -sin + shear, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    # einsum builds the (N, 28, 28, 2) grid far faster than F.affine_grid on CPU.
    grid = torch.einsum("hwk,njk->nhwj", _pixel_grid(images.device), theta)
    warped = F.grid_sample(images - BACKGROUND, grid, align_corners=False) + BACKGROUND
    pick = torch.rand(n, generator=generator, device=generator.device)
    return _vary_stroke(warped, pick, ranges.stroke_change)


def _dilate(images: torch.Tensor, fill: float = BACKGROUND) -> torch.Tensor:
    # 3x3 max filter as two separable passes: much faster than max_pool2d(stride=1) on CPU.
    p = F.pad(images, (1, 1, 1, 1), value=fill)
    rows = torch.maximum(torch.maximum(p[..., :, :-2], p[..., :, 1:-1]), p[..., :, 2:])
    return torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def _dilate_cross(images: torch.Tensor) -> torch.Tensor:
    """Grow 0/1 images by one pixel to their 4 neighbours."""
    p = F.pad(images, (1, 1, 1, 1))
    up_down = torch.maximum(p[..., :-2, 1:-1], p[..., 2:, 1:-1])
    sideways = torch.maximum(p[..., 1:-1, :-2], p[..., 1:-1, 2:])
    return torch.maximum(images, torch.maximum(up_down, sideways))


def _vary_stroke(images: torch.Tensor, pick: torch.Tensor, share: float) -> torch.Tensor:
    # Thicken some images and thin others (pick: (N,) uniform in [0, 1)): users' pens differ in width.
    thickened = _change_picked(images, pick < share / 2, _dilate)
    return _change_picked(thickened, pick > 1 - share / 2, _thin)


def _change_picked(
    images: torch.Tensor, pick: torch.Tensor, change: Callable[..., torch.Tensor], *per_image: torch.Tensor
) -> torch.Tensor:
    """`images` with `change(images, *per_image)` where `pick` (N,) is set. A CPU changes only the
    picked images; on a GPU, picking by index waits for the device (nonzero syncs): mask instead."""
    if images.device.type == "cpu":
        out = images.clone()
        out[pick] = change(images[pick], *(values[pick] for values in per_image))
        return out
    return torch.where(pick.view(-1, 1, 1, 1), change(images, *per_image), images)


def _thin(images: torch.Tensor) -> torch.Tensor:
    # Full erosion would erase MNIST's 2 px strokes, so thin by half a step.
    return (images - _dilate(-images + 2 * BACKGROUND) + 2 * BACKGROUND) / 2
