"""Device and dtype choice for local transformers models (HF backend, lm-eval, judge, trainers).

`device=auto` is CUDA when available, else MPS, else CPU; `dtype=auto` is bfloat16 on a GPU that
supports it, float16 on an older GPU, float32 on CPU (bf16 is slower than fp32 on most CPUs and
needs no saving there). What they resolve to changes the numbers, so it is part of the model's
fingerprint — except the CPU/float32 default, which is left out so that every fingerprint (and
so every cached output) made before device choice existed stays valid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """Where and how a model is loaded."""

    device: str
    """cpu | cuda | cuda:N | mps"""
    dtype: str
    """float32 | bfloat16 | float16"""
    device_map: str | None = None
    """'auto': spread layers over every visible GPU (accelerate) instead of one device."""

    def fingerprint_options(self) -> dict[str, Any]:
        """The part of the load options that enters the fingerprint (defaults left out)."""
        out: dict[str, Any] = {}
        kind = self.device.split(":")[0]
        if kind != "cpu":
            out["device"] = kind  # cuda:0 and cuda:1 compute the same numbers
        if self.dtype != "float32":
            out["dtype"] = self.dtype
        if self.device_map:
            out["device_map"] = self.device_map
        return out


def _torch() -> Any:
    import torch

    return torch


def _has_torch() -> bool:
    # A core install (a CI gate job) has no torch: it can only mean the CPU, and resolving a
    # local spec there (gate's spec lookup) must not fail on the import.
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def cuda_available() -> bool:
    """Patched in tests to exercise the GPU choice on a CPU machine."""
    return _has_torch() and bool(_torch().cuda.is_available())


def cuda_bf16_supported() -> bool:
    return bool(_torch().cuda.is_bf16_supported())


def cuda_device_count() -> int:
    return int(_torch().cuda.device_count())


def mps_available() -> bool:
    if not _has_torch():
        return False
    backend = getattr(_torch().backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_placement(device: str = "auto", dtype: str = "auto", device_map: str | None = None) -> Placement:
    """Resolve `auto` values against this machine; an unavailable device is a user error."""
    if device == "auto":
        device = "cuda" if cuda_available() else "mps" if mps_available() else "cpu"
    elif device.startswith("cuda"):
        if not cuda_available():
            raise UserError(f"device={device} was asked for, but CUDA is not available here", field="device")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= cuda_device_count():
            raise UserError(
                f"device={device}: this machine has {cuda_device_count()} CUDA device(s)", field="device"
            )
    elif device == "mps" and not mps_available():
        raise UserError("device=mps was asked for, but MPS is not available here", field="device")
    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "bfloat16" if cuda_bf16_supported() else "float16"
        elif device == "mps":
            dtype = "float16"
        else:
            dtype = "float32"
    if device_map and not device.startswith("cuda"):
        log.info("device_map=%s ignored on %s: one device, nothing to spread", device_map, device)
        device_map = None
    return Placement(device, dtype, device_map)
