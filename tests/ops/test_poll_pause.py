"""The live view's polls take at most a fifth of the database's time: a cheap frame is read every
half second, a frame that took 1.4 s (a million staged records on PostgreSQL) 5.6 s later, and none waits more
than ten seconds. Only a poll that answered counts: the time spent riding out an outage does not."""

from __future__ import annotations

import pytest

from ops.runs import POLL_MAX_SECONDS, POLL_SECONDS, POLL_SHARE, poll_pause


@pytest.mark.parametrize("took", [0.0, 0.01, 0.1, 0.125])
def test_a_cheap_frame_is_read_every_half_second(took: float) -> None:
    assert poll_pause(took) == POLL_SECONDS


@pytest.mark.parametrize("took", [0.5, 1.4, 2.5])
def test_a_costly_frame_spaces_the_polls_so_they_take_a_fifth_of_the_time(took: float) -> None:
    pause = poll_pause(took)
    assert pause > POLL_SECONDS
    assert took / (took + pause) == pytest.approx(POLL_SHARE)


@pytest.mark.parametrize("took", [3.0, 60.0, 180.0])
def test_the_next_poll_comes_within_ten_seconds_however_long_one_took(took: float) -> None:
    assert poll_pause(took) == POLL_MAX_SECONDS
