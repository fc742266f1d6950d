"""What `cutover run`, `dlq replay` and `resume` show on a terminal while they wait.

One line per wave — a bar, records settled of read, records/s and time left — and, while a wave
loads, one line per entity type of it that is still loading; above them the run's state, its time so
far and its back-pressure; below them the total. Rate and time left come from ``ops.progress``, the
computation the web console shares. The view is sized to the terminal at every redraw: when the
lines do not fit, finished and waiting waves fold into one line each before any wave that loads or
the total is left out, so a small terminal never shows rich's ``...`` in place of them. The full
table per entity type is the summary's, printed once when the command stops waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from sqlalchemy import select
from sqlalchemy.orm import Session

from ops.progress import Backpressure, Estimate, Meter, Sample, format_rate, rate_between, stall_warning, time_left
from ops.summary import WHAT_IT_DOES, run_document, run_duration
from shared.dispatch import OUTCOMES, in_flight
from shared.registry import Registry
from shared.schema.control import DispatchWave

LABEL_WIDTH = 30
"""Room for ``wave 3`` and the names of its entity types, or an indented entity type's name."""
BAR_WIDTH = (8, 24)
SPARE_LINES = 1
"""Lines of the terminal left free: the cursor's, so the view never scrolls itself away."""


@dataclass(frozen=True)
class Frame:
    """One look at a dispatch, through a read-only session: what the view draws."""

    run_id: str
    state: str
    """As ``cutover status`` shows it (``interrupted`` when nothing works on it any more)."""
    so_far: str
    entities: dict[str, dict[str, int]]
    """Per entity type: wave, read, each outcome and pending (``run_document``'s)."""
    totals: dict[str, int]
    waves: dict[int, str]
    """The dispatch's wave states: ``waiting``, ``running``, ``done``."""
    backpressure: Backpressure | None


def read_frame(session: Session, run_id: str, limit: int, chunk: int) -> Frame:
    doc = run_document(session, run_id)
    waves = {w.wave: w.state for w in session.scalars(select(DispatchWave).where(DispatchWave.dispatch_id == run_id))}
    pressure = Backpressure(in_flight(session, run_id), limit, chunk) if doc["state"] == "running" else None
    return Frame(doc["run_id"], doc["state"], run_duration(doc), doc["entities"], doc["totals"], waves, pressure)


def settled(row: dict[str, int]) -> int:
    return sum(row[o] for o in OUTCOMES)


def slow_work(names: Iterable[str], registry: Registry, password_hash: str) -> str | None:
    """What makes a wave's records slow, from what the entity types declare: records carrying a
    ``Password`` are hashed (deliberately slow: Argon2id, bcrypt) before their batch is written, so
    their counts stay still, then jump. Derived here, so the workers write nothing more for it."""
    hashed = sorted(n for n in names if n in registry and "Password" in registry[n].secret_fields)
    if not hashed or password_hash == "keep":
        return None
    return f"{', '.join(hashed)}: hashing passwords ({password_hash}); counts move once a batch is written"


@dataclass
class Line:
    """One line of the view: a bar with its figures, or (``bar`` False) a sentence."""

    label: str
    done: int = 0
    total: int = 0
    rate: str = ""
    left: str = ""
    state: str = "running"
    bar: bool = True
    style: str = ""


@dataclass
class _Wave:
    number: int
    state: str
    names: list[str]
    done: int
    total: int
    loading: list[str] = field(default_factory=list)


class ProgressView:
    """Meters per wave, per entity type and for the run, fed one frame per poll; drawn to fit."""

    def __init__(self, registry: Registry, password_hash: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry, self.password_hash, self.clock = registry, password_hash, clock
        self.frame: Frame | None = None
        self.meters: dict[str, Meter] = {}
        self.began: dict[int, Sample] = {}
        """Per wave: the first sample seen loading (time, settled), for its average once done."""
        self.ended: dict[int, Sample] = {}
        self.first_seen: dict[str, int] = {}
        """Per entity type: records settled when this command first looked (at read time, or before a resume)."""
        self.estimate: Estimate | None = None

    def update(self, frame: Frame) -> None:
        now = self.clock()
        self.frame = frame
        self.estimate = self._sample("run", now, settled(frame.totals), frame.totals["read"])
        for wave in self._waves():
            if wave.state == "running" and wave.number not in self.began:
                self.began[wave.number] = Sample(now, wave.done)
            if wave.state == "done" and wave.number in self.began and wave.number not in self.ended:
                self.ended[wave.number] = Sample(now, wave.done)
            self._sample(f"wave {wave.number}", now, wave.done, wave.total)
        for name, row in frame.entities.items():
            self.first_seen.setdefault(name, settled(row))
            self._sample(name, now, settled(row), row["read"])

    def _sample(self, key: str, now: float, done: int, total: int) -> Estimate:
        meter = self.meters.setdefault(key, Meter())
        meter.add(now, done)
        return meter.estimate(total)

    def _waves(self) -> list[_Wave]:
        assert self.frame is not None
        by_wave: dict[int, list[str]] = {}
        for name, row in self.frame.entities.items():
            by_wave.setdefault(row["wave"], []).append(name)
        waves = []
        for number, names in sorted(by_wave.items()):
            rows = [self.frame.entities[n] for n in names]
            done, total = sum(settled(r) for r in rows), sum(r["read"] for r in rows)
            state = self.frame.waves.get(number) or ("done" if done >= total else "waiting")
            if self.frame.state == "completed" or (state == "running" and done >= total):
                state = "done"
            loading = [n for n in names if self.frame.entities[n]["pending"]] if state == "running" else []
            waves.append(_Wave(number, state, names, done, total, loading))
        return waves

    # -- layout: which lines, to fit ``height`` --------------------------------------------------

    def title(self) -> str:
        """The run's state and time so far; while it runs, its back-pressure: at the limit,
        publishing waits for the workers."""
        assert self.frame is not None
        f = self.frame
        text = f"run {f.run_id} — {f.state}" + (f" — {f.so_far}" if f.so_far != "—" else "")
        if f.backpressure is not None:
            return f"{text} — {f.backpressure.describe()}"
        if f.state in WHAT_IT_DOES and f.state != "running":
            return f"{text} — {WHAT_IT_DOES[f.state]}"
        return text

    def lines(self, height: int) -> list[Line]:
        """The lines below the title, at most ``height`` of them when that is at all possible:
        the total always; every wave, folding finished then waiting ones when they do not fit;
        then what makes a wave slow; then the entity types still loading."""
        assert self.frame is not None and self.estimate is not None
        waves = self._waves()
        total = Line("total", self.estimate.done, self.estimate.total, format_rate(self.estimate.rate),
                     time_left(self.estimate, short=True), "done" if self.frame.state == "completed" else "running")
        tail = [total, self._outcomes()]
        if self.estimate.stalled:
            tail.append(Line(stall_warning(self.estimate), bar=False, style="yellow"))
        room = height - len(tail)
        wave_lines = self._fold(waves, room)
        room -= len(wave_lines)
        body: list[Line] = []
        extra = self._extras(waves, room)
        for wave_line, number in wave_lines:
            body.append(wave_line)
            body += extra.get(number, []) if number is not None else []
        return body + tail

    def _fold(self, waves: list[_Wave], room: int) -> list[tuple[Line, int | None]]:
        """One line per wave, or, to fit, each run of finished waves (then of waiting ones) as one."""
        groups: list[list[_Wave]] = [[w] for w in waves]
        for state in ("done", "waiting"):
            if len(groups) <= room:
                break
            folded: list[list[_Wave]] = []
            for group in groups:
                if folded and group[0].state == state and folded[-1][-1].state == state:
                    folded[-1] += group
                else:
                    folded.append(group)
            groups = folded
        return [(self._wave_line(g[0]), g[0].number) if len(g) == 1 else (self._folded_line(g), None) for g in groups]

    def _wave_line(self, wave: _Wave) -> Line:
        label = f"wave {wave.number}  {', '.join(wave.names)}"
        if wave.state == "waiting":
            return Line(label, wave.done, wave.total, "", "waiting", "waiting")
        if wave.state == "done":
            return Line(label, wave.done, wave.total, *self._finished(wave), "done")
        estimate = self.meters[f"wave {wave.number}"].estimate(wave.total)
        return Line(label, wave.done, wave.total, format_rate(estimate.rate), time_left(estimate, short=True))

    def _finished(self, wave: _Wave) -> tuple[str, str]:
        """A finished wave's average rate and how long it took, when this command saw it load."""
        began, ended = self.began.get(wave.number), self.ended.get(wave.number)
        if began is None or ended is None or ended.at <= began.at:
            return "", "done"
        return format_rate(rate_between(began, ended)), f"done in {ended.at - began.at:.0f} s"

    def _folded_line(self, group: list[_Wave]) -> Line:
        state = group[0].state
        label = f"waves {group[0].number}–{group[-1].number}  {sum(len(w.names) for w in group)} entity types"
        return Line(label, sum(w.done for w in group), sum(w.total for w in group), "", state, state)

    def _extras(self, waves: list[_Wave], room: int) -> dict[int, list[Line]]:
        """Under each loading wave: what makes it slow, then its entity types still loading, as many
        as there is room for."""
        frame = self.frame
        assert frame is not None
        extra: dict[int, list[Line]] = {}
        loading = [w for w in waves if w.state == "running"]
        for wave in loading:
            note = slow_work(wave.loading, self.registry, self.password_hash)
            if note and room > 0:
                extra[wave.number] = [Line(f"  ↳ {note}", bar=False, style="yellow")]
                room -= 1
        for wave in loading:
            if len(wave.names) < 2 or not wave.loading:
                continue
            # the ones whose records are settling first, then those still queued
            moving = sorted(wave.loading, key=lambda n: self.first_seen[n] == settled(frame.entities[n]))
            lines = [self._entity_line(n) for n in moving]
            if len(lines) > room:
                shown = max(0, room - 1)
                more = len(lines) - shown
                lines = lines[:shown] + ([Line(f"    + {more} more entity type(s) loading", bar=False, style="dim")]
                                         if room > 0 else [])
            extra.setdefault(wave.number, []).extend(lines)
            room -= len(lines)
        return extra

    def _entity_line(self, name: str) -> Line:
        assert self.frame is not None
        row = self.frame.entities[name]
        if self.first_seen[name] == settled(row):  # published, and nothing settled since this command looked first
            return Line(f"  {name}", settled(row), row["read"], "", "queued", "waiting")
        estimate = self.meters[name].estimate(row["read"])
        return Line(f"  {name}", settled(row), row["read"], format_rate(estimate.rate), time_left(estimate, short=True))

    def _outcomes(self) -> Line:
        assert self.frame is not None
        t = self.frame.totals
        parts = [f"committed {t['committed']:,}", f"skipped {t['skipped']:,}", f"dead {t['dead']:,}",
                 f"blocked {t['blocked']:,}", f"pending {t['pending']:,}"]
        return Line(" · ".join(parts), bar=False, style="red" if t["dead"] or t["blocked"] else "")

    # -- drawing ------------------------------------------------------------------------------

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.frame is None:
            return
        width = options.max_width
        title = Text(self.title(), style="bold")
        title_lines = len(title.wrap(console, width))
        lines = self.lines(max(1, options.size.height - SPARE_LINES - title_lines))
        yield Group(title, *self._draw(lines, width))

    def _draw(self, lines: list[Line], width: int) -> list[Table | Text]:
        figures = [ln for ln in lines if ln.bar]
        count_w = max((len(f"{ln.done:,}/{ln.total:,}") for ln in figures), default=0)
        rate_w = max((len(ln.rate) for ln in figures), default=0)
        left_w = max((len(ln.left) for ln in figures), default=0)
        label_w = min(LABEL_WIDTH, max((len(ln.label) for ln in figures), default=0))
        bar_w = max(BAR_WIDTH[0], min(BAR_WIDTH[1], width - label_w - count_w - rate_w - left_w - 4))
        drawn: list[Table | Text] = []
        for ln in lines:
            if not ln.bar:
                drawn.append(Text(ln.label, style=ln.style, no_wrap=True, overflow="ellipsis"))
                continue
            grid = Table.grid(padding=(0, 1))
            grid.add_column(width=label_w, no_wrap=True, overflow="ellipsis")
            grid.add_column(width=bar_w, no_wrap=True)
            grid.add_column(width=count_w, justify="right", no_wrap=True)
            grid.add_column(width=rate_w, justify="right", no_wrap=True, overflow="ellipsis")
            grid.add_column(no_wrap=True, overflow="ellipsis")
            bar = ProgressBar(total=max(ln.total, 1), completed=ln.done if ln.total else 1, width=bar_w,
                              style="bar.back", complete_style="dim" if ln.state == "waiting" else "bar.complete")
            grid.add_row(Text(ln.label, style="bold" if ln.label == "total" else ""), bar,
                         f"{ln.done:,}/{ln.total:,}", ln.rate, Text(ln.left, style="dim" if ln.state == "waiting" else ""))
            drawn.append(grid)
        return drawn

