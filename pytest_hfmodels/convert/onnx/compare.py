"""How closely one runtime's outputs match the reference's, by numpy's `allclose` rule:
|actual - expected| <= atol + rtol * |expected|, elementwise, for every output of the same name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Agreement:
    """How closely one runtime's outputs match the reference's."""

    max_abs_diff: float
    max_rel_diff: float  #: over elements whose reference magnitude exceeds atol (elsewhere atol rules)
    ok: bool
    problems: tuple[str, ...] = ()  #: missing outputs, shape mismatches, non-finite values

    def describe(self, atol: float, rtol: float) -> str:
        what = (
            f"max abs diff {self.max_abs_diff:.3g}, max rel diff {self.max_rel_diff:.3g} "
            f"(atol {atol:g}, rtol {rtol:g})"
        )
        return "; ".join((what, *self.problems))


def compare_outputs(
    expected: Mapping[str, Any], actual: Mapping[str, Any], atol: float, rtol: float
) -> Agreement:
    """Compare every expected output with the actual one of the same name."""
    max_abs = max_rel = 0.0
    ok = True
    problems: list[str] = []
    for name, want in expected.items():
        want = np.asarray(want, dtype=np.float64)
        if name not in actual:
            problems.append(f"output {name!r} missing (got {sorted(actual)})")
            ok = False
            continue
        got = np.asarray(actual[name], dtype=np.float64)
        if got.shape != want.shape:
            problems.append(f"output {name!r}: shape {got.shape}, PyTorch gives {want.shape}")
            ok = False
            continue
        if not np.isfinite(got).all():
            problems.append(f"output {name!r}: {int((~np.isfinite(got)).sum())} non-finite values")
            ok = False
        diff = np.abs(got - want)
        max_abs = max(max_abs, float(np.nanmax(diff, initial=0.0)))
        large = np.abs(want) > atol
        if large.any():
            max_rel = max(max_rel, float(np.nanmax(diff[large] / np.abs(want[large]))))
        ok = ok and bool(np.all(diff <= atol + rtol * np.abs(want)))
    return Agreement(max_abs, max_rel, ok, tuple(problems))
