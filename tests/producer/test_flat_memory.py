"""Flat producer memory, enforced: a large generated file is read through the producer's read path
(``ops.bench.memory``: reader, field checks, secrets, content digest, idempotency key, batching) in a
process whose address space is capped at its size after imports plus a margin far below the file
size. A reader that kept the tree, or the file, in memory runs out of address space and the test
fails; a second process reading the whole file under the same cap must fail, proving the cap bites."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from ops.bench.bigfile import BigFile, write_big_engageip
from ops.bench.memory import measure_producer_memory

pytestmark = [
    pytest.mark.slow,  # ~25 s: a 157 MB file at the producer's full per-record speed
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the address-space cap reads /proc/self/status"),
]

FILE_BYTES = 150 * 2**20
MARGIN_MB = 100
"""Address space the reading process may add after its imports: the measured need is ~15 MB; the file is 157 MB."""
GROWTH_LIMIT_MB = 50
"""Peak RSS the read may add to the process's size after imports."""


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigFile]:
    big = write_big_engageip(tmp_path_factory.mktemp("flat-memory") / "big.xml", FILE_BYTES)
    yield big
    big.path.unlink(missing_ok=True)  # pytest keeps old temp folders: do not leave 157 MB behind


def test_big_file_reads_under_an_address_space_cap(big_file: BigFile) -> None:
    assert big_file.size > FILE_BYTES - 2**20
    report = measure_producer_memory(big_file.path, address_space_margin_mb=MARGIN_MB, timeout=300)
    assert report["ok"], f"the read failed under a {report.get('address_space_cap_mb')} MB address-space cap: {report['error']}"
    assert report["address_space_cap_mb"] < report["vm_after_imports_mb"] + MARGIN_MB + 1
    assert report["records"] == big_file.records
    assert report["read_errors"] == 0
    assert report["by_entity"]["User"] == big_file.accounts
    assert report["by_entity"]["ContactPhone"] == 2 * big_file.accounts
    growth = report["peak_rss_mb"] - report["rss_after_imports_mb"]
    assert growth < GROWTH_LIMIT_MB, f"peak RSS grew by {growth:.1f} MB reading {big_file.size / 1e6:.0f} MB"


def test_the_cap_bites_reading_the_whole_file_fails(big_file: BigFile) -> None:
    report = measure_producer_memory(big_file.path, mode="slurp", address_space_margin_mb=MARGIN_MB, timeout=120)
    assert not report["ok"], f"read {big_file.size / 1e6:.0f} MB into memory under the cap: the cap does not bite"
    assert report["error"].startswith("MemoryError"), report["error"]
    assert report["returncode"] == 1
