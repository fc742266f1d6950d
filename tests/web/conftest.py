"""Browser fixtures for the web console: a real headless Chromium (Debian's ``chromium`` package,
driven by Playwright through ``executable_path``; no browser is downloaded), the console started as
`cutover console` on a free port against a test's own cluster (real Redis, real worker processes,
SQLite or PostgreSQL), operators added with `cutover operator add`, and a browser session that
keeps every response body it sees (to look for card numbers) and saves a screenshot of each screen.

Screenshots go to ``tests/web/artifacts/<test>/`` (git-ignored); the path is printed. Without
``/usr/bin/chromium`` the browser tests skip with the reason, except in CI, where they fail."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRED, Cluster
from tests.redis_server import free_port

CHROMIUM = Path(os.environ.get("CUTOVER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if REQUIRED:
            pytest.fail(f"{message} — required in CI", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class ConsoleProcess:
    """`cutover console` of an installation (its home and settings), on a free port of 127.0.0.1."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"console-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ConsoleProcess:
        log = open(self.log, "ab")  # noqa: SIM115 - the console writes to it while it runs
        self.process = subprocess.Popen([sys.executable, "-m", "ops.cli", "console", "--port", str(self.port)],
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home,
                                        start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the console exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise AssertionError(f"the console did not answer in 90 s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # uvicorn shuts down; the console's embedded Redis and workers stop with it
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


@pytest.fixture
def start_console(cluster: Cluster) -> Iterator[Any]:
    """Start the cluster's console with extra settings; every console started is stopped afterwards."""
    started: list[ConsoleProcess] = []

    def start(**extra_env: str) -> ConsoleProcess:
        console = ConsoleProcess(cluster.home, {**cluster.env, **extra_env}).start()
        started.append(console)
        return console

    yield start
    for console in started:
        console.stop()


def add_operator(home: Path, env: dict[str, str], name: str, password: str = PASSWORD) -> str:
    done = subprocess.run([sys.executable, "-m", "ops.cli", "operator", "add", name, "--password-stdin"],
                          input=password + "\n", env=env, capture_output=True, text=True, cwd=home, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Seen:
    """Every response the browser received: url, status, content type and body (None when the
    browser kept none: redirects, cached static files, a fragment dropped by a reload)."""

    responses: list[tuple[str, int, str, bytes | None]] = field(default_factory=list)
    downloads: list[tuple[str, bytes]] = field(default_factory=list)

    def texts(self) -> list[tuple[str, str]]:
        out = [(url, body.decode("utf-8", "replace")) for url, _, _, body in self.responses if body is not None]
        return out + [(name, body.decode("utf-8", "replace")) for name, body in self.downloads]


class Operator:
    """One operator's browser session (its own cookies), with screenshots and response capture."""

    def __init__(self, browser: Any, console: ConsoleProcess, name: str, shots: Path, counter: list[int]) -> None:
        self.console, self.name, self.shots, self.counter = console, name, shots, counter
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.seen = Seen()
        self.page.on("response", self._keep)
        self.errors: list[str] = []
        """What the browser's console reported as errors (a content-security-policy refusal would be one)."""
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _keep(self, response: Any) -> None:
        kind = response.headers.get("content-type", "")
        try:
            body = response.body()
        except Exception:  # a redirect, a cached static file, or a fragment the page dropped by reloading
            body = None
        self.seen.responses.append((response.url, response.status, kind, body))

    def everything_seen(self) -> list[tuple[str, str]]:
        """The text of every response: as received, or — where the browser kept no body — fetched
        again with this operator's session (the same page, as it reads now)."""
        texts = self.seen.texts()
        kept = {url for url, _, _, body in self.seen.responses if body is not None}
        for url in sorted({url for url, _, _, body in self.seen.responses if body is None} - kept):
            again = self.context.request.get(url, max_redirects=0)
            texts.append((url, again.text()))
        return texts

    def goto(self, path: str) -> Any:
        return self.page.goto(self.console.url + path)

    def shot(self, name: str) -> Path:
        self.counter[0] += 1  # one numbering for every operator of the test: the screens in the order seen
        path = self.shots / f"{self.counter[0]:02d}-{self.name}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def sign_in(self, password: str = PASSWORD) -> None:
        self.goto("/")
        self.page.fill("input[name=name]", self.name)
        self.page.fill("input[name=password]", password)
        self.page.click("button:has-text('Sign in')")

    def download(self, link_text: str) -> tuple[str, bytes]:
        with self.page.expect_download() as info:
            self.page.click(f"a:has-text('{link_text}')")
        download = info.value
        body = Path(download.path()).read_bytes()
        self.seen.downloads.append((download.suggested_filename, body))
        return download.suggested_filename, body

    def csrf(self) -> str:
        return str(self.page.locator("input[name=csrf]").first.input_value())

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture
def operators(chromium: Any, shots: Path) -> Iterator[Any]:
    opened: list[Operator] = []
    counter = [0]

    def open_as(console: ConsoleProcess, name: str) -> Operator:
        operator = Operator(chromium, console, name, shots, counter)
        opened.append(operator)
        return operator

    yield open_as
    for operator in opened:
        operator.close()
