"""What the plugin does for pytest-xdist: decide on the controller, tell the workers.

Hardware is detected once, on the controller, and sent to each worker in `workerinput`
(pytest-randomly's `XdistHooks` shape), so workers never start a probe of their own; so is the
path of the session's Hub outage record, so a Hub found dead by one worker is dead for all.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from pytest_hfmodels.cases.settings import build_settings
from pytest_hfmodels.errors import OptionError
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.plugin.session import WORKERINPUT_HARDWARE, WORKERINPUT_HUB_OUTAGE, plugin_session


class LoadGroupDefault:
    """`pytest -n N` on the generated suite distributes with `--dist loadgroup` unless told otherwise.

    Cases carry `xdist_group(<model key>)` marks; under loadgroup a worker gets all of a model's
    cases, so each model is loaded by one worker instead of by every worker. A wrapper, because
    xdist's own pytest_cmdline_main turns an unset --dist into "load" and must see ours first.
    """

    @pytest.hookimpl(wrapper=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> Generator[None, Any, Any]:
        option = config.option
        distributing = getattr(option, "numprocesses", None) and not getattr(option, "distload", False)
        if distributing and getattr(option, "dist", None) == "no" and _suite_requested(config):
            option.dist = "loadgroup"
        return (yield)


def _suite_requested(config: pytest.Config) -> bool:
    try:
        return build_settings(config.getoption, config.getini, config.rootpath, MODES).suite_requested
    except OptionError:
        return False  # pytest_configure reports it as a usage error


class XdistHooks:
    """Registered only when pytest-xdist is installed (its hook would be unknown otherwise)."""

    def pytest_configure_node(self, node: Any) -> None:
        session = plugin_session(node.config)
        node.workerinput[WORKERINPUT_HARDWARE] = session.hardware.to_dicts()
        node.workerinput[WORKERINPUT_HUB_OUTAGE] = str(session.hub_outage.path)
