"""The provider page in a real browser: Debian's headless chromium, driven by
selenium, reads the page of examples/longjob served by a real gunicorn and a
real uvicorn. Needs the system packages chromium and chromium-driver; under
CI=true their absence fails, elsewhere the tests are skipped saying so."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from aptools.testing import FakeGlobusAuth

from .servers import Server

pytestmark = pytest.mark.e2e

MISSING = (
    "the browser test needs Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver) and selenium (the test extra)"
)


def _browser_parts() -> tuple[str, str]:
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is None or driver is None:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return chromium, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    chromium, driver_path = _browser_parts()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # tests run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-extensions",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    logs = {"performance": "ALL", "browser": "ALL"}
    options.set_capability("goog:loggingPrefs", logs)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(params=["gunicorn", "uvicorn"])
def longjob(
    request: pytest.FixtureRequest,
    auth: FakeGlobusAuth,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Server]:
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    store = f"sqlite:///{tmp_path / 'actions.db'}"
    with Server(request.param, "examples.longjob.app", "/longjob", auth, store) as s:
        yield s


def _luminance(rgb: tuple[float, ...]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fore: tuple[float, ...], back: tuple[float, ...]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""
    light, dark = sorted((_luminance(fore), _luminance(back)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


# Each element's colour and the first opaque background behind it.
_COLOURS = """
const parse = s => s.match(/[\\d.]+/g).map(Number);
return [...document.querySelectorAll(arguments[0])].map(el => {
  let back = el;
  while (back && parse(getComputedStyle(back).backgroundColor)[3] === 0) {
    back = back.parentElement;
  }
  const bg = back ? getComputedStyle(back).backgroundColor : 'rgb(255, 255, 255)';
  return [el.tagName + '.' + el.className, parse(getComputedStyle(el).color),
          parse(bg)];
});
"""


def test_the_page_in_a_browser(browser: Any, longjob: Server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    # Start from empty logs (a test before may have left a favicon request).
    browser.get("about:blank")
    browser.get_log("performance")
    browser.get_log("browser")
    browser.get(longjob.url + "/")
    assert browser.title == "Long job · Globus Action Provider"
    assert browser.execute_script("return document.documentElement.lang") == "en"

    # Headings: one h1, and no level skipped on the way down.
    levels = [
        int(h.tag_name[1]) for h in browser.find_elements(By.CSS_SELECTOR, "h1,h2,h3")
    ]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels))
    names = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h1,h2,h3")]
    assert names[:3] == ["Long job", "About this provider", "Input"]

    # The input table: column headers, one row header per property.
    columns = browser.find_elements(By.CSS_SELECTOR, "table thead th[scope=col]")
    assert [c.text for c in columns] == [
        "Property",
        "Type",
        "Required",
        "Description",
        "Constraints",
    ]
    rows = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    cells = [[c.text for c in r.find_elements(By.CSS_SELECTOR, "th,td")] for r in rows]
    assert [c[0] for c in cells] == ["steps", "step_seconds", "fail_at", "scope"]
    assert cells[0][1:4] == ["integer", "yes", "How many steps to work."]
    assert all(
        r.find_element(By.CSS_SELECTOR, "th").get_attribute("scope") == "row"
        for r in rows
    )
    assert browser.find_element(By.CSS_SELECTOR, "table caption").text

    # The Action state, as a person would copy it.
    flow = json.loads(browser.find_element(By.ID, "action-state").text)
    state = flow["States"][flow["StartAt"]]
    assert state["Type"] == "Action"
    assert state["ActionUrl"] == longjob.url
    assert state["Parameters"] == json.loads(
        browser.find_element(By.ID, "example-body").text
    )
    assert browser.find_element(By.ID, "action-url").text == longjob.url

    # The style applied under the page's CSP (its hash is in the header),
    # and the browser complained of nothing.
    h1 = browser.find_element(By.TAG_NAME, "h1")
    assert h1.value_of_css_property("color") in (
        "rgba(11, 61, 145, 1)",
        "rgb(11, 61, 145)",
    )
    complaints = [e for e in browser.get_log("browser") if e["level"] != "INFO"]
    assert complaints == []

    # Nothing was asked of any other server, nor anything beyond the page.
    requested = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert requested == [longjob.url + "/"]
    assert (
        browser.execute_script("return performance.getEntriesByType('resource').length")
        == 0
    )

    # Every text colour against its background: at least 7:1 (WCAG AAA).
    selectors = "body,h1,h2,h3,p,dt,dd,th,td,caption,code,pre,a,footer,.subtitle"
    measured = browser.execute_script(_COLOURS, selectors)
    assert len(measured) > 20
    for what, fore, back in measured:
        ratio = contrast(tuple(fore), tuple(back))
        assert ratio >= 7, f"{what}: {fore} on {back} is {ratio:.1f}:1"

    # Each section is labelled by its heading; every link has a name.
    labels = browser.execute_script(
        "return [...document.querySelectorAll('section')].map(s => {"
        "  const h = document.getElementById(s.getAttribute('aria-labelledby'));"
        "  return h ? h.tagName + ' ' + h.textContent : null; })"
    )
    assert labels == [
        "H2 About this provider",
        "H2 Input",
        "H2 In a flow",
        "H2 For programs",
    ]
    assert all(a.text.strip() for a in browser.find_elements(By.TAG_NAME, "a"))

    # Links say where they go.
    link = browser.find_element(By.ID, "openapi")
    assert link.text == "The OpenAPI document (openapi.json)"
    assert link.get_attribute("href") == longjob.url + "/openapi.json"

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, max(900, int(height) + 200))
    shot = tmp_path / f"provider-page-{longjob.kind}.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot of the provider page: {shot}")
    browser.set_window_size(1280, 900)

    # The link works in the browser too: JSON, not a page.
    link.click()
    assert '"openapi"' in browser.find_element(By.TAG_NAME, "body").text


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_without_a_browser(ci: str, outcome: str, tmp_path: Path) -> None:
    """No chromium on the PATH: a failure under CI=true, else a skip saying
    what to install."""
    env = {**os.environ, "PATH": str(tmp_path), "CI": ci}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            f"{Path(__file__).name}::test_the_page_in_a_browser",
            "-k",
            "uvicorn",
        ],
        cwd=Path(__file__).parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert outcome in done.stdout, done.stdout[-2000:]
    assert "apt-get install chromium chromium-driver" in done.stdout
