"""What loading the plugin costs a run that does not use it: next to nothing.

Installed, the plugin loads into every pytest run of the environment, most of which never touch a
model. The modules such a run loads import only constants and each other (the fixtures import
the runner pool, the model sources and case records when they first run) and load from the
bytecode pip compiled (`pytest_hfmodels._leave_pytests_rewriting`). The plugin does its work
(hardware detection, case expansion, scheduling by model under xdist) only when the run asks for
it (`plugin_asked`): a `--hf-*` option given on the command line (or through `PYTEST_ADDOPTS`,
`addopts`), or an `hf_*` ini key set to something else than its default. A test requesting an
`hf_*` fixture asks too, later and on its own: the fixtures make the session when they first run
(`session.plugin_session`). The recorder waits for a first row (`RowWatcher`).

The answer costs a few `getoption` / `getini` look-ups: the names and defaults are those
`options.add_options` declares, recorded while it declares them, so an option added there counts
without being listed here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hfmodels.plugin.options import add_options

if TYPE_CHECKING:
    from pytest_hfmodels.plugin.recorder import ResultRecorder

#: the option group `options.add_options` declares into
OPTION_GROUP = "hfmodels"


# What `add_options` declared: option dests and ini names, each with its default. The same in every
# pytest run of the process (pytester runs several in one): what the code declares, not run state.
_OPTION_DEFAULTS: dict[str, Any] = {}
_INI_DEFAULTS: dict[str, Any] = {}
ASKED_KEY = pytest.StashKey[bool]()


def declare_options(parser: pytest.Parser) -> None:
    """`options.add_options`, remembering every ini name and default it declares on the way."""
    with _recording_ini(parser, _INI_DEFAULTS):
        add_options(parser)
    for option in parser.getgroup(OPTION_GROUP).options:
        # pytest 8 leaves `default` unset on an option declared without one; 9 reads argparse's
        _OPTION_DEFAULTS[option.dest] = getattr(option, "default", None)


@contextmanager
def _recording_ini(parser: pytest.Parser, into: dict[str, Any]) -> Iterator[None]:
    # pytest offers no public read-back of an ini key's default, so it is taken as it is declared.
    declare: Callable[..., None] = parser.addini

    def recording(name: str, help: str, *args: Any, **kwargs: Any) -> None:
        into[name] = kwargs.get("default", args[1] if len(args) > 1 else None)
        declare(name, help, *args, **kwargs)

    setattr(parser, "addini", recording)  # noqa: B010 (an instance attribute, removed below)
    try:
        yield
    finally:
        delattr(parser, "addini")


def plugin_asked(config: pytest.Config) -> bool:
    """A `--hf-*` option was given or an `hf_*` ini key set: the run is the plugin's."""
    asked = config.stash.get(ASKED_KEY, None)
    if asked is None:
        asked = config.stash[ASKED_KEY] = _option_given(config) or _ini_set(config)
    return asked


def _option_given(config: pytest.Config) -> bool:
    for dest, default in _OPTION_DEFAULTS.items():
        value = config.getoption(dest, None)
        if value is not None and value is not False and value != default:
            return True
    return False


def _ini_set(config: pytest.Config) -> bool:
    unset: tuple[object, ...] = (None, "", [])
    return any(config.getini(name) not in (default, *unset) for name, default in _INI_DEFAULTS.items())


class RowWatcher:
    """Registered on the controller of every run; registers the recorder when the first row arrives.

    A row is the one sure sign of the plugin's work, wherever it ran (a worker's reaches the
    controller in its report). Most runs never make one: they get no recorder, read no settings
    and import neither the recorder nor the database modules.
    """

    RECORDER_NAME = "hfmodels-recorder"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started_at = datetime.now(timezone.utc)  #: the session's start, once it starts
        self.recorder: ResultRecorder | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started_at = datetime.now(timezone.utc)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.recorder is not None or not report.user_properties:
            return
        from pytest_hfmodels.plugin.recorder import ResultRecorder, is_row

        if any(is_row(entry) for entry in report.user_properties):
            self.recorder = ResultRecorder(self.config, self.started_at)
            # Registered now for the reports to come and the session's end; this report, whose
            # hook call is under way already, it gets from here.
            self.config.pluginmanager.register(self.recorder, self.RECORDER_NAME)
            self.recorder.pytest_runtest_logreport(report)
