"""What a benchmark run cost, sampled in the background: CPU seconds and memory per group of processes
(producer, workers, Redis, PostgreSQL) and Redis memory and queue depth.

Rates alone can't say where the time went or whether a run stayed bounded: CPU per group shows which
side is the bottleneck, a worker whose RSS keeps growing from first to last sample is a leak, and a
queue that grows without bound while Redis memory climbs is missing back-pressure.

Sampling is periodic, so short spikes between samples can be missed (Redis's own ``used_memory_peak``
is reported as well for that reason), and a process that exits is counted up to its last sample."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import psutil

ProcessFinder = Callable[[], list[psutil.Process]]
LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", ""}
MAX_ERRORS = 5


# --- finders: each returns the processes of a group as they are now --------------------------------------------


def this_process() -> ProcessFinder:
    """The calling process (the producer, when the benchmark runs it in-process)."""
    me = psutil.Process()
    return lambda: [me]


def process_tree(pid: int, include_root: bool = True) -> ProcessFinder:
    """A process and all its descendants, e.g. a celery worker's main process and its pool children."""

    def find() -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            children = root.children(recursive=True)
        except psutil.Error:
            return []
        return [root, *children] if include_root else children

    return find


def cmdline_contains(*needles: str) -> ProcessFinder:
    """Processes whose command line contains every needle, e.g. ``("celery", "bench-7f3a")`` for workers
    started with a marker in their hostname (the sampler's own process is never included)."""
    me = os.getpid()

    def find() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            line = " ".join(proc.info.get("cmdline") or ())
            if proc.pid != me and all(n in line for n in needles):
                found.append(proc)
        return found

    return find


def named(*names: str) -> ProcessFinder:
    """Processes by executable name (``comm``)."""
    wanted = set(names)

    def find() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["name"]) if p.info.get("name") in wanted]

    return find


def listening_on(port: int) -> psutil.Process | None:
    """The local process listening on a TCP port, if it can be seen (other users' sockets need privileges)."""
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return psutil.Process(conn.pid)
    except psutil.Error:
        pass
    return None


def _name(proc: psutil.Process) -> str:
    try:
        return str(proc.name())
    except psutil.Error:
        return ""


def redis_server(redis_url: str) -> ProcessFinder:
    """The local redis-server behind a URL: its pid from ``INFO server`` (then by port, then by name).
    A remote Redis gives no processes: its CPU isn't this machine's to measure."""
    import redis

    parts = urlsplit(redis_url)
    host, port = parts.hostname or "", parts.port or 6379
    cache: list[psutil.Process] = []

    def resolve() -> psutil.Process | None:
        if parts.scheme in ("redis", "rediss") and host not in LOCAL_HOSTS:
            return None
        try:
            client = redis.Redis.from_url(redis_url, socket_timeout=2)
            try:
                pid = int(client.info("server")["process_id"])
            finally:
                client.close()
            proc = psutil.Process(pid)
            if "redis" in _name(proc):  # a containerised server reports a pid from another namespace
                return proc
        except (redis.RedisError, psutil.Error, KeyError, ValueError, OSError):
            pass
        by_port = listening_on(port) if parts.scheme in ("redis", "rediss") else None
        if by_port is not None and "redis" in _name(by_port):  # not a proxy in front of a container
            return by_port
        candidates = named("redis-server")()
        return candidates[0] if len(candidates) == 1 else None

    retry_at = [0.0]

    def find() -> list[psutil.Process]:
        # Resolving scans sockets: when nothing is found, try again only now and then, not every sample.
        if (not cache or not cache[0].is_running()) and time.monotonic() >= retry_at[0]:
            cache[:] = [p for p in (resolve(),) if p is not None]
            retry_at[0] = time.monotonic() + (0 if cache else 5.0)
        return [p for p in cache if p.is_running()]

    return find


def postgres_server(port: int | None = None) -> ProcessFinder:
    """The local PostgreSQL: with a port, the postmaster listening there and all its backends; without,
    every process named ``postgres``/``postgresql`` (all local clusters)."""
    if port is None:
        return named("postgres", "postgresql")
    cache: list[psutil.Process] = []

    def find() -> list[psutil.Process]:
        if not cache or not cache[0].is_running():
            cache[:] = [p for p in (listening_on(port),) if p is not None]
        return process_tree(cache[0].pid)() if cache else []

    return find


# --- figures -----------------------------------------------------------------------------------------------------


@dataclass
class ProcessFigures:
    """One process over the window: CPU it used in the window, RSS peak and at its first and last sample."""

    pid: int
    name: str
    cpu_seconds: float
    peak_rss: int
    first_rss: int
    last_rss: int
    samples: int
    exited: bool
    """Gone before the window closed: its CPU counts up to its last sample."""

    @property
    def rss_growth(self) -> int:
        return self.last_rss - self.first_rss

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "name": self.name, "cpu_seconds": round(self.cpu_seconds, 3), "peak_rss": self.peak_rss,
                "first_rss": self.first_rss, "last_rss": self.last_rss, "rss_growth": self.rss_growth,
                "samples": self.samples, "exited": self.exited}


@dataclass
class GroupFigures:
    """A group of processes: CPU summed over them, the largest single RSS, and the peak of their summed RSS
    (shared pages, e.g. PostgreSQL's shared buffers, count once per process in that sum)."""

    name: str
    cpu_seconds: float
    peak_rss: int
    peak_total_rss: int
    processes: list[ProcessFigures] = field(default_factory=list)

    @property
    def peak_rss_by_process(self) -> list[int]:
        return [p.peak_rss for p in self.processes]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cpu_seconds": round(self.cpu_seconds, 3), "peak_rss": self.peak_rss,
                "peak_total_rss": self.peak_total_rss, "peak_rss_by_process": self.peak_rss_by_process,
                "processes": [p.to_dict() for p in self.processes]}


@dataclass
class SamplerFigures:
    seconds: float
    interval: float
    samples: int
    groups: dict[str, GroupFigures]
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "interval": self.interval, "samples": self.samples,
                "groups": {k: g.to_dict() for k, g in self.groups.items()}, "errors": list(self.errors)}


@dataclass
class RedisFigures:
    """Redis over the window. ``used_memory`` is server-wide (every database on that server counts)."""

    samples: int
    baseline_used_memory: int
    peak_used_memory: int
    final_used_memory: int
    used_memory_peak_start: int
    used_memory_peak_end: int
    queues: list[str]
    peak_queue_length: int
    final_queue_length: int
    errors: list[str] = field(default_factory=list)

    @property
    def used_memory_growth(self) -> int:
        """Sampled peak over the level at the start."""
        return self.peak_used_memory - self.baseline_used_memory

    @property
    def used_memory_peak_delta(self) -> int:
        """How far Redis's own high-water mark rose in the window: catches spikes between samples, but is 0
        when an earlier peak (before the window, since the last ``MEMORY RESET``/restart) was higher."""
        return self.used_memory_peak_end - self.used_memory_peak_start

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "baseline_used_memory": self.baseline_used_memory,
                "peak_used_memory": self.peak_used_memory, "final_used_memory": self.final_used_memory,
                "used_memory_growth": self.used_memory_growth, "used_memory_peak_start": self.used_memory_peak_start,
                "used_memory_peak_end": self.used_memory_peak_end, "used_memory_peak_delta": self.used_memory_peak_delta,
                "queues": list(self.queues), "peak_queue_length": self.peak_queue_length,
                "final_queue_length": self.final_queue_length, "errors": list(self.errors)}


# --- samplers ----------------------------------------------------------------------------------------------------


class _Periodic:
    """A thread calling ``_sample`` every ``interval`` seconds between ``__enter__`` and ``__exit__``, plus
    once synchronously at each end, so the window's first and last states are always seen."""

    def __init__(self, interval: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.interval = interval
        self.samples = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = self._ended = 0.0

    def _sample(self) -> None:
        raise NotImplementedError

    def _tick(self) -> None:
        with self._lock:
            try:
                self._sample()
                self.samples += 1
            except Exception as exc:  # a failed sample must not end the benchmark
                if len(self.errors) < MAX_ERRORS:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._tick()

    def start(self) -> None:
        self._started = time.monotonic()
        self._tick()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._tick()
        self._ended = time.monotonic()

    @property
    def seconds(self) -> float:
        return (self._ended or time.monotonic()) - self._started if self._started else 0.0

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _boot_clock() -> float:
    """Now, on the clock psutil's ``create_time`` uses on Linux (boot time + time since boot), which can
    differ from ``time.time()`` by up to a second: it decides whether a process was born in the window."""
    if sys.platform.startswith("linux") and hasattr(time, "CLOCK_BOOTTIME"):
        return float(psutil.boot_time()) + time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.time() - 1.0  # coarser elsewhere: err towards "existed before" (counted from first sighting)


@dataclass
class _Tracked:
    name: str
    base_cpu: float
    last_cpu: float
    first_rss: int
    last_rss: int
    peak_rss: int
    samples: int = 1
    exited: bool = False


@dataclass
class _Group:
    finder: ProcessFinder
    tracked: dict[tuple[int, float], _Tracked] = field(default_factory=dict)
    peak_total_rss: int = 0


class ProcessSampler(_Periodic):
    """CPU and RSS per group of processes over a window::

        with ProcessSampler({"producer": this_process(), "workers": process_tree(worker.pid)}) as sampler:
            run_the_benchmark()
        figures = sampler.figures()

    CPU is user+system at the last sample minus at the first sighting; a process born during the window
    counts from zero, one that exits keeps its last sampled times. Processes are told apart by pid and
    creation time, so a reused pid is a new process."""

    def __init__(self, groups: dict[str, ProcessFinder], interval: float = 0.25) -> None:
        super().__init__(interval)
        self._groups = {name: _Group(finder) for name, finder in groups.items()}
        self._first_sample = True
        self._born_after = 0.0

    def __enter__(self) -> ProcessSampler:
        self._born_after = _boot_clock() - 0.02
        self.start()
        return self

    def _sample(self) -> None:
        first, self._first_sample = self._first_sample, False
        for group in self._groups.values():
            self._sample_group(group, first)

    def _sample_group(self, group: _Group, first: bool) -> None:
        seen: set[tuple[int, float]] = set()
        total_rss = 0
        for proc in group.finder():
            try:
                with proc.oneshot():
                    created = proc.create_time()
                    cpu_times = proc.cpu_times()
                    zombie = proc.status() == psutil.STATUS_ZOMBIE
                    rss = 0 if zombie else proc.memory_info().rss
                    name = proc.name()
            except psutil.Error:
                continue  # gone between listing and reading: its last sample stands
            key = (proc.pid, created)
            seen.add(key)
            cpu = cpu_times.user + cpu_times.system
            entry = group.tracked.get(key)
            if entry is None:
                born_in_window = not first and created >= self._born_after
                group.tracked[key] = entry = _Tracked(name, 0.0 if born_in_window else cpu, cpu, rss, rss, rss)
            else:
                entry.last_cpu = max(entry.last_cpu, cpu)
                entry.samples += 1
                if not zombie:
                    entry.last_rss = rss
                    entry.peak_rss = max(entry.peak_rss, rss)
            entry.exited = zombie
            total_rss += rss
        for key, entry in group.tracked.items():
            if key not in seen:
                entry.exited = True
        group.peak_total_rss = max(group.peak_total_rss, total_rss)

    def figures(self) -> SamplerFigures:
        """The window so far (final once the ``with`` block has exited)."""
        with self._lock:
            groups = {}
            for name, group in self._groups.items():
                processes = [ProcessFigures(pid, t.name, max(0.0, t.last_cpu - t.base_cpu), t.peak_rss, t.first_rss,
                                            t.last_rss, t.samples, t.exited)
                             for (pid, _), t in group.tracked.items()]
                groups[name] = GroupFigures(name, sum(p.cpu_seconds for p in processes),
                                            max((p.peak_rss for p in processes), default=0), group.peak_total_rss, processes)
            return SamplerFigures(self.seconds, self.interval, self.samples, groups, list(self.errors))


class RedisMemory(_Periodic):
    """Redis ``used_memory`` and the summed length of the given queues (lists) over a window: a queue that
    only grows while memory climbs is the producer outrunning the workers without back-pressure.

    Queue names are the broker's list keys in the URL's database (for cutover, the control queue and
    ``REGISTRY.queues``)."""

    def __init__(self, redis_url: str, queues: Iterable[str] = (), interval: float = 0.25) -> None:
        import redis

        super().__init__(interval)
        self.redis_url = redis_url
        self.queues: Sequence[str] = list(queues)
        self._client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._used: list[int] = []
        self._peak_marks: list[int] = []
        self._queue_lengths: list[int] = []

    def __enter__(self) -> RedisMemory:
        self.start()
        return self

    def _sample(self) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.info("memory")
        for queue in self.queues:
            pipe.llen(queue)
        memory, *lengths = pipe.execute()
        self._used.append(int(memory["used_memory"]))
        self._peak_marks.append(int(memory["used_memory_peak"]))
        self._queue_lengths.append(sum(int(n) for n in lengths))

    def stop(self) -> None:
        super().stop()
        self._client.close()

    def figures(self) -> RedisFigures:
        """The window so far (final once the ``with`` block has exited)."""
        with self._lock:
            used, marks, lengths = self._used or [0], self._peak_marks or [0], self._queue_lengths or [0]
            return RedisFigures(self.samples, used[0], max(used), used[-1], marks[0], marks[-1], list(self.queues),
                                max(lengths), lengths[-1], list(self.errors))
