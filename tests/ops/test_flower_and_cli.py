"""Flower refuses to run without credentials; the CLI's help never touches a broker or database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.flower import flower_command
from shared.errors import ConfigError
from shared.settings import Settings

BROKER = "redis://127.0.0.1:1/0"  # never contacted by these tests


def test_flower_uses_basic_auth_from_settings() -> None:
    cmd, env = flower_command(Settings(broker_url=BROKER, flower_user="op", flower_password="pw"), None, "0.0.0.0", False)
    assert env == {"FLOWER_BASIC_AUTH": "op:pw"}
    assert "--address=0.0.0.0" in cmd and "--port=5555" in cmd
    assert not any("pw" in part for part in cmd), "credentials never on the command line"


def test_flower_refuses_without_credentials() -> None:
    with pytest.raises(ConfigError, match="CUTOVER_FLOWER_USER"):
        flower_command(Settings(broker_url=BROKER), None, "127.0.0.1", False)


def test_flower_runs_open_only_on_localhost_when_told() -> None:
    cmd, env = flower_command(Settings(broker_url=BROKER), 5566, "127.0.0.1", True)
    assert env == {} and "--port=5566" in cmd
    with pytest.raises(ConfigError, match="only allowed on localhost"):
        flower_command(Settings(broker_url=BROKER), None, "0.0.0.0", True)


def test_flower_runs_on_the_embedded_default_with_the_same_rules() -> None:
    """No broker configured: Flower watches this home's embedded Redis (``exec_flower`` starts or shares
    it), and still needs credentials or --insecure-open on localhost."""
    cmd, env = flower_command(Settings(flower_user="op", flower_password="pw"), None, "127.0.0.1", False)
    assert env == {"FLOWER_BASIC_AUTH": "op:pw"} and "flower" in cmd
    with pytest.raises(ConfigError, match="CUTOVER_FLOWER_USER"):
        flower_command(Settings(), None, "127.0.0.1", False)


def test_help_is_lazy(tmp_path: Path) -> None:
    """`cutover --help` works with an unreachable broker and database: nothing is imported eagerly."""
    env = {**os.environ, "CUTOVER_BROKER_URL": "redis://127.0.0.1:1/0",
           "CUTOVER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none", "CUTOVER_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "import sys; from ops.cli import main; main(['--help'])"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "validate" in done.stdout and "dlq" in done.stdout
    loaded = "import sys, ops.cli; print(sorted(m for m in ('celery', 'sqlalchemy', 'redis') if m in sys.modules))"
    probe = subprocess.run([sys.executable, "-c", loaded], env=env, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]"


def test_unreachable_database_is_a_clear_refusal(tmp_path: Path) -> None:
    env = {**os.environ, "CUTOVER_BROKER_URL": BROKER, "CUTOVER_HOME": str(tmp_path),
           "CUTOVER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    done = subprocess.run([sys.executable, "-m", "ops.cli", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4
    assert "cannot reach the database" in done.stderr
