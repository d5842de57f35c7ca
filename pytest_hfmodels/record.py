"""What one case did, gathered while it runs and turned into a `ResultRow` for its report."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from .cases import Case
from .errors import HFModelsError
from .failures import classify
from .results import Measurement, ResultRow
from .runners import Runner


class CaseFailedError(HFModelsError):
    """A case failed; the message starts with its failure class, the real cause is chained."""


@dataclass
class CaseRecord:
    """Mutable while the case runs (one per test item); frozen into a row at the end."""

    case: Case
    device_name: str | None = None
    model_type: str | None = None
    parameters: int | None = None
    measurement: Measurement = field(default_factory=Measurement)
    outputs: Any = None  #: the last outputs, for tests that want to look further

    def measured(self, **values: Any) -> None:
        self.measurement = dataclasses.replace(self.measurement, **values)

    def run(self, runner: Runner, batch_size: int = 1) -> Any:
        """One checked inference: inputs from the model's preprocessor, outputs checked."""
        try:
            inputs = runner.make_inputs(batch_size)
            start = time.perf_counter()
            outputs = runner.infer(inputs)
            self.measured(first_call_ms=(time.perf_counter() - start) * 1000.0, batch_size=batch_size)
            runner.check(inputs, outputs)
        except Exception as exc:
            failure = classify(exc)
            raise CaseFailedError(f"[{failure.name}] {self.case.id}: {failure.cause}") from exc
        self.outputs = outputs
        return outputs

    def to_row(self, nodeid: str, outcome: str, duration_s: float, error: BaseException | None,
               skip_reason: str | None, worker: str) -> ResultRow:
        entry = self.case.entry
        error_class = error_message = suggested_fix = None
        if error is not None:
            failure = classify(error)
            error_class, error_message, suggested_fix = failure.name, failure.cause, failure.suggested_fix
        elif skip_reason is not None:
            error_message = skip_reason
        return ResultRow(
            nodeid=nodeid, case_id=self.case.id, model_key=entry.key, model_id=entry.id, family=entry.family,
            task=entry.task, source=entry.source, model_type=self.model_type, architecture=entry.architecture,
            mode=self.case.mode, hardware=self.case.hardware, device_name=self.device_name,
            status={"passed": "pass", "failed": "fail", "skipped": "skip"}[outcome],
            error_class=error_class, error_message=error_message, suggested_fix=suggested_fix,
            duration_s=duration_s, worker=worker, parameters=self.parameters, measurement=self.measurement,
        )
