"""Rate, ETA and back-pressure of a run (``ops/progress.py``): the one computation the terminal and
the web console share."""

from __future__ import annotations

import pytest

from ops.progress import (
    Backpressure,
    Estimate,
    Meter,
    Sample,
    average_since,
    describe,
    eta_seconds,
    format_duration,
    format_rate,
    rate_between,
    stall_warning,
    time_left,
)


def test_no_rate_until_two_samples_span_time() -> None:
    meter = Meter()
    assert meter.rate() is None
    meter.add(10.0, 0)
    assert meter.rate() is None
    meter.add(10.0, 50)  # same instant: no span yet
    assert meter.rate() is None
    meter.add(12.0, 250)
    assert meter.rate() == pytest.approx(125.0)  # 250 records over 2 s, from the first sample


def test_rate_follows_the_window_not_the_whole_run() -> None:
    meter = Meter(window=10.0)
    for second in range(0, 21):  # fast for 10 s (100/s), then slow (10/s)
        done = second * 100 if second <= 10 else 1000 + (second - 10) * 10
        meter.add(float(second), done)
    assert meter.rate() == pytest.approx(10.0)
    assert meter.samples[0].at == 10.0, "one sample at the window's start is kept"
    assert meter.estimate(2000).eta == pytest.approx((2000 - 1100) / 10.0)


def test_eta_is_zero_when_done_and_unknown_when_stalled() -> None:
    meter = Meter(window=5.0)
    meter.add(0.0, 40)
    meter.add(2.0, 40)
    pause = meter.estimate(100)
    assert pause.rate == 0 and pause.eta is None and not pause.stalled, "a short pause is a batch, not a stall"
    meter.add(6.0, 40)
    estimate = meter.estimate(100)
    assert estimate.rate == 0 and estimate.eta is None and estimate.stalled and estimate.span == 6.0
    assert "no record settled in the last 5 s: are the workers running?" in describe(estimate)
    meter.add(7.0, 100)
    done = meter.estimate(100)
    assert done.eta == 0.0 and not done.stalled and done.fraction == 1.0
    assert describe(done).endswith("all settled")


def test_samples_out_of_order_are_ignored_and_a_drop_restarts() -> None:
    meter = Meter()
    meter.add(5.0, 100)
    meter.add(4.0, 50)  # from before the last sample: ignored
    assert [s.at for s in meter.samples] == [5.0]
    meter.add(6.0, 300)
    meter.add(7.0, 10)  # a replay moved records back to pending: the window starts again
    assert list(meter.samples) == [Sample(7.0, 10)]
    assert meter.rate() is None


def test_pure_helpers() -> None:
    assert rate_between(Sample(1.0, 10), Sample(3.0, 30)) == 10.0
    assert rate_between(Sample(1.0, 10), Sample(1.0, 30)) is None
    assert eta_seconds(50, 100, 25.0) == 2.0
    assert eta_seconds(100, 100, None) == 0.0
    assert eta_seconds(10, 100, None) is None
    assert [format_duration(s) for s in (None, 4.4, 59.6, 125, 3720)] == ["—", "4 s", "1 min 00 s", "2 min 05 s", "1 h 02 min"]
    assert format_rate(None) == "measuring…"
    assert format_rate(12.34) == "12.3 records/s" and format_rate(1234.5) == "1,234 records/s"
    assert Estimate(0, 0, None, 0.0).fraction == 1.0
    assert describe(Estimate(250, 1000, 50.0, 15.0)) == "250 of 1,000 records settled — 50.0 records/s — about 15 s left"


def test_backpressure_reaches_the_limit_within_a_chunk_of_it() -> None:
    assert not Backpressure(9_500, 10_000, 500).at_limit
    assert Backpressure(9_501, 10_000, 500).at_limit
    assert Backpressure(8_500, 10_000, 500).describe() == "8,500 of at most 10,000 records in flight"
    assert Backpressure(10_000, 10_000, 500).describe().endswith("limit reached, publishing waits for the workers")


def test_time_left_long_for_a_page_short_for_a_terminal_column() -> None:
    assert time_left(Estimate(250, 1000, 50.0, 15.0)) == "about 15 s left"
    assert time_left(Estimate(250, 1000, 50.0, 15.0), short=True) == "15 s left"
    assert time_left(Estimate(250, 1000, None, None)) == "time left: measuring…"
    assert time_left(Estimate(250, 1000, None, None), short=True) == "measuring…"
    assert time_left(Estimate(1000, 1000, 5.0, 0.0), short=True) == "all settled"
    stalled = Estimate(250, 1000, 0.0, None, span=40.0, window=30.0)
    assert time_left(stalled, short=True) == "stalled"
    assert time_left(stalled) == stall_warning(stalled) == "no record settled in the last 30 s: are the workers running?"


def test_average_since_is_one_look_at_a_run() -> None:
    estimate = average_since(100.0, 0, 140.0, 800, 1000)  # 800 settled in the 40 s since loading began
    assert estimate.rate == pytest.approx(20.0) and estimate.eta == pytest.approx(10.0)
    assert not estimate.stalled
    assert average_since(100.0, 0, 110.0, 0, 1000).stalled is False, "ten seconds without a record is no stall"
    idle = average_since(100.0, 0, 160.0, 0, 1000)
    assert idle.stalled and idle.eta is None
    assert average_since(100.0, 0, 100.0, 0, 1000).rate is None
