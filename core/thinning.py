"""Zhang-Suen thinning of 0/1 images by table lookup, batched: the one thinning that both the digit
models' pen augmentation (core.digits.augment) and the reader's pen (core.numbers.pen) use.

Each sub-step packs every pixel's 8 neighbours into one byte with a convolution and looks up whether
that ring makes the pixel removable, so a batch thins at once, on the CPU or a GPU.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

# Neighbours P2..P9 of Zhang and Suen's paper, clockwise from north, as (dy, dx).
RING = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]


def thin_to_lines(mask: torch.Tensor, rounds: int | None = None) -> torch.Tensor:
    """(N, 1, H, W) 0/1 float images thinned for `rounds` rounds of the two sub-steps, or until
    nothing changes (None): ink pixels of the result form lines one pixel thick."""
    removable, weights = _thinning_tools(mask.device)
    done = 0
    while rounds is None or done < rounds:
        before = mask
        for step in (0, 1):
            ring = F.conv2d(mask, weights, padding=1).long()  # each pixel's 8 neighbours as one byte
            mask = mask * ~removable[step][ring]
        done += 1
        if rounds is None and torch.equal(mask, before):
            break
    return mask


def _thinning_table() -> torch.Tensor:
    """(2, 256) bool: whether Zhang-Suen's first and second sub-steps remove an ink pixel whose
    neighbours P2..P9 are the bits of the index."""
    table = torch.zeros(2, 256, dtype=torch.bool)
    for ring in range(256):
        p = [(ring >> k) & 1 for k in range(8)]
        p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
        turns = sum(1 - p[k] and p[(k + 1) % 8] for k in range(8))  # 0 -> 1 changes around
        removable = 2 <= sum(p) <= 6 and turns == 1
        table[0, ring] = removable and not (p2 and p4 and p6) and not (p4 and p6 and p8)
        table[1, ring] = removable and not (p2 and p4 and p8) and not (p2 and p6 and p8)
    return table


def _ring_weights() -> torch.Tensor:
    """(1, 1, 3, 3) conv weights giving neighbour P(k + 2) the bit 2**k."""
    weights = torch.zeros(1, 1, 3, 3)
    for bit, (dy, dx) in enumerate(RING):
        weights[0, 0, dy + 1, dx + 1] = 2**bit
    return weights


@functools.cache
def _thinning_tools(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return _thinning_table().to(device), _ring_weights().to(device)
