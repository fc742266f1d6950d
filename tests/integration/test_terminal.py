"""`cutover run examples/engageip` as an operator watches it: on the embedded default, in a fresh
CUTOVER_HOME, inside a real terminal (tmux, 100 columns by 24 lines) captured while the run loads and
at the end. The live view fits (every wave and the total, never rich's ``...``), shows rates and time
left, follows the workers' counts within two seconds; the summary's full table is printed once; and
`cutover status` shows the loading run's progress, then the figures the summary showed."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.conftest import REQUIRED

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 100, 24
FOLLOW_SECONDS = 2.0
"""How far behind the workers the screen may be: "within a second or two"."""
TOTAL = re.compile(r"^total\s.*?([\d,]+)/([\d,]+)\s+(.*)$")


@dataclass
class Look:
    """A capture of the screen, between two counts of settled records read from the database."""

    before: int
    lines: list[str]
    after: int

    @property
    def live(self) -> bool:
        return any(TOTAL.match(line) for line in self.lines) and any(" — running — " in line for line in self.lines)

    def total(self) -> tuple[int, int, str]:
        match = next(m for m in map(TOTAL.match, self.lines) if m)
        return int(match[1].replace(",", "")), int(match[2].replace(",", "")), match[3]

    def text(self) -> str:
        return "\n".join(self.lines)


class Terminal:
    """A tmux server of this test's own (its socket under the test's folder), one 100×24 session."""

    def __init__(self, tmux: str, folder: Path, env: dict[str, str]) -> None:
        self.tmux, self.socket, self.env = tmux, folder / "tmux.sock", env

    def run(self, command: str) -> None:
        done = subprocess.run([self.tmux, "-S", str(self.socket), "new-session", "-d", "-s", "cutover", "-x", str(WIDTH),
                               "-y", str(HEIGHT), "bash", "-c", command], env=self.env, capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, done.stderr

    def screen(self, history: bool = False) -> list[str]:
        args = ["-S", "-"] if history else []
        done = subprocess.run([self.tmux, "-S", str(self.socket), "capture-pane", "-p", "-t", "cutover", *args],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.rstrip("\n").split("\n")

    def close(self) -> None:
        subprocess.run([self.tmux, "-S", str(self.socket), "kill-server"], capture_output=True, timeout=30)


def settled(home: Path) -> int:
    """Records settled so far, read as the workers wrote them (a read-only connection of its own)."""
    db = home / "cutover.db"
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM staged_records "
                            "WHERE status IN ('committed', 'skipped', 'dead', 'blocked')").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        conn.close()


def waves_shown(lines: list[str]) -> list[int]:
    """The waves a screen has a line for: ``wave 4 …``, or ``waves 0–3 …`` folded."""
    shown = []
    for line in lines:
        if match := re.match(r"^wave (\d+) ", line):
            shown.append(int(match[1]))
        elif match := re.match(r"^waves (\d+)–(\d+) ", line):
            shown += range(int(match[1]), int(match[2]) + 1)
    return shown


@pytest.fixture
def tmux() -> str:
    found = shutil.which("tmux")
    if found is None:
        message = "tmux is missing (apt-get install tmux)"
        if REQUIRED:
            pytest.fail(f"{message} — required in CI", pytrace=False)
        pytest.skip(message)
    return found


def test_engageip_in_a_100x24_terminal(tmux: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    env.update({"CUTOVER_HOME": str(home), "PYTHONPATH": str(ROOT)})
    exit_file = tmp_path / "exit-status"
    command = (f"cd {shlex.quote(str(ROOT))} && {shlex.quote(sys.executable)} -m ops.cli run examples/engageip; "
               f"echo $? > {shlex.quote(str(exit_file))}; sleep 3600")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    def status_json() -> dict:
        listed = cli("status", "--json")
        assert listed.returncode == 0, listed.stderr
        return json.loads(listed.stdout)[0]

    terminal = Terminal(tmux, tmp_path, env)
    looks: list[Look] = []
    asked: tuple[Future[dict], Future[str]] | None = None
    terminal.run(command)
    # `cutover status` is asked beside the captures and both forms at once, as soon as the run is
    # seen loading: the example loads in about ten seconds, and a CLI start on a busy machine can
    # take a few of them
    with ThreadPoolExecutor(max_workers=2) as pool:
        try:
            deadline = time.monotonic() + 900
            while not exit_file.exists() and time.monotonic() < deadline:
                before = settled(home)
                time.sleep(FOLLOW_SECONDS)
                look = Look(before, terminal.screen(), settled(home))
                looks.append(look)
                if asked is None and look.live and look.total()[0] > 0:
                    asked = pool.submit(status_json), pool.submit(lambda: cli("status").stdout)
            assert exit_file.exists(), "the run did not end in 15 minutes:\n" + "\n\n".join(k.text() for k in looks[-3:])
            end = Look(settled(home), terminal.screen(), settled(home))
            history = terminal.screen(history=True)
        finally:
            terminal.close()
    loading_status, loading_table = (asked[0].result(), asked[1].result()) if asked is not None else (None, "")
    for look in looks:  # shown with -s, to look at
        print(f"--- settled {look.before}..{look.after}\n{look.text()}")
    print(f"--- cutover status while it loaded\n{loading_table}")

    assert exit_file.read_text().strip() == "3", "\n".join(history)
    live = [look for look in looks if look.live]
    assert len(live) >= 3, "the live view was seen loading:\n" + "\n\n".join(k.text() for k in looks)
    for look in [*looks, end]:
        assert "..." not in [line.strip() for line in look.lines], look.text()
        assert len(look.lines) <= HEIGHT and all(len(line) <= WIDTH for line in look.lines), look.text()
    for look in live:
        shown = look.text()
        assert waves_shown(look.lines) == list(range(7)), shown  # the example's waves, each on a line or folded
        done, total, rest = look.total()
        assert total == 1508 and ("records/s" in rest or "measuring…" in rest), shown
        assert look.before <= done <= look.after, (
            f"the screen's {done} settled is not between the database's {look.before} ({FOLLOW_SECONDS:.0f} s "
            f"before the capture) and {look.after} (after it):\n{shown}")
        assert re.search(r"run r\d{8}-\d{6}-[0-9a-f]{6} — running — \d+(m \d{2})?s so far — [\d,]+ of at most "
                         + f"{Settings().max_in_flight:,} records in flight", shown), shown
    assert any(re.search(r"\d+(\.\d)? records/s +(\d+ min )?\d+ s left", look.text()) for look in live), \
        "a rate and a time left were shown"

    # the end: the live view gave way to the summary, whose full table is printed once
    run_id = re.search(r"run (r\d{8}-\d{6}-[0-9a-f]{6}): staged 1508 records", "\n".join(history))[1]  # type: ignore[index]
    titles = [line.strip() for line in history if line.strip().startswith(f"run {run_id} — completed in ")]
    footers = [line for line in history if re.match(r"^│\s+│ total\s+│", line)]
    assert len(titles) == 1 and len(footers) == 1, "\n".join(history)
    assert not any(TOTAL.match(line) for line in history), "no frame of the live view is left behind"
    assert any("read = committed + skipped + dead + blocked holds (1508 = 1451 + 1 + 29 + 27)" in line
               for line in end.lines), end.text()

    # `cutover status`: progress and time left while it loaded, then the summary's figures
    assert loading_status is not None and loading_status["run_id"] == run_id
    progress = loading_status["progress"]
    assert progress["total"] == 1508 and 0 < progress["settled"] < 1508 and progress["rate"] > 0, loading_status
    assert re.search(rf"{run_id}.*in progress.*\d+% — (about .* left|all settled)", loading_table), loading_table
    final = json.loads(cli("status", run_id, "--json").stdout)
    figures = [int(n) for n in re.findall(r"\d+", footers[0])]
    assert figures == [final["totals"][c] for c in ("read", "committed", "skipped", "dead", "blocked")] == \
        [1508, 1451, 1, 29, 27]
    duration = titles[0].removeprefix(f"run {run_id} — completed in ")
    row = next(line for line in cli("status").stdout.splitlines() if run_id in line)
    assert re.search(rf"│ completed +│ [\d\-T:]+ +│ +{re.escape(duration)} │ 1508 +│ 1451 +│ 1 +│ 29 +│ 27 +│", row), \
        (duration, row)
    assert "progress" not in final
