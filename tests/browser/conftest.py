"""Browser tests: Debian's Chromium driven by Playwright (its Python package; no browser download).

* ``chromium`` (session): one headless Chromium, ``/usr/bin/chromium`` (``IPLEDGER_CHROMIUM`` overrides).
  Missing Chromium or Playwright is a test FAILURE with instructions, never a skip; ``scripts/test``
  installs Debian's ``chromium`` when it is missing. Without Fabric they fail too (tests/conftest.py;
  these tests are also marked ``fabric``): none is ever skipped.
* ``artefacts`` (session): where screenshots go — ``$IPLEDGER_TEST_ARTIFACTS/browser`` or
  ``<repo>/test-artifacts/browser``; the path is printed at the end of the run.
* ``Console``: every console error and uncaught page error of a page (a CSP violation is one).

The real network: pytest shows a conftest's fixtures only to the tests below its directory, so the
session fixtures of tests/integration/conftest.py are not visible here (and a pytest_plugins line for them
in tests/conftest.py would register that conftest twice). This package runs the same fixture functions
with *package* scope instead: its own network, up for tests/browser and down when they are done — in a
whole-suite run the browser network is gone before tests/integration brings up its own.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.integration import conftest as integration

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("IPLEDGER_CHROMIUM", "/usr/bin/chromium")
# The flags, plus no QUIC and no sync: without them Chromium keeps dialling Google's services
# (refused connections on a closed network). Playwright adds a fresh --user-data-dir itself.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
NAV_TIMEOUT_MS = 30_000

SAVED: list[Path] = []  # screenshots of this run, listed in the terminal summary

fabric_network = pytest.fixture(scope="package", name="fabric_network")(integration.fabric_network.__wrapped__)
ipledger_chaincode = pytest.fixture(scope="package", name="ipledger_chaincode")(
    integration.ipledger_chaincode.__wrapped__)


def artefact_dir() -> Path:
    base = os.environ.get("IPLEDGER_TEST_ARTIFACTS")
    return (Path(base) if base else REPO / "test-artifacts") / "browser"


def processes_with(marker: str) -> list[int]:
    """PIDs whose command line contains ``marker`` (this run's Chromium processes)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="package")
def chromium():
    """A headless Debian Chromium under Playwright; every Chromium process of it is gone afterwards.

    Package scope, not session: while Playwright's sync API is started it keeps an asyncio event loop
    running in the main thread, and every later test calling asyncio.run() (the shim tests) would fail."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium "
                    f"('apt-get install chromium' — scripts/test installs it when missing), or set "
                    f"IPLEDGER_CHROMIUM to a Chromium binary. Playwright's own browser download is not used.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"the Python package 'playwright' is missing ({exc}): .venv/bin/pip install -e '.[test]'")
    # A switch Chromium ignores, to find this run's processes afterwards.
    marker = f"--ipledger-browser-test={uuid.uuid4().hex}"
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, marker],
                                     timeout=60_000)
    except Exception:
        pw.stop()
        raise
    try:
        yield browser
    finally:
        browser.close()
        pw.stop()
        deadline = time.monotonic() + 15
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_with(marker)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"Chromium processes left running after close: {left}"


@pytest.fixture(scope="session")
def artefacts() -> Path:
    path = artefact_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SAVED.append(path)
    return path


class Console:
    """Console errors and uncaught exceptions of one page (CSP violations are console errors)."""

    def __init__(self, page):
        self.errors: list[dict] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append({"text": f"uncaught: {exc}", "url": page.url}))

    def _console(self, message):
        if message.type == "error":
            self.errors.append({"text": message.text, "url": message.location.get("url", "")})

    def unexpected(self, allowed=()) -> list[dict]:
        """Errors other than the ones about URLs starting with one of ``allowed`` (requests the test
        expects to fail, e.g. a 404 page)."""
        return [e for e in self.errors if not any(e["url"].startswith(prefix) for prefix in allowed)]


FAILED_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[FAILED_KEY] = report.failed
    return report


@pytest.fixture
def browser_context(chromium, artefacts, request):
    """A fresh browser context (own cookies). A failed test leaves a screenshot of each of its pages."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB",
                                   timezone_id="UTC")
    context.set_default_timeout(NAV_TIMEOUT_MS)
    yield context
    if request.node.stash.get(FAILED_KEY, False):
        for i, page in enumerate(context.pages):
            try:
                screenshot(page, artefacts, f"FAILED-{request.node.name}-{i}")
            except Exception:  # noqa: BLE001 - best effort, the failure itself is reported
                pass
    context.close()


def pytest_terminal_summary(terminalreporter):
    if SAVED:
        terminalreporter.write_sep("-", f"browser screenshots ({len(SAVED)}) in {SAVED[0].parent}")
        for path in SAVED:
            terminalreporter.write_line(str(path))
