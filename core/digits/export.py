"""ONNX export: a checkpoint's model as a standard file for onnxruntime, Netron and other tools.

The file takes `image`, float32 (N, 1, 28, 28) normalised as in training ((pixel/255 - 0.1307) /
0.3081, white ink on black), with a dynamic batch axis N, and returns `logits`, float32 (N, 10).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from core.checkpoint import write_atomically
from core.config import EXPORT_FORMATS
from core.errors import UserError
from core.nets import IMAGE_SIDE

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
BATCH_AXIS = "N"
TRACE_BATCH = 2  # a batch of 1 could be specialised away; 2 keeps the axis symbolic
ONNX_PACKAGES = ("onnx", "onnxscript")  # torch's exporter imports both, and says so less clearly
NEEDS = "ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript"


class ExportError(UserError, ValueError):
    """The model can't be exported or the file can't be written."""


def onnx_available() -> bool:
    """Whether the packages torch's ONNX exporter needs are installed (checked without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ONNX_PACKAGES)


def onnx_bytes(model: nn.Module) -> bytes:
    """The model as a serialised ONNX file. Works on a copy: cached models are never traced in place."""
    if not onnx_available():
        raise ExportError(NEEDS)
    model = copy.deepcopy(model).cpu().eval()
    example = torch.zeros(TRACE_BATCH, 1, IMAGE_SIDE, IMAGE_SIDE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: BATCH_AXIS},),
            dynamo=True,
            verbose=False,
        )
    return program.model_proto.SerializeToString()


def export_model(model: nn.Module, out: str | os.PathLike, fmt: str = "onnx") -> Path:
    """Export to `out` in `fmt` (only "onnx" so far)."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
    data = onnx_bytes(model)
    return write_atomically(Path(out), lambda f: f.write(data))  # WriteError: one line naming `out`
