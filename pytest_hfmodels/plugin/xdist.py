"""What the plugin does for pytest-xdist: decide on the controller, tell the workers.

One model, one worker: when the plugin's run is distributed without a `--dist` of the user's, the
controller schedules with `ModelScheduling`, which hands every case of a model to the same worker
as one work unit, so each model is built, loaded and converted by one process instead of by every
worker. The cases' `xdist_group` marks cannot do that on their own: `--dist loadgroup` reads the
group from a suffix xdist's workers append to each node id, which pytest 9.2 no longer passes on
(pytest-xdist issue #1386), and then every worker loads every model. This scheduler needs only the
node ids, whatever pytest's version: the controller knows each case id's model.

Hardware is detected once, on the controller, and sent to each worker in `workerinput`
(pytest-randomly's `XdistHooks` shape), so workers never start a probe of their own; so is the
path of the session's Hub outage record, so a Hub found dead by one worker is dead for all. Only
when the run asked for the plugin (`activation`): otherwise the controller does nothing, and a
worker whose tests request `hf_*` fixtures detects on its own when they first need it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from functools import cache
from typing import Any

import pytest

from pytest_hfmodels.plugin.activation import plugin_asked
from pytest_hfmodels.plugin.session import (
    WORKERINPUT_HARDWARE,
    WORKERINPUT_HUB_OUTAGE,
    plugin_session,
)

#: the user left --dist unset on a distributed run (xdist turns that into "load" before we can look)
DIST_DEFAULT_KEY = pytest.StashKey[bool]()


class DistDefault:
    """Notes whether `-n N` came without `--dist`, before xdist's own pytest_cmdline_main sets it.

    A wrapper, because xdist turns an unset --dist into "load" there; registered at
    pytest_addoption, before any pytest_cmdline_main runs. It reads two attributes, nothing more.
    """

    @pytest.hookimpl(wrapper=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> Generator[None, Any, Any]:
        option = config.option
        distributing = getattr(option, "numprocesses", None) and not getattr(option, "distload", False)
        config.stash[DIST_DEFAULT_KEY] = bool(distributing) and getattr(option, "dist", None) == "no"
        return (yield)


class XdistHooks:
    """Registered only when pytest-xdist is installed (its hooks would be unknown otherwise)."""

    def pytest_configure_node(self, node: Any) -> None:
        if not plugin_asked(node.config):
            return
        session = plugin_session(node.config)
        node.workerinput[WORKERINPUT_HARDWARE] = session.hardware.to_dicts()
        node.workerinput[WORKERINPUT_HUB_OUTAGE] = str(session.hub_outage.path)

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """`ModelScheduling` for the plugin's runs without a --dist of the user's; else xdist decides."""
        if not (config.stash.get(DIST_DEFAULT_KEY, False) and plugin_asked(config)):
            return None
        return model_scheduling_class()(config, log, lambda: case_models(config))


def case_models(config: pytest.Config) -> CaseModels:
    """The run's cases by id, as the controller expands them (and every worker does, identically).

    None found when they cannot be expanded: the workers report why as they collect, and every
    test is then a work unit of its own.
    """
    from pytest_hfmodels.errors import HFModelsError

    try:
        cases = plugin_session(config).cases
    except (HFModelsError, pytest.UsageError):
        return CaseModels({})
    return CaseModels.of((case.id, case.entry.key) for case in cases)


class CaseModels:
    """Which model a node id's case belongs to, from its parameter id."""

    def __init__(self, models: Mapping[str, str]) -> None:
        self.models = models
        #: dashes inside a case id, most first: the spans of a longer parameter id worth trying
        self.dashes = sorted({case_id.count("-") for case_id in models}, reverse=True)

    @classmethod
    def of(cls, cases: Iterable[tuple[str, str]]) -> CaseModels:
        """From (case id, model key) pairs. A test that needs less than a whole case is given one
        case per model x mode x device, or per model, whose id is the start of its cases' ids
        (`bert-tiny-pipeline-cpu`, `bert-tiny`): every such start counts as well."""
        models: dict[str, str] = {}
        for case_id, key in cases:
            models[case_id] = key
            end = len(key)
            while end > 0:  # the case id's dash-delimited starts, the model key the shortest
                models.setdefault(case_id[:end], key)
                end = case_id.find("-", end + 1)
        return cls(models)

    def model_of(self, nodeid: str) -> str | None:
        """`path::test_model[bert-tiny-pipeline-cpu]` is a generated case. A team's test
        parametrized further has its ids joined with dashes (`test_x[bert-tiny-pipeline-cpu-fast]`),
        so when the whole parameter id is no case id, its dash-delimited spans are tried."""
        name = nodeid[nodeid.rfind("::") + 2 :]
        start = name.find("[")
        if start < 0 or not name.endswith("]"):
            return None
        params = name[start + 1 : -1]
        if params in self.models:
            return self.models[params]
        parts = params.split("-")
        for first in range(len(parts)):
            for dashes in self.dashes:
                if first + dashes < len(parts):
                    span = "-".join(parts[first : first + dashes + 1])
                    if span in self.models:
                        return self.models[span]
        return None


@cache
def model_scheduling_class() -> type[Any]:
    """The scheduler class, made on first use: xdist's scheduler modules (and execnet) load only for
    a distributed run, and not at all where xdist is not installed."""
    from xdist.scheduler import LoadScopeScheduling

    class ModelScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """xdist's LoadScopeScheduling with one scope per model: a model's cases are one work unit,
        so one worker runs them all; any other test is a unit of its own, as under --dist load."""

        def __init__(self, config: pytest.Config, log: Any, models: Callable[[], CaseModels]) -> None:
            super().__init__(config, log)
            self._expand = models
            self._models: CaseModels | None = None
            self._scopes: dict[str, str] = {}

        def _split_scope(self, nodeid: str) -> str:
            # Called for every test as work is cut, and again as each one completes: memoized.
            scope = self._scopes.get(nodeid)
            if scope is None:
                if self._models is None:  # expanded when the first test is placed, not before
                    self._models = self._expand()
                key = self._models.model_of(nodeid)
                # A test's node id holds "::", a model's scope does not: they never collide.
                scope = self._scopes[nodeid] = nodeid if key is None else f"hfmodels model {key}"
            return scope

    return ModelScheduling
