"""The device strings and precision names the torch-based runners use for a detected device."""

from __future__ import annotations

from typing import Any

from pytest_hfmodels.cases.hardware import Device


def torch_device(device: Device) -> str:
    if device.kind in ("cuda", "rocm"):  # ROCm builds of torch expose HIP devices as "cuda"
        return f"cuda:{device.index}"
    if device.kind == "mps":
        return "mps"
    return "cpu"


def precision_name(dtype: Any) -> str:
    """torch.float32 -> fp32, the names result rows use for every runtime."""
    name = str(dtype).removeprefix("torch.")
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}.get(name, name)
