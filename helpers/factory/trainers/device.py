"""Where the encoder trains and predicts: CUDA, then Apple MPS, then CPU — and with which threads.

``select_device("auto")`` (the service's default, ``--device auto``) picks the first of CUDA,
MPS and CPU that torch reports as available; ``"cpu"``, ``"cuda"`` and ``"mps"`` force one (asking
for a device that is not there is an error naming it). On CUDA the trainer runs the transformer
under mixed precision: bfloat16 autocast where the GPU computes it natively (compute capability
8.0 and up: A100, L4, H100, ...), else float16 with a gradient scaler (a T4 is 7.5: it would
*emulate* bfloat16, slowly, and ``torch.cuda.is_bf16_supported()`` counts emulation). Serving
(the predictor) stays float32 on every device, so a GPU-served score matches the exported ONNX
model's within 1e-4 as on the CPU. On CPU and MPS everything stays float32, so CPU results do
not depend on the CPU's vector extensions (no bfloat16 path on CPU unless asked for explicitly).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

import torch

from .base import DEVICE_CHOICES


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(requested: str | None = "auto") -> torch.device:
    """The torch device for ``requested`` (``auto``: CUDA, then MPS, then CPU)."""
    name = (requested or "auto").lower()
    if name not in DEVICE_CHOICES:
        choices = ", ".join(DEVICE_CHOICES)
        raise ValueError(f"unknown device {requested!r}: choose one of {choices}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch reports no CUDA GPU here")
    if name == "mps" and not _mps_available():
        raise ValueError("device 'mps' was requested but torch reports no Apple MPS device")
    return torch.device(name)


NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere and later compute bfloat16 natively


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The training autocast dtype on ``device`` (None: plain float32): bfloat16 on GPUs of
    compute capability 8.0 and up, float16 below (with :func:`grad_scaler`)."""
    if device.type != "cuda":
        return None
    capability = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if tuple(capability) >= NATIVE_BF16_CAPABILITY else torch.float16


def grad_scaler(device: torch.device) -> torch.amp.GradScaler | None:
    """Loss scaling for float16 training (its small range would underflow gradients)."""
    return torch.amp.GradScaler("cuda") if amp_dtype(device) == torch.float16 else None


def autocast(device: torch.device) -> AbstractContextManager:
    """Mixed precision for training on CUDA, nothing elsewhere."""
    dtype = amp_dtype(device)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def num_threads() -> int:
    """Torch CPU threads: the cores this process may use.

    ``INTENT_TORCH_THREADS`` overrides it (``helpers.batch`` sets it to a point's share).
    """
    override = os.environ.get("INTENT_TORCH_THREADS", "").strip()
    if override:
        try:
            value = int(override)
        except ValueError:
            raise ValueError(f"INTENT_TORCH_THREADS={override!r} is not an integer") from None
        if value < 1:
            raise ValueError(f"INTENT_TORCH_THREADS={override!r} must be at least 1")
        return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)
