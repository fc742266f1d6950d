"""Parts of `cutover bench`: the PostgreSQL COPY baseline and the background samplers, against the real
PostgreSQL, Redis and processes. A missing PostgreSQL follows the suite's one rule (tests/conftest.py:
skip, or fail when services are required). Every wait is for an event (a child saying it has done its
work, the samplers having seen it), not for the clock, so a busy machine only makes them slower."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ops.bench.copy_baseline import SCRATCH_SCHEMA, copy_baseline, copy_rate, staged_insert_rate, target_tables
from ops.bench.metrics import (
    ProcessSampler,
    RedisMemory,
    SamplerFigures,
    cmdline_contains,
    process_tree,
    redis_server,
    this_process,
)
from tests.conftest import wait_until
from tests.redis_server import RedisServer

MB = 1024 * 1024
PARENTS, CHILDREN = 3_000, 5_000

# A worker in miniature: waits until told to start, burns ~0.5 s of CPU, then holds ~100 MB (written, so
# resident), says so, and keeps it until its standard input closes.
BURN_AND_HOLD = """
import sys, time
sys.stdin.readline()
end = time.process_time() + 0.5
while time.process_time() < end:
    pass
block = bytearray(b"x") * (100 * 1024 * 1024)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_url)
    yield engine
    engine.dispose()


def _scratch_schema_exists(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :s)"),
                                 {"s": SCRATCH_SCHEMA}).scalar_one())


def _two_tables(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE bench_parent (id bigint PRIMARY KEY, name text NOT NULL UNIQUE,"
                             " created timestamptz NOT NULL DEFAULT now())"))
        conn.execute(sa.text("CREATE TABLE bench_child (id bigserial PRIMARY KEY,"
                             " parent_id bigint NOT NULL REFERENCES bench_parent (id), amount numeric(12, 2),"
                             " note text, CHECK (amount >= 0))"))
        conn.execute(sa.text("CREATE INDEX ix_bench_child_parent ON bench_child (parent_id)"))
        conn.execute(sa.text(f"INSERT INTO bench_parent (id, name) SELECT g, 'parent ' || g"
                             f" FROM generate_series(1, {PARENTS}) g"))
        conn.execute(sa.text(f"INSERT INTO bench_child (parent_id, amount, note) SELECT 1 + g % {PARENTS}, g / 100.0,"
                             f" CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('n', g % 50) END"
                             f" FROM generate_series(1, {CHILDREN}) g"))


@pytest.mark.postgres
def test_copy_baseline_counts_the_rows_and_leaves_no_scratch_schema(engine: sa.Engine) -> None:
    _two_tables(engine)

    baseline = copy_baseline(engine, ["bench_parent", "bench_child"])

    for figures in (baseline.copy, baseline.staged_insert):
        assert [(t.table, t.rows) for t in figures.tables] == [("bench_parent", PARENTS), ("bench_child", CHILDREN)]
        assert figures.rows == PARENTS + CHILDREN
        assert all(t.seconds > 0 and t.rows_per_second > 0 and t.bytes > 0 for t in figures.tables)
        assert figures.rows_per_second == pytest.approx(figures.rows / figures.seconds)
    assert [t.inserted for t in baseline.staged_insert.tables] == [PARENTS, CHILDREN]
    assert all(0 < (t.stage_seconds or 0) <= t.seconds for t in baseline.staged_insert.tables)
    as_dict = baseline.to_dict()
    assert as_dict["copy"]["rows"] == PARENTS + CHILDREN and as_dict["staged_insert"]["method"] == "staged_insert"
    assert not _scratch_schema_exists(engine)
    with engine.connect() as conn:  # the source is untouched
        assert conn.execute(sa.text("SELECT count(*) FROM bench_child")).scalar_one() == CHILDREN


@pytest.mark.postgres
def test_copy_rate_and_staged_insert_alone_in_text_format(engine: sa.Engine) -> None:
    _two_tables(engine)

    plain = copy_rate(engine, ["bench_child"], fmt="text")
    staged = staged_insert_rate(engine, ["bench_parent"])

    assert (plain.method, plain.format, plain.rows) == ("copy", "text", CHILDREN) and plain.rows_per_second > 0
    assert (staged.method, staged.format, staged.rows) == ("staged_insert", "binary", PARENTS)
    assert not _scratch_schema_exists(engine)


@pytest.mark.postgres
def test_scratch_schema_is_dropped_on_error(engine: sa.Engine) -> None:
    _two_tables(engine)

    with pytest.raises(Exception, match="no_such_table"):
        copy_baseline(engine, ["bench_parent", "no_such_table"])

    assert not _scratch_schema_exists(engine)


@pytest.mark.postgres
def test_target_tables_lists_the_non_empty_migration_tables(postgres_url: str, engine: sa.Engine) -> None:
    from shared.db import upgrade

    upgrade(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO reference_items (id, kind, name, attributes) VALUES (1, 'Owner', 'o', '{}')"))
        conn.execute(sa.text("INSERT INTO accounts (id, owner_id, name) VALUES (1, 1, 'a')"))
        conn.execute(sa.text("INSERT INTO ledger (key, entity, digest, run_id, record_id, committed_at)"
                             " VALUES ('k', 'User', 'd', 'r', 1, now())"))
        conn.execute(sa.text("INSERT INTO runs (id, kind, state, created_at, options, files)"
                             " VALUES ('r', 'run', 'done', now(), '{}', '[]')"))  # control state: never copied

    tables = target_tables(engine)

    assert sorted(tables) == ["accounts", "ledger", "reference_items"]
    assert tables.index("reference_items") < tables.index("accounts")  # parents first
    assert copy_baseline(engine).copy.rows == 3


def _child_figures(figures: SamplerFigures, pid: int) -> tuple[float, int, int]:
    """CPU, peak RSS and samples of one process as a sampler has seen it so far (zeros if not seen)."""
    for group in figures.groups.values():
        for proc in group.processes:
            if proc.pid == pid:
                return proc.cpu_seconds, proc.peak_rss, proc.samples
    return 0.0, 0, 0


def test_process_sampler_counts_cpu_and_peak_rss_of_a_child() -> None:
    marker = f"bench-marker-{uuid.uuid4().hex[:8]}"
    with ProcessSampler({"producer": this_process(), "marked": cmdline_contains(marker)}, interval=0.05) as sampler:
        child = subprocess.Popen([sys.executable, "-c", BURN_AND_HOLD, marker], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdin is not None and child.stdout is not None
        sampler_tree = ProcessSampler({"child": process_tree(child.pid)}, interval=0.05)
        with sampler_tree:
            wait_until(lambda: all(_child_figures(s.figures(), child.pid)[2] for s in (sampler, sampler_tree)), 30,
                       "both samplers to see the child before it works")
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "held\n"
            wait_until(lambda: all(_child_figures(s.figures(), child.pid)[1] >= 80 * MB
                                   and _child_figures(s.figures(), child.pid)[2] >= 3 for s in (sampler, sampler_tree)),
                       30, "both samplers to see the child's memory peak")
            child.stdin.close()
            assert child.wait(30) == 0

    for figures in (sampler.figures(), sampler_tree.figures()):
        group = next(g for name, g in figures.groups.items() if name != "producer")
        assert group.cpu_seconds >= 0.3, figures.to_dict()
        assert group.peak_rss >= 80 * MB, figures.to_dict()
        assert [p.pid for p in group.processes] == [child.pid]
        (proc,) = group.processes
        assert proc.exited and proc.first_rss < 80 * MB <= proc.peak_rss and group.peak_total_rss >= 80 * MB
        assert group.peak_rss_by_process == [proc.peak_rss]
        assert figures.samples >= 3 and not figures.errors
    producer = sampler.figures().groups["producer"]
    assert [p.pid for p in producer.processes] and not producer.processes[0].exited
    marked = sampler.figures().to_dict()["groups"]["marked"]["processes"][0]
    assert marked["rss_growth"] == marked["last_rss"] - marked["first_rss"]  # last: may be after it freed the block


def test_process_sampler_counts_only_the_window_for_a_process_already_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\nend = time.process_time() + 0.6\n"
                              "while time.process_time() < end: pass\nprint('done', flush=True)\nsys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "done\n"  # its CPU burn is over before the window opens
        with ProcessSampler({"child": process_tree(child.pid)}, interval=0.05) as sampler:
            wait_until(lambda: sampler.samples >= 3, 30, "three samples of the idle child")
        figures = sampler.figures()
        assert figures.groups["child"].processes, figures.to_dict()
        assert figures.groups["child"].cpu_seconds < 0.2, figures.to_dict()
    finally:
        child.kill()
        child.wait()


@pytest.fixture
def redis_db8(private_redis: RedisServer) -> Iterator[str]:
    """Database 8 of the test run's own Redis."""
    yield private_redis.url(8)


@pytest.mark.redis
def test_redis_memory_sees_a_queue_fill(redis_db8: str) -> None:
    import redis

    queue = f"cutover-bench-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_db8)
    try:
        with RedisMemory(redis_db8, [queue, f"{queue}-empty"], interval=0.05) as watch:
            for start in range(0, 10_000, 1_000):
                client.rpush(queue, *(f"message {i} " + "x" * 100 for i in range(start, start + 1_000)))
            wait_until(lambda: watch.samples >= 3, 30, "three samples of Redis")
        figures = watch.figures()
    finally:
        client.delete(queue)
        client.close()

    assert figures.peak_queue_length >= 10_000 and figures.final_queue_length == 10_000
    assert figures.peak_used_memory > figures.baseline_used_memory
    assert figures.used_memory_growth > 0 and figures.used_memory_peak_end >= figures.peak_used_memory
    assert figures.samples >= 3 and not figures.errors
    assert figures.to_dict()["queues"] == [queue, f"{queue}-empty"]


@pytest.mark.redis
def test_redis_server_finder_finds_a_local_server(redis_db8: str) -> None:
    found = redis_server(redis_db8)()
    assert found, "the tests' own redis-server runs on this machine: the finder must see it"
    assert "redis" in found[0].name()
    with ProcessSampler({"redis": redis_server(redis_db8)}, interval=0.05) as sampler:
        wait_until(lambda: sampler.samples >= 3, 30, "three samples of the Redis process")
    assert sampler.figures().groups["redis"].peak_rss > 0
