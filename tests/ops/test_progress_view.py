"""The terminal's live view (``ops/progress_view.py``) over the engageip example really staged into
SQLite: it fits a 24-line terminal at every stage of the run without rich's ``...``, folds waves on
a smaller one, takes its rates and time left from ``ops.progress``, and says why the User wave is
slow. The records' outcomes are moved on in the database as the workers would write them."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ops.backends import database, reading
from ops.progress import Meter, format_rate, time_left
from ops.progress_view import ProgressView, read_frame, slow_work
from ops.runs import RunRequest, ready_sources, stage_run
from ops.summary import loading_estimate, run_document, short_duration, summary_title
from producer.staging import new_run_id
from shared.entities import REGISTRY
from shared.schema.base import utcnow
from shared.schema.control import DispatchChunk, DispatchWave, Run, StagedRecord
from shared.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "engageip"
LIMIT, CHUNK = 10_000, 500


class Staged:
    """The example staged as a run, and the means to move its records on as workers would."""

    def __init__(self, home: Path) -> None:
        settings = load_settings({"CUTOVER_HOME": str(home), "CUTOVER_CHUNK_SIZE": str(CHUNK)})
        self.sf: sessionmaker[Session] = database(settings)
        self.readers = reading(settings)
        sources = ready_sources(settings, self.sf, [EXAMPLE], None, {})
        self.run_id = stage_run(settings, self.sf, sources, RunRequest(paths=[EXAMPLE]), new_run_id(), "tester").run_id
        with self.sf.begin() as session:
            self.waves = sorted(set(session.scalars(select(StagedRecord.wave).where(StagedRecord.run_id == self.run_id))))
            session.execute(update(Run).where(Run.id == self.run_id).values(state="running"))
            session.add(DispatchChunk(dispatch_id=self.run_id, wave=0, chunk=0, published_at=utcnow() - timedelta(seconds=10)))

    def reach(self, wave: int, fraction: float) -> None:
        """Every wave before ``wave`` loaded, ``fraction`` of each entity type of ``wave`` committed."""
        with self.sf.begin() as session:
            for number in self.waves:
                state = "done" if number < wave else "running" if number == wave else "waiting"
                session.execute(update(DispatchWave).where(DispatchWave.dispatch_id == self.run_id,
                                                           DispatchWave.wave == number).values(state=state))
            session.execute(update(StagedRecord).where(StagedRecord.run_id == self.run_id, StagedRecord.wave < wave,
                                                       StagedRecord.status == "pending").values(status="committed"))
            pending = session.execute(select(StagedRecord.entity, StagedRecord.id).where(
                StagedRecord.run_id == self.run_id, StagedRecord.wave == wave, StagedRecord.status == "pending")
                .order_by(StagedRecord.id)).all()
            by_entity: dict[str, list[int]] = {}
            for entity, record_id in pending:
                by_entity.setdefault(entity, []).append(record_id)
            for ids in by_entity.values():
                chosen = ids[: int(len(ids) * fraction)]
                if chosen:
                    session.execute(update(StagedRecord).where(StagedRecord.id.in_(chosen)).values(status="committed"))

    def settle(self, entity: str, count: int) -> None:
        """``count`` more pending records of ``entity`` committed."""
        with self.sf.begin() as session:
            ids = session.scalars(select(StagedRecord.id).where(StagedRecord.run_id == self.run_id,
                                                                StagedRecord.entity == entity,
                                                                StagedRecord.status == "pending").limit(count)).all()
            session.execute(update(StagedRecord).where(StagedRecord.id.in_(ids)).values(status="committed"))

    def look(self, view: ProgressView) -> None:
        with self.readers() as session:
            view.update(read_frame(session, self.run_id, LIMIT, CHUNK))


@pytest.fixture
def staged(tmp_path: Path) -> Staged:
    return Staged(tmp_path / "home")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def screen(view: ProgressView, width: int = 100, height: int = 24) -> list[str]:
    """The view as a terminal of that size shows it (rich renders it to that height, as Live does)."""
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      legacy_windows=False)
    with console.capture() as captured:
        console.print(view)
    return captured.get().rstrip("\n").splitlines()


def test_every_wave_and_the_total_fit_a_100x24_terminal_at_every_stage(staged: Staged) -> None:
    clock = Clock()
    view = ProgressView(REGISTRY, "argon2id", clock=clock)
    staged.look(view)
    assert view.frame is not None and len(view.frame.entities) >= 50, "the example has some 58 entity types"
    seen_entity_lines = False
    for wave in staged.waves:
        for fraction in (0.0, 0.4, 0.8):
            staged.reach(wave, fraction)
            clock.now += 2
            staged.look(view)
            lines = screen(view)
            assert len(lines) <= 23, "\n".join(lines)
            assert all(len(line) <= 100 for line in lines)
            assert "..." not in [line.strip() for line in lines]
            assert lines[0].startswith(f"run {staged.run_id} — running — ")
            assert "records in flight" in lines[0]
            total = next(line for line in lines if line.startswith("total "))
            assert "/1,508" in total and "records/s" in total
            shown = " ".join(lines)
            for number in staged.waves:
                assert f"wave {number} " in shown or f"waves {number}–" in shown or f"–{number} " in shown
            assert lines[-1].startswith("committed ")
            seen_entity_lines |= any(line.startswith("  ") and "/" in line for line in lines)
    assert seen_entity_lines, "the entity types of a loading wave get lines of their own"


def test_the_user_wave_says_it_is_hashing_passwords(staged: Staged) -> None:
    clock = Clock()
    view = ProgressView(REGISTRY, "argon2id", clock=clock)
    staged.reach(2, 0.0)  # wave 2 is User's
    staged.look(view)
    shown = "\n".join(screen(view))
    assert "User: hashing passwords (argon2id); counts move once a batch is written" in shown, shown
    assert "measuring…" in shown, "no rate before two looks"
    kept = ProgressView(REGISTRY, "keep", clock=clock)
    staged.look(kept)
    assert "hashing" not in "\n".join(screen(kept)), "kept hashes are not hashed again"


def test_rate_and_time_left_are_the_shared_meters(staged: Staged) -> None:
    clock = Clock()
    view = ProgressView(REGISTRY, "argon2id", clock=clock)
    staged.reach(3, 0.0)
    staged.look(view)
    before = view.estimate.done if view.estimate else 0
    clock.now += 4
    staged.reach(3, 0.5)
    staged.look(view)
    assert view.estimate is not None
    expected = Meter()
    expected.add(1000.0, before)
    expected.add(1004.0, view.estimate.done)
    estimate = expected.estimate(view.estimate.total)
    assert estimate.rate and estimate.rate > 0
    total = next(line for line in screen(view) if line.startswith("total "))
    assert format_rate(estimate.rate) in total and time_left(estimate, short=True) in total, total


def test_a_small_terminal_folds_waves_and_keeps_the_total(staged: Staged) -> None:
    view = ProgressView(REGISTRY, "argon2id", clock=Clock())
    staged.reach(4, 0.5)
    staged.look(view)
    lines = screen(view, width=80, height=10)
    assert len(lines) <= 9 and "..." not in [line.strip() for line in lines], "\n".join(lines)
    assert any(line.startswith("waves 0–3 ") for line in lines), "\n".join(lines)
    assert any(line.startswith("wave 4 ") for line in lines)
    assert any(line.startswith("total ") for line in lines) and lines[-1].startswith("committed ")


def test_entity_types_whose_records_settle_come_before_queued_ones(staged: Staged) -> None:
    clock = Clock()
    view = ProgressView(REGISTRY, "argon2id", clock=clock)
    staged.reach(4, 0.0)
    staged.look(view)
    staged.settle("UserService", 20)  # the last of wave 4 by name
    clock.now += 2
    staged.look(view)
    lines = screen(view, height=16)
    under = lines[lines.index(next(line for line in lines if line.startswith("wave 4 "))) + 1:]
    assert under[0].startswith("  UserService ") and "records/s" in under[0], "\n".join(lines)
    assert under[1].split()[-1] == "queued" and any(line.strip().startswith("+ ") for line in under), "\n".join(lines)


def test_slow_work_comes_from_the_registry_and_the_scheme() -> None:
    assert slow_work(["User", "Contact"], REGISTRY, "bcrypt") == (
        "User: hashing passwords (bcrypt); counts move once a batch is written")
    assert slow_work(["Contact", "Debit"], REGISTRY, "argon2id") is None
    assert slow_work(["User"], REGISTRY, "keep") is None


def test_status_figures_for_a_loading_run(staged: Staged) -> None:
    staged.reach(4, 0.5)
    with staged.readers() as session:
        doc = run_document(session, staged.run_id)
        estimate = loading_estimate(session, doc)
        at_read = len(session.scalars(select(StagedRecord.id).where(StagedRecord.run_id == staged.run_id,
                                                                    StagedRecord.chunk < 0)).all())
    settled = sum(doc["totals"][o] for o in ("committed", "skipped", "dead", "blocked"))
    assert estimate is not None and estimate.done == settled and estimate.total == 1508
    assert at_read > 0, "the example has records dead at read time"
    # settled since the first chunk went out, 10 s ago; what died at read time was settled before
    assert estimate.rate == pytest.approx((settled - at_read) / 10, rel=0.2)
    assert estimate.eta == pytest.approx((1508 - settled) / estimate.rate)
    assert summary_title(doc).startswith(f"run {staged.run_id} — running — ") and summary_title(doc).endswith(" so far")
    assert [short_duration(s) for s in (4.4, 185, 7620)] == ["4s", "3m 05s", "2h 07m"]
