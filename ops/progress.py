"""How fast a run goes and when it will end, computed in one place for every display (the
terminal's live table, the web console's run page, the console's metrics).

Pure: no clock, no database, no output. Callers sample a run's settled records (committed +
skipped + dead + blocked) at times of their choosing, on one clock, and ask a ``Meter`` for the rate
over its window and the time left to the total. A window of recent samples, rather than the average
since the start, follows a run whose speed changes: reference data loads fast, ledger lines slow,
and an ETA from the average would promise too much in the slow wave."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW_SECONDS = 30.0
"""How far back the rate looks: long enough to smooth out batches, short enough to follow a wave."""


@dataclass(frozen=True)
class Sample:
    at: float
    """Seconds on the caller's clock (``time.monotonic()`` for one process)."""
    done: int
    """Records settled so far."""


@dataclass(frozen=True)
class Estimate:
    done: int
    total: int
    rate: float | None
    """Records per second over the window; None until two samples span some time."""
    eta: float | None
    """Seconds left at that rate; 0 when done, None when unknown or stalled (rate 0)."""
    span: float = 0.0
    """Seconds the rate was measured over."""
    window: float = WINDOW_SECONDS

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)

    @property
    def stalled(self) -> bool:
        """Nothing settled over a whole window while records are left: the workers are not loading.
        (A pause of a few seconds is a batch being loaded, not a stall.)"""
        return self.rate == 0 and self.done < self.total and self.span >= self.window


class Meter:
    """Samples of one run's progress over the last ``window`` seconds."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self.samples: deque[Sample] = deque()

    def add(self, at: float, done: int) -> None:
        """Record a sample. A sample from before the last one is ignored; a count that goes down
        (a replay moved records back to pending) starts the window again."""
        if self.samples and at < self.samples[-1].at:
            return
        if self.samples and done < self.samples[-1].done:
            self.samples.clear()
        self.samples.append(Sample(at, done))
        # keep one sample at or before the window's start, so the rate spans the whole window
        while len(self.samples) > 2 and self.samples[1].at <= at - self.window:
            self.samples.popleft()

    def rate(self) -> float | None:
        if len(self.samples) < 2:
            return None
        return rate_between(self.samples[0], self.samples[-1])

    def estimate(self, total: int) -> Estimate:
        done = self.samples[-1].done if self.samples else 0
        rate = self.rate()
        span = self.samples[-1].at - self.samples[0].at if self.samples else 0.0
        return Estimate(done, total, rate, eta_seconds(done, total, rate), span, self.window)


def rate_between(first: Sample, last: Sample) -> float | None:
    span = last.at - first.at
    if span <= 0:
        return None
    return max(0, last.done - first.done) / span


def eta_seconds(done: int, total: int, rate: float | None) -> float | None:
    if done >= total:
        return 0.0
    if not rate:
        return None
    return (total - done) / rate


def format_rate(rate: float | None) -> str:
    if rate is None:
        return "measuring…"
    if rate >= 100:
        return f"{rate:,.0f} records/s"
    return f"{rate:,.1f} records/s"


def format_duration(seconds: float | None) -> str:
    """``45 s``, ``2 min 05 s``, ``1 h 02 min``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def time_left(estimate: Estimate, short: bool = False) -> str:
    """``about 15 s left``, ``all settled``, or why it is unknown; ``short`` for a column of a
    terminal line (``15 s left``, ``stalled``), where the stall is explained on a line of its own."""
    if estimate.stalled:
        return "stalled" if short else stall_warning(estimate)
    if estimate.eta == 0:
        return "all settled"
    if estimate.eta is None:
        return "measuring…" if short else "time left: measuring…"
    return f"{format_duration(estimate.eta)} left" if short else f"about {format_duration(estimate.eta)} left"


def stall_warning(estimate: Estimate) -> str:
    return f"no record settled in the last {format_duration(estimate.window)}: are the workers running?"


def describe(estimate: Estimate) -> str:
    """One line for a title or a page: done of total, rate, time left."""
    return f"{estimate.done:,} of {estimate.total:,} records settled — {format_rate(estimate.rate)} — {time_left(estimate)}"


def average_since(started: float, done_then: int, now: float, done: int, total: int) -> Estimate:
    """For a reader with a single look at a run (`cutover status`): the rate averaged since it began
    loading, and the time left at that rate. Stalled only when nothing settled in a whole window."""
    meter = Meter(window=max(WINDOW_SECONDS, now - started))
    meter.add(started, done_then)
    meter.add(now, done)
    return meter.estimate(total)


@dataclass(frozen=True)
class Backpressure:
    """Records published and not settled, against the bound ``max_in_flight``: at the limit (less
    than a chunk of room left), publishing waits for the workers."""

    in_flight: int
    limit: int
    chunk: int

    @property
    def at_limit(self) -> bool:
        return self.in_flight > self.limit - self.chunk

    def describe(self) -> str:
        text = f"{self.in_flight:,} of at most {self.limit:,} records in flight"
        return text + (" — limit reached, publishing waits for the workers" if self.at_limit else "")
