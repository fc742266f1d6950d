"""Peak memory of the producer's read path, measured in a process of its own.

The requirement: reading a 2 GB engageip file keeps the producer under 200 MB of peak RSS. Memory
must be measured in a fresh process — the caller's own heap (pytest, a benchmark driver) would hide
or fake growth — so :func:`measure_producer_memory` runs ``python -m ops.bench.memory read FILE`` and
reads back what the child reports about itself. The peak is the child's ``VmHWM`` (Linux): the
high-water mark of its own address space. ``ru_maxrss`` is not used on Linux because it carries over
the parent's high-water mark across ``fork``/``exec`` (a child of a 1 GB process "peaks" at 1 GB).

What is measured is what ``cutover run`` does with every record before the database sees it: the
real :meth:`Stager.stage_files` loop — reader, field checks, the format's staging steps (invoice
planning), secrets encrypted, canonical content digest, idempotency key, natural key, rows batched
``BATCH`` at a time — with ``keep_rows=False``, so each batch is built and dropped. What the staging
steps write (a ledger file's invoice plans and its source totals, one row per account) goes to an
in-memory SQLite database; record rows go nowhere.

The child can cap its own address space (``RLIMIT_AS``) at its size after imports plus a margin, so
a read path that held the tree or the file would fail with MemoryError instead of passing quietly;
``slurp`` mode reads the whole file under the same cap, to prove the cap bites.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from ops.bench.bigfile import parse_size, write_big_engageip
from producer.formats import FORMATS
from producer.staging import Stager, StagingResult, staging_steps
from shared.entities import REGISTRY
from shared.schema.control import InvoicePlan, SourceTotal
from shared.settings import Settings
from shared.vault import Vault

__all__ = ["READ_PATH", "Mode", "measure_producer_memory", "read_path", "main"]

Mode = Literal["read", "slurp"]
READ_PATH = "stager-read"
"""How records were handled: Stager.stage_files with keep_rows=False (see the module docstring)."""
MB = 1024 * 1024


def read_path(path: Path) -> StagingResult:
    """Run the producer's per-record work over one file (its format's default options), in this
    process, writing no record anywhere."""
    engine = create_engine("sqlite://")
    for table in (InvoicePlan, SourceTotal):
        table.metadata.tables[table.__tablename__].create(engine)
    stager = Stager(sessionmaker(engine), REGISTRY, Vault(os.urandom(32)), Settings().chunk_size)
    sources = FORMATS.resolve([path], None)
    result = StagingResult("bench-memory")
    stager.stage_files(result.run_id, sources, staging_steps(sources), result, keep_rows=False)
    engine.dispose()
    return result


# -- the child ---------------------------------------------------------------------------------------

def _proc_status_kib(name: str) -> int | None:
    """One ``Vm*`` figure of this process in KiB, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _peak_rss_kib() -> int:
    hwm = _proc_status_kib("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes


def _child(path: Path, mode: Mode, margin_mb: int | None) -> dict[str, Any]:
    """What the measuring process does, and what it reports about itself (sizes in MiB)."""
    report: dict[str, Any] = {"mode": mode, "read_path": READ_PATH, "bytes": path.stat().st_size, "ok": False}
    rss = _proc_status_kib("VmRSS")
    report["rss_after_imports_mb"] = (_peak_rss_kib() if rss is None else rss) / 1024
    vm = _proc_status_kib("VmSize")
    report["vm_after_imports_mb"] = None if vm is None else vm / 1024
    if margin_mb is not None:
        if vm is None:
            raise SystemExit("an address-space cap needs /proc/self/status (Linux)")
        cap = vm * 1024 + margin_mb * MB
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        report["address_space_cap_mb"] = cap / MB
    started = time.perf_counter()
    try:
        if mode == "slurp":
            report["records"] = path.read_bytes().count(b"\n")
            report["read_errors"], report["by_entity"] = 0, {}
        else:
            result = read_path(path)
            report["records"] = sum(result.read.values())
            report["read_errors"] = result.dead_at_read
            report["by_entity"] = dict(Counter(result.read).most_common())
        report["ok"] = True
    except Exception as exc:  # MemoryError, or libxml2 out of memory surfacing as a SourceError: reported, not raised
        report["error"] = f"{type(exc).__name__}: {exc}"
    report["seconds"] = time.perf_counter() - started
    report["peak_rss_mb"] = _peak_rss_kib() / 1024
    peak_vm = _proc_status_kib("VmPeak")
    report["peak_vm_mb"] = None if peak_vm is None else peak_vm / 1024
    return report


# -- the parent --------------------------------------------------------------------------------------

def measure_producer_memory(path: Path, *, mode: Mode = "read", address_space_margin_mb: int | None = None,
                            timeout: float | None = None) -> dict[str, Any]:
    """Read ``path`` in a fresh ``python -m ops.bench.memory read`` process and return its figures:
    ``records``, ``read_errors``, ``by_entity``, ``seconds`` (reading only), ``mb_per_s``, ``peak_rss_mb``,
    ``rss_after_imports_mb``, ``wall_seconds`` (with start-up), ``ok`` and, when it failed, ``error``.
    With ``address_space_margin_mb`` the child caps its address space at its size after imports plus
    that margin. A child that dies (a crash, a signal) is reported with ``ok`` False, never raised."""
    command = [sys.executable, "-m", "ops.bench.memory", "read", str(path), "--mode", mode]
    if address_space_margin_mb is not None:
        command += ["--address-space-margin-mb", str(address_space_margin_mb)]
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    wall = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    try:
        report: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        report = {"ok": False, "mode": mode, "bytes": path.stat().st_size,
                  "error": f"exit {done.returncode}: {done.stderr.strip()[-2000:] or 'no output'}"}
    report["returncode"] = done.returncode
    report["wall_seconds"] = wall
    if report.get("ok") and report.get("seconds"):
        report["mb_per_s"] = report["bytes"] / 1e6 / report["seconds"]
        report["records_per_s"] = report["records"] / report["seconds"]
    return report


def format_report(report: dict[str, Any], path: Path) -> str:
    """A small two-column table, for people."""
    def mb(value: Any) -> str:
        return "—" if value is None else f"{value:,.1f} MB"

    rows = [
        ("file", str(path)),
        ("size", f"{report.get('bytes', 0) / 1e6:,.1f} MB ({report.get('bytes', 0):,} bytes)"),
        ("read path", str(report.get("read_path", READ_PATH))),
        ("records read", f"{report.get('records', 0):,}"),
        ("read-time errors", f"{report.get('read_errors', 0):,}"),
        ("seconds (reading)", f"{report.get('seconds', 0):.1f}"),
        ("throughput", f"{report.get('mb_per_s', 0):.1f} MB/s, {report.get('records_per_s', 0):,.0f} records/s"),
        ("RSS after imports", mb(report.get("rss_after_imports_mb"))),
        ("peak RSS", mb(report.get("peak_rss_mb"))),
        ("peak RSS growth", mb(None if report.get("peak_rss_mb") is None
                               else report["peak_rss_mb"] - report.get("rss_after_imports_mb", 0))),
    ]
    if report.get("address_space_cap_mb"):
        rows.append(("address-space cap", mb(report["address_space_cap_mb"])))
    if not report.get("ok"):
        rows.append(("FAILED", str(report.get("error"))))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m ops.bench.memory FILE_OR_SIZE``: measure a file, or generate one of that size (2G,
    300M) into a temporary folder, measure it, and delete it. Exit 1 if the read failed or went over
    ``--limit-mb``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["read"]:
        return _child_main(args[1:])
    parser = argparse.ArgumentParser(prog="python -m ops.bench.memory", description=main.__doc__)
    parser.add_argument("file_or_size", help="an engageip file, or a size to generate (2G, 300M)")
    parser.add_argument("--dir", type=Path, default=None, help="where a generated file goes (default: the temp folder)")
    parser.add_argument("--address-space-margin-mb", type=int, default=None,
                        help="cap the reading process's address space at its size after imports plus this")
    parser.add_argument("--limit-mb", type=float, default=200.0, help="peak RSS the read must stay under (default 200)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args(args)
    path = Path(options.file_or_size)
    with tempfile.TemporaryDirectory(prefix="cutover-bench-", dir=options.dir) as scratch:
        if not path.exists():
            size = parse_size(options.file_or_size)
            path = Path(scratch) / "big.xml"
            started = time.perf_counter()
            big = write_big_engageip(path, size)
            written = time.perf_counter() - started
            if not options.json:
                print(f"generated {big.size / 1e6:,.1f} MB, {big.records:,} records in {written:.1f} s "
                      f"({big.size / 1e6 / max(written, 1e-9):.0f} MB/s)")
        report = measure_producer_memory(path, address_space_margin_mb=options.address_space_margin_mb)
    report["limit_mb"] = options.limit_mb
    print(json.dumps(report, indent=2) if options.json else format_report(report, path))
    return 0 if report.get("ok") and report.get("peak_rss_mb", 0) < options.limit_mb else 1


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.memory read")
    parser.add_argument("path", type=Path)
    parser.add_argument("--mode", choices=("read", "slurp"), default="read")
    parser.add_argument("--address-space-margin-mb", type=int, default=None)
    options = parser.parse_args(argv)
    report = _child(options.path, options.mode, options.address_space_margin_mb)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
