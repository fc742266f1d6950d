"""A fourth source format, declared through the format registry alone (a few lines, below), runs end
to end through the real command line and real workers: its suffix, its option, its staging step."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Cluster

pytestmark = pytest.mark.slow

TOY_FORMAT = textwrap.dedent('''
    """The toy format: one owner name a line."""
    from dataclasses import dataclass

    from producer.formats import FORMATS, SourceFormat, option
    from producer.readers.base import RawRecord
    from producer.steps import StagingStep
    from shared.errors import Position


    @dataclass(frozen=True)
    class ToyOptions:
        shout: bool = option("upper-case every name.")


    class ToyReader:
        def read(self, path, options):
            for line, name in enumerate(path.read_text().splitlines(), 1):
                yield RawRecord("Owner", {"Name": name.upper() if options.shout else name}, Position(str(path), line))


    class Tally(StagingStep):
        names = 0

        def observe(self, raw):
            self.names += 1

        def summary(self):
            return [f"toy: {self.names} name(s) read"]


    FORMATS.declare(SourceFormat("toy", (".toy",), ToyReader, ToyOptions, steps=(Tally,)))
''')
CLI = "import toy_format, ops.cli; ops.cli.main()"


def toy_cli(cluster: Cluster, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "toy_format.py").write_text(TOY_FORMAT)
    env = {**cluster.env, "PYTHONPATH": f"{tmp_path}:{cluster.env['PYTHONPATH']}"}
    return subprocess.run([sys.executable, "-c", CLI, *args], env=env, capture_output=True, text=True, timeout=300,
                          cwd=cluster.home)


def test_a_fourth_format_declared_in_a_few_lines_runs_end_to_end(cluster: Cluster, tmp_path: Path) -> None:
    names = tmp_path / "owners.toy"
    names.write_text("Acme\nGlobex\nAcme\n")
    helped = toy_cli(cluster, tmp_path, "run", "--help")
    assert "[engageip|iteras|csv|toy]" in helped.stdout and "toy: upper-case every name." in helped.stdout

    cluster.start_worker()
    done = toy_cli(cluster, tmp_path, "run", str(names), "--shout", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["state"] == "completed" and doc["precheck"] == ["toy: 3 name(s) read"]
    owner = doc["entities"]["Owner"]
    assert (owner["read"], owner["committed"], owner["skipped"], owner["dead"]) == (3, 2, 1, 0)
    assert sorted(cluster.query("SELECT name FROM reference_items WHERE kind = 'Owner'")) == [("ACME",), ("GLOBEX",)]
    (options,) = cluster.query("SELECT options FROM runs WHERE id = :id", id=doc["run_id"])[0]
    recorded = options if isinstance(options, dict) else json.loads(options)
    assert recorded["shout"] is True and "profile" not in recorded


def test_a_format_option_without_a_file_of_that_format_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    other = tmp_path / "ref.xml"
    other.write_text('<r><Owner Name="Acme"/></r>\n')
    done = toy_cli(cluster, tmp_path, "validate", str(other), "--shout")
    assert done.returncode == 4
    assert done.stderr.strip() == "error: --shout is for toy files, and none is among the inputs"
