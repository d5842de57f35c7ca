"""The HTML report in a real browser: headless Chromium driven by Selenium sorts the performance table,
filters it by mode and opens a trend; the page makes no network request and logs no console error.

Debian's `chromium` and `chromium-driver` packages provide the browser and its driver (`.ci/run`
installs them). Where they are missing the test skips naming them, except under
HFMODELS_REQUIRE_BROWSER=1 (CI), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_hfmodels.report.write import write_report
from tests.report import runs

History = tuple[Path, list[int]]
REQUIRED = os.environ.get("HFMODELS_REQUIRE_BROWSER", "") not in ("", "0")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _missing(what: str) -> None:
    message = f"{what}; install with: apt-get install chromium chromium-driver && pip install selenium"
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    chromedriver = shutil.which("chromedriver")
    if browser is None or chromedriver is None:
        _missing(f"no {'Chromium' if browser is None else 'chromedriver'} on PATH")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(argument)
    # Console messages, and the DevTools network events that show every request the page makes.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # An explicit driver path: Selenium Manager would otherwise look for one on the network.
    chrome = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def _column(driver: Any, name: str) -> list[str]:
    from selenium.webdriver.common.by import By

    headers = [th.text.rstrip(" ▲▼") for th in driver.find_elements(By.CSS_SELECTOR, "#perf-table thead th")]
    index = headers.index(name) + 1
    cells = driver.find_elements(By.CSS_SELECTOR, f"#perf-table tbody tr td:nth-child({index})")
    return [cell.text for cell in cells]


def _requests(driver: Any) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_the_page_sorts_filters_and_opens_a_trend_offline(
    driver: Any, history_db: History, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    db, ids = history_db
    (page,) = (p for p in write_report(db, tmp_path / "report", fmt="html") if p.suffix == ".html")
    driver.get(page.as_uri())
    # Two models x (2 pipeline + 4 from_pretrained + 4 onnxruntime) forward cases, 4 generate cases.
    totals = driver.find_element(By.CSS_SELECTOR, "#summary .totals").text
    assert totals.startswith("24 cases 20 passed 4 failed")
    regressions = driver.find_element(By.ID, "regressions").text
    assert "bert onnxruntime/cpu b1 s16" in regressions

    # Sort by p50: ascending, then descending on a second click.
    header = next(th for th in driver.find_elements(By.CSS_SELECTOR, "#perf-table th") if th.text == "p50 ms")
    header.click()
    ascending = [float(value) for value in _column(driver, "p50 ms")]
    assert ascending == sorted(ascending) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    descending = [float(value) for value in _column(driver, "p50 ms")]
    assert descending == sorted(ascending, reverse=True)
    slowed = driver.find_element(By.CSS_SELECTOR, "#perf-table tbody tr")  # the slowed case is the slowest
    assert slowed.text.startswith("bert") and "onnxruntime" in slowed.text

    # Filter by mode: every row left is of that mode, and the count says how many.
    Select(driver.find_element(By.CSS_SELECTOR, 'select[data-column="mode"]')).select_by_value("onnxruntime")
    modes = _column(driver, "mode")
    assert modes and set(modes) == {"onnxruntime"}
    assert driver.find_element(By.ID, "perf-count").text.startswith(f"{len(modes)} of {len(modes)} rows")

    # Open the slowed case's trend from its row: the chart shows, its regression ringed.
    driver.find_element(By.CSS_SELECTOR, "#perf-table tbody tr button.trend").click()
    trend = driver.find_element(By.CSS_SELECTOR, "details.trend[open]")
    assert trend.find_element(By.TAG_NAME, "summary").text.startswith(
        "bert onnxruntime/cpu b1 s16 — regressed"
    )
    chart = trend.find_element(By.TAG_NAME, "svg")
    assert chart.is_displayed() and chart.size["height"] > 100
    assert trend.find_elements(By.CSS_SELECTOR, "circle.step")
    assert f"regression started in run {ids[2]}" in trend.find_element(By.TAG_NAME, "summary").text

    # The whole page (the trend open, the table filtered and sorted) in one picture.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(height, 10_000))
    driver.execute_script("window.scrollTo(0, 0)")
    assert driver.save_screenshot(str(tmp_path / "report.png"))

    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    # The page itself is the one request: everything else is inline or a data: URI.
    assert set(_requests(driver)) <= {page.as_uri()}
    assert runs.SLOWED[0] in driver.page_source  # the model id, on hover of its short name
