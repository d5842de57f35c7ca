"""Retries around Hub calls: the policy, the classification of failures, and the bounded loop.

huggingface_hub retries some calls itself with delays we cannot configure (1 s doubling to 8 s) and
none at all for `file_exists`/`model_info`, and lets transport failures out as raw httpx2 exceptions.
So every Hub call of `client` is made with the library's retries off and goes through `with_retries`,
which owns the schedule, the total time bound, and the mapping to our exceptions.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import TypeVar

import httpx2
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from pytest_hfmodels.errors import (
    ModelAccessError,
    ModelConnectionError,
    ModelFileNotFoundError,
    ModelVerificationError,
    OptionError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses worth another try: timeout, rate limit, server errors
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: each field also reads from ``HFMODELS_RETRY_<FIELD>`` (see `from_env`)."""

    #: retries after the first attempt
    max_retries: int = 4
    #: seconds before the first retry; doubles each retry
    base_delay: float = 1.0
    #: cap on one backoff delay (a server's Retry-After may ask for more, within total_timeout)
    max_delay: float = 16.0
    #: seconds for all attempts and waits of one operation together
    total_timeout: float = 120.0
    #: seconds one request may take
    request_timeout: float = 10.0
    #: fraction of each backoff delay drawn at random, so parallel clients do not retry in step
    jitter: float = 0.25

    def __post_init__(self) -> None:
        for spec in fields(self):
            if getattr(self, spec.name) < 0:
                raise OptionError(f"retry policy: {spec.name} must be >= 0, got {getattr(self, spec.name)!r}")
        if self.jitter > 1:
            raise OptionError(f"retry policy: jitter must be between 0 and 1, got {self.jitter!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: float | None) -> RetryPolicy:
        """Defaults, then ``HFMODELS_RETRY_*`` variables, then the non-None ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for spec in fields(cls):
            variable = f"HFMODELS_RETRY_{spec.name.upper()}"
            raw = environ.get(variable)
            if raw is None or not raw.strip():
                continue
            try:
                values[spec.name] = int(raw) if spec.name == "max_retries" else float(raw)
            except ValueError:
                raise OptionError(f"{variable}={raw!r} is not a number") from None
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)  # type: ignore[arg-type]

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The delay before retry number ``retry`` (1-based), jittered downwards only."""
        delay = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return delay * (1 - self.jitter * rng.random())


class FailureKind(Enum):
    TRANSIENT = "transient"
    REPO_MISSING = "repo"
    REVISION_MISSING = "revision"
    FILE_MISSING = "file"
    ACCESS = "access"
    OTHER = "other"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    #: one line naming the exception and, for HTTP errors, the status
    cause: str
    retry_after: float | None = None


def classify(error: BaseException) -> Failure:
    """What a huggingface_hub or httpx2 exception means for us."""
    if isinstance(error, LocalEntryNotFoundError) and error.__cause__ is not None:
        # hf_hub_download/snapshot_download wrap the real failure of their metadata call.
        return classify(error.__cause__)
    cause = _one_line(error)
    if isinstance(error, GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
        return Failure(FailureKind.ACCESS, cause)
    if isinstance(error, RepositoryNotFoundError):
        return Failure(FailureKind.REPO_MISSING, cause)
    if isinstance(error, RevisionNotFoundError):
        return Failure(FailureKind.REVISION_MISSING, cause)
    if isinstance(error, RemoteEntryNotFoundError):
        return Failure(FailureKind.FILE_MISSING, cause)
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code
        if status in (401, 403):
            return Failure(FailureKind.ACCESS, cause)
        if status in RETRYABLE_STATUSES:
            retry_after = _retry_after(error.response.headers.get("Retry-After"))
            return Failure(FailureKind.TRANSIENT, cause, retry_after)
        return Failure(FailureKind.OTHER, cause)
    if isinstance(error, httpx2.TransportError):  # connect, read, timeouts, dropped connections
        return Failure(FailureKind.TRANSIENT, cause)
    return Failure(FailureKind.OTHER, cause)


def _one_line(error: BaseException) -> str:
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    if isinstance(error, HfHubHTTPError) and not text.startswith(str(error.response.status_code)):
        text = f"HTTP {error.response.status_code}: {text}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _retry_after(value: str | None) -> float | None:
    # Only the delay-seconds form: the HTTP-date form is not sent by the Hub.
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


@dataclass(frozen=True)
class HubTarget:
    """What an operation is about, for messages: never holds a token."""

    endpoint: str
    repo_id: str
    revision: str | None = None
    filename: str | None = None

    def describe(self) -> str:
        parts = [f"repo {self.repo_id!r}", f"revision {self.revision or 'main'!r}"]
        if self.filename is not None:
            parts.append(f"file {self.filename!r}")
        return ", ".join(parts)


def error_for(failure: Failure, target: HubTarget) -> ModelVerificationError:
    """Our exception for a failure that retrying will not fix."""
    repo, revision, where = target.repo_id, target.revision or "main", f"on {target.endpoint}"
    context = f"[{target.describe()}; cause: {failure.cause}]"
    if failure.kind is FailureKind.REPO_MISSING:
        hint = "(or it is private and the token gives no access)"
        return ModelFileNotFoundError(f"repository {repo!r} not found {where} {hint} {context}")
    if failure.kind is FailureKind.REVISION_MISSING:
        return ModelFileNotFoundError(f"revision {revision!r} not found in repo {repo!r} {where} {context}")
    if failure.kind is FailureKind.FILE_MISSING:
        return ModelFileNotFoundError(
            f"file {target.filename!r} not found in repo {repo!r} at revision {revision!r} {where} {context}"
        )
    if failure.kind is FailureKind.ACCESS:
        return ModelAccessError(
            f"access denied {where}: the repo is gated or private and the token (argument or HF_TOKEN) "
            f"is missing or lacks access {context}"
        )
    return ModelVerificationError(f"Hub request failed {where} {context}")


def with_retries(
    operation: Callable[[float], T],
    policy: RetryPolicy,
    target: HubTarget,
    *,
    answer: Callable[[Failure], T | None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``operation(request_timeout)`` until it succeeds, fails for good, or the budget is spent.

    ``answer`` may turn a final failure into a result (a missing file is an answer to "does it exist?").
    """
    deadline = clock() + policy.total_timeout
    rng = random.Random()
    attempt = 0
    while True:
        attempt += 1
        # A request never runs past the total bound, however long the per-request timeout.
        timeout = max(0.001, min(policy.request_timeout, deadline - clock()))
        try:
            return operation(timeout)
        except Exception as error:
            failure = classify(error)
            if failure.kind is not FailureKind.TRANSIENT:
                result = answer(failure) if answer is not None else None
                if result is not None:
                    return result
                raise error_for(failure, target) from error
            delay = max(policy.backoff(attempt, rng), failure.retry_after or 0.0)
            remaining = deadline - clock()
            if attempt > policy.max_retries or delay >= remaining:
                exhausted = attempt > policy.max_retries
                why = "retries exhausted" if exhausted else "total timeout would be exceeded"
                raise ModelConnectionError(
                    f"could not reach the Hub at {target.endpoint} for {target.describe()}: {why} after "
                    f"{attempt} attempt{'s' if attempt > 1 else ''} (max_retries={policy.max_retries}, "
                    f"total_timeout={policy.total_timeout:g}s); last cause: {failure.cause}"
                ) from error
            logger.warning(
                "Hub request for %s failed (%s); retry %d/%d in %.2fs",
                target.describe(),
                failure.cause,
                attempt,
                policy.max_retries,
                delay,
            )
            sleep(delay)
