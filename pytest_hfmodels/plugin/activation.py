"""What loading the plugin costs a run that does not use it: next to nothing.

Installed, the plugin loads into every pytest run of the environment, most of which never touch a
model. Two things keep those runs cheap.

Its fixtures are declared without importing them (`lazy_fixtures`): `fixtures` imports the runner
pool, the model sources and case records, which would cost every run more than the rest of the
plugin together; a declared fixture imports its implementation when it first runs.

And the plugin does its work (hardware detection, case expansion, scheduling by model under
xdist) only when the run asks for it (`plugin_asked`): a `--hf-*` option given on the command line
(or through `PYTEST_ADDOPTS`, `addopts`), or an `hf_*` ini key set to something else than its
default. A test requesting an `hf_*` fixture asks too, later and on its own: the fixtures make
the session when they first run (`session.plugin_session`). The recorder waits for a first row
(`RowWatcher`).

The answer costs a few `getoption` / `getini` look-ups: the names and defaults are those
`options.add_options` declares, recorded while it declares them, so an option added there counts
without being listed here.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
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


def lazy_fixtures(module: str, source: Path) -> dict[str, Any]:
    """Stand-ins for the fixtures of `module`, read from its `source` without importing it.

    pytest learns a fixture's name, scope and arguments when the plugin registers, and calls it
    only when a test uses it. So each stand-in carries what the real fixture's decorator and
    signature say, and imports `module` to call the real function when it first runs (`request`
    included, so `param` and the node are the real ones). Read from the source, a changed fixture
    needs no second declaration here; tests/plugin/test_light_import.py holds the stand-ins to the
    real fixtures. Without the source (a bytecode-only install), or with a decorator argument that
    is not a literal, the module is imported now and its fixtures are the real ones.
    """
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        found = {}
        for node in tree.body:
            options = _fixture_options(node) if isinstance(node, ast.FunctionDef) else None
            if isinstance(node, ast.FunctionDef) and options is not None:
                found[options.get("name", node.name)] = _stand_in(module, node, options)
        return found
    except (OSError, SyntaxError, ValueError):
        real = importlib.import_module(module)
        return {name: getattr(real, name) for name in dir(real) if name.startswith("hf_")}


def _fixture_options(function: ast.FunctionDef) -> dict[str, Any] | None:
    """The keyword arguments of a `@pytest.fixture` / `@pytest.fixture(...)` decorator; None without one."""
    for decorator in function.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call is not None else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        if name == "fixture":
            keywords = call.keywords if call is not None else []
            return {k.arg: ast.literal_eval(k.value) for k in keywords if k.arg is not None}
    return None


def _yields(function: ast.FunctionDef) -> bool:
    """A generator function (a yield fixture): a yield in its body, not in a function nested there."""
    nodes: list[ast.AST] = list(function.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.Yield | ast.YieldFrom):
            return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            nodes.extend(ast.iter_child_nodes(node))
    return False


def _stand_in(module: str, function: ast.FunctionDef, options: dict[str, Any]) -> Any:
    def real() -> Any:  # the function under pytest's fixture decorator
        return getattr(importlib.import_module(module), function.name).__wrapped__

    def fixture(**values: Any) -> Any:
        return real()(**values)

    def generator_fixture(**values: Any) -> Any:
        yield from real()(**values)

    stand_in = generator_fixture if _yields(function) else fixture
    stand_in.__name__ = stand_in.__qualname__ = function.name
    stand_in.__doc__ = ast.get_docstring(function) or f"{module}.{function.name}"
    # pytest's own rule for the arguments a fixture asks for: those without a default value
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    asked = positional[: len(positional) - len(args.defaults)]
    asked += [arg for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True) if default is None]
    parameters = [inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY) for arg in asked]
    setattr(stand_in, "__signature__", inspect.Signature(parameters))  # noqa: B010 (read by pytest)
    return pytest.fixture(stand_in, **options)


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
