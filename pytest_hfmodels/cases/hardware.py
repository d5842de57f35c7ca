"""What this machine can run models on: cpu, cuda, rocm, mps and OpenVINO devices.

Detection runs once, on the pytest controller. The CPU is read from the OS; accelerators are
asked of torch and OpenVINO in a child process (`hardware_probe`), so the process that loads
the plugin never imports them, and the child is spawned only when a hint (a driver, a device
node, an installed package) says there may be something to find.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_hfmodels.errors import OptionError

#: preference order for "the best available device" of a mode
PREFERENCE = ("cuda", "rocm", "mps", "ov-gpu", "ov-npu", "cpu")
KNOWN_LABELS = ("cpu", "cuda", "rocm", "mps", "ov-gpu", "ov-npu")
_PROBE_TIMEOUT_S = 60


@dataclass(frozen=True)
class Device:
    """One device a model can run on."""

    label: str  #: the name in test ids and --hf-hardware: cpu, cuda, cuda1, rocm, mps, ov-gpu, ov-npu
    kind: str  #: cpu | cuda | rocm | mps | openvino
    name: str  #: model name as the vendor reports it
    index: int = 0
    memory_mb: int | None = None
    driver: str | None = None
    versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    flags: tuple[str, ...] = ()  #: ISA flags worth knowing (avx512_bf16, amx_tile, ...)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["versions"] = dict(self.versions)
        data["flags"] = list(self.flags)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Device:
        values = dict(data)
        values["versions"] = MappingProxyType(dict(values.get("versions", {})))
        values["flags"] = tuple(values.get("flags", ()))
        return cls(**values)


@dataclass(frozen=True)
class Hardware:
    """Every device detected on this machine, cpu first."""

    devices: tuple[Device, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(d.label for d in self.devices)

    def get(self, label: str) -> Device | None:
        return next((d for d in self.devices if d.label == label), None)

    def best(self, candidates: Iterable[str]) -> str:
        """The preferred present device among `candidates` (labels a mode supports)."""
        present = [label for label in candidates if label in self.labels]
        return min(present, key=lambda label: PREFERENCE.index(base_label(label)), default="cpu")

    def to_dicts(self) -> list[dict[str, Any]]:
        return [d.to_dict() for d in self.devices]

    @classmethod
    def from_dicts(cls, items: Iterable[Mapping[str, Any]]) -> Hardware:
        return cls(tuple(Device.from_dict(item) for item in items))

    def header_lines(self) -> list[str]:
        lines = []
        for d in self.devices:
            extra = [f"{d.memory_mb} MiB" if d.memory_mb else "", f"driver {d.driver}" if d.driver else ""]
            extra += [f"{k} {v}" for k, v in d.versions.items()]
            lines.append(f"  {d.label}: {d.name}" + "".join(f", {e}" for e in extra if e))
        return lines


def base_label(label: str) -> str:
    """cuda1 -> cuda: the kind of device a label names."""
    return label.rstrip("0123456789")


def parse_hardware_list(value: str) -> tuple[str, ...]:
    """Parse --hf-hardware: a comma list of labels (cuda1 for a second CUDA device)."""
    labels = tuple(item.strip() for item in value.split(",") if item.strip())
    for label in labels:
        if base_label(label) not in KNOWN_LABELS:
            raise OptionError(f"--hf-hardware: unknown device {label!r} (known: {', '.join(KNOWN_LABELS)})")
    return labels


def detect(accelerators: bool = True) -> Hardware:
    """Detect every device; accelerators through a child process when hints say so.

    `accelerators=False` (a `--cpu-only` run) reads the CPU alone: no case can use anything
    else, and the probe's child process imports torch and OpenVINO (about a second).
    """
    devices = [_cpu()]
    if accelerators and _accelerator_hints():
        devices.extend(_probe_in_child())
    return Hardware(tuple(devices))


def _cpu() -> Device:
    name, flags = platform.processor() or platform.machine(), []
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        text = cpuinfo.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("model name") and ":" in line:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                present = set(line.split(":", 1)[1].split())
                flags = [
                    f
                    for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
                    if f in present
                ]
                break
    memory_mb = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    cores = os.cpu_count() or 0
    return Device(
        label="cpu",
        kind="cpu",
        name=f"{name} ({cores} cores)",
        memory_mb=memory_mb,
        versions=MappingProxyType({"python": platform.python_version()}),
        flags=tuple(flags),
    )


def torch_device_hint() -> bool:
    """A GPU driver or Apple silicon is present: worth asking torch (importing it costs seconds)."""
    if importlib.util.find_spec("torch") is None:
        return False
    nvidia = Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()
    rocm = Path("/dev/kfd").exists()
    mps = sys.platform == "darwin" and platform.machine() == "arm64"
    return nvidia or rocm or mps


def _accelerator_hints() -> bool:
    return importlib.util.find_spec("openvino") is not None or torch_device_hint()


def _probe_in_child() -> list[Device]:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_hfmodels.cases.hardware_probe"],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    lines = done.stdout.strip().splitlines()
    return [Device.from_dict(item) for item in json.loads(lines[-1])] if lines else []
