"""Without CUTOVER_HOME, commands find the home the way git finds its repository: the nearest
``.cutover`` folder here or above, else ``./.cutover``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.settings import find_home, load_settings


def test_a_subfolder_finds_the_home_above(tmp_path: Path) -> None:
    (tmp_path / ".cutover").mkdir()
    deep = tmp_path / "exports" / "2026"
    deep.mkdir(parents=True)
    assert find_home(deep) == tmp_path / ".cutover"


def test_the_nearest_home_wins(tmp_path: Path) -> None:
    (tmp_path / ".cutover").mkdir()
    (tmp_path / "project" / ".cutover").mkdir(parents=True)
    assert find_home(tmp_path / "project") == tmp_path / "project" / ".cutover"


def test_no_home_anywhere_means_here(tmp_path: Path) -> None:
    assert find_home(tmp_path) == Path(".cutover")


def test_settings_use_the_home_found_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".cutover").mkdir()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    assert load_settings(env).home.resolve() == (tmp_path / ".cutover").resolve()
    assert load_settings({**env, "CUTOVER_HOME": str(tmp_path / "elsewhere")}).home == tmp_path / "elsewhere"
