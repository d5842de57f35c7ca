"""The one exception hierarchy of pytest-hfmodels.

Every error names what it is about (a file, a field, a model, an option) in its message, so a
user can act on one line. All errors pickle with their arguments intact, because pytest-xdist
sends them from workers to the controller.
"""

from __future__ import annotations

from typing import Any


class HFModelsError(Exception):
    """Base of every error this package raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors would lose their fields through the default pickling.
        return (_rebuild, (type(self), self.__dict__, self.args))


def _rebuild(cls: type[HFModelsError], state: dict[str, Any], args: tuple[Any, ...]) -> HFModelsError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class RegistryError(HFModelsError):
    """A registry file is unreadable or invalid; the message names file, model key and field."""

    def __init__(
        self, path: str, message: str, *, model: str | None = None, field: str | None = None
    ) -> None:
        where = path
        if model is not None:
            where += f": model {model!r}"
        if field is not None:
            where += f": field {field!r}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.model = model
        self.field = field


class OptionError(HFModelsError):
    """A command-line option or ini value is invalid; the message names the option."""


class SelectionError(HFModelsError):
    """A family, model or set asked for does not exist in the loaded registries."""


class ModelSourceError(HFModelsError):
    """A model's files could not be produced (tiny build, package, local directory)."""


class ModelUnavailableError(HFModelsError):
    """A model's files cannot be had here (offline and not cached): the case is skipped."""


class HardwareUnavailableError(HFModelsError):
    """A requested device is not present on this machine: the case is skipped."""


class DependencyMissingError(HFModelsError):
    """A Python package a mode or model needs is not installed: the case is skipped."""

    def __init__(self, package: str, needed_for: str) -> None:
        super().__init__(f"{needed_for} needs the Python package {package!r}, which is not installed")
        self.package = package
        self.needed_for = needed_for


class DependencyImportError(DependencyMissingError):
    """A Python package a mode or model needs does not import here: absent, or installed and failing
    (a torchvision built for another torch: "operator torchvision::nms does not exist"). Skipped as a
    missing package is, the message naming the import error rather than saying it is not installed."""

    def __init__(self, package: str, needed_for: str, error: str) -> None:
        # Not the base's __init__: its message says the package is not installed.
        Exception.__init__(
            self, f"{needed_for} needs the Python package {package!r}, which does not import: {error}"
        )
        self.package = package
        self.needed_for = needed_for
        self.error = error


class CaseFailedError(HFModelsError):
    """A generated case failed; the message starts with its failure class, the real cause is chained."""


class CheckFailed(HFModelsError):
    """A model's output broke a behavioural check (shape, range, order, determinism)."""


class NumericalMismatchError(CheckFailed):
    """Two runtimes disagreed beyond the family's tolerance."""


# Names the original verification tools exported; users catch these.
class ModelVerificationError(HFModelsError):
    """A model file could not be verified on the Hub or converted."""


class ModelConversionError(ModelVerificationError):
    """Conversion to another format (ONNX, Parquet) failed or did not validate."""


class ModelFileNotFoundError(ModelVerificationError):
    """The repo, revision or file does not exist on the Hub."""


class ModelConnectionError(ModelVerificationError):
    """The Hub could not be reached within the retry budget."""


class CacheError(HFModelsError):
    """A cache root or entry is not this tool's to use or change; the message names the folder."""


class ResultsError(HFModelsError):
    """The results database could not be opened, migrated or written."""


class ModelAccessError(ModelVerificationError):
    """The Hub refused access (gated repo, missing or insufficient token: HTTP 401/403)."""


class ModelNotCachedError(ModelUnavailableError, ModelFileNotFoundError):
    """Offline and not in the local Hugging Face cache: a skip for the plugin, not-found for the verifier."""


class WeightsFileError(ModelConversionError):
    """A Parquet weights file is unreadable, corrupt, or names a dtype or tensor it cannot supply."""


class GenerationUnsupportedError(HFModelsError):
    """A model cannot be run as a generation loop with past key/values (its architecture has no with-past
    export here: a vision-language model, an encoder-decoder family without one, a cache of another
    kind); the message names the model_type and why. Generation cases of it are skipped."""
