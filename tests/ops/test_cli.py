"""The command line as an operator meets it, without a broker: the version, help on every option,
where `csv profile init` writes, and what an empty or missing schema says."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import click
import pytest

from ops.cli import main

ROOT = Path(__file__).resolve().parents[2]
REGISTRATION = ROOT / "examples" / "csv" / "registration.csv"


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    clean.update({"CUTOVER_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT), **env})
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=clean, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


def test_version(tmp_path: Path) -> None:
    done = cli(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"cutover {version('cutover')}"


def commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += commands(command, (*path, name))
        else:
            out.append(((*path, name), command))
    return out


def test_every_option_of_every_command_has_help() -> None:
    missing = [(" ".join(path), param.opts[0]) for path, command in commands(main) for param in command.params
               if isinstance(param, click.Option) and not param.help]
    assert missing == []


def test_profile_init_writes_into_the_current_folder_not_beside_the_csv(tmp_path: Path) -> None:
    beside = REGISTRATION.with_name("registration.profile.yaml")
    assert not beside.exists()
    done = cli(tmp_path, "csv", "profile", "init", str(REGISTRATION), "--type", "registration")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "registration.profile.yaml").is_file() and not beside.exists()
    assert done.stdout.splitlines() == ["wrote registration.profile.yaml",
                                        "review it before use: check the account_number recipe"]


def test_a_database_without_the_schema_says_so(tmp_path: Path, postgres_url: str) -> None:
    done = cli(tmp_path, "status", CUTOVER_DATABASE_URL=postgres_url, CUTOVER_BROKER_URL="redis://127.0.0.1:1/0")
    assert done.returncode == 4
    assert done.stderr.startswith("error: the database has no cutover schema yet (cutover needs ")
    assert done.stderr.rstrip().endswith("run `cutover db upgrade`")


@pytest.mark.parametrize("args", [("status",), ("dlq", "list")])
def test_empty_listings_say_what_to_do_next(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = cli(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    expected = {"status": "no runs yet: `cutover run FILES` starts one",
                "dlq": "no open dead letters: nothing waits for a fix or a replay"}[args[0]]
    assert done.stdout.startswith(expected)


def test_last_without_any_run_is_a_clear_refusal(tmp_path: Path) -> None:
    done = cli(tmp_path, "reconcile", "last")
    assert done.returncode == 4
    assert done.stderr.strip() == ("error: 'last' stands for the newest run, and there is none yet: "
                                   "`cutover run FILES` starts one")


def test_bench_without_psutil_says_what_to_install(tmp_path: Path) -> None:
    """psutil is the bench extra's: without it `cutover bench` is refused with the command to type."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    clean.update({"CUTOVER_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)})
    hide = "import sys; sys.modules['psutil'] = None; from ops.cli import main; main(['bench'])"
    done = subprocess.run([sys.executable, "-c", hide], env=clean, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 4
    assert done.stderr.strip() == ('error: cutover bench measures processes with psutil, which is not installed; install '
                                   'the bench extra: pip install -c constraints.txt -e ".[bench]" (in the cutover folder)')
    assert "Traceback" not in done.stderr
