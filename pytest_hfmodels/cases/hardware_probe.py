"""Child process of `hardware.detect`: asks torch and OpenVINO which accelerators they see.

Run as `python -m pytest_hfmodels.cases.hardware_probe`; prints one JSON list of device dicts.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from pytest_hfmodels.cases.hardware import torch_device_hint


def _torch_devices() -> list[dict[str, Any]]:
    if not torch_device_hint():
        return []
    import torch

    devices: list[dict[str, Any]] = []
    if torch.cuda.is_available():
        hip = getattr(torch.version, "hip", None)
        kind = "rocm" if hip else "cuda"
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            versions = {"torch": torch.__version__, "hip" if hip else "cuda": str(hip or torch.version.cuda)}
            devices.append(
                {
                    "label": kind if index == 0 else f"{kind}{index}",
                    "kind": kind,
                    "name": props.name,
                    "index": index,
                    "memory_mb": props.total_memory // 2**20,
                    "driver": _nvidia_driver(),
                    "versions": versions,
                    "flags": [f"sm_{props.major}{props.minor}"] if not hip else [],
                }
            )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(
            {
                "label": "mps",
                "kind": "mps",
                "name": "Apple GPU (MPS)",
                "index": 0,
                "versions": {"torch": torch.__version__},
            }
        )
    return devices


def _nvidia_driver() -> str | None:
    path = Path("/proc/driver/nvidia/version")
    if not path.exists():
        return None
    words = path.read_text(errors="replace").split()
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  ..." -> the first dotted number
    return next((w for w in words if w.count(".") >= 1 and w.replace(".", "").isdigit()), None)


def _openvino_devices() -> list[dict[str, Any]]:
    if importlib.util.find_spec("openvino") is None:
        return []
    os.environ.setdefault("OPENVINO_TELEMETRY_DISABLE", "1")
    import openvino

    core = openvino.Core()
    devices = []
    for name in core.available_devices:
        if name == "CPU":
            continue  # the cpu device already stands for OpenVINO's CPU plugin
        base = name.split(".")[0].lower()
        index = int(name.split(".")[1]) if "." in name else 0
        label = f"ov-{base}" if index == 0 else f"ov-{base}{index}"
        devices.append(
            {
                "label": label,
                "kind": "openvino",
                "name": str(core.get_property(name, "FULL_DEVICE_NAME")),
                "index": index,
                "versions": {"openvino": openvino.__version__},
            }
        )
    return devices


def main() -> None:
    print(json.dumps(_torch_devices() + _openvino_devices()))


if __name__ == "__main__":
    main()
