"""The one rule that decides what a missing PostgreSQL means (tests/conftest.py, README "Install and run
the tests"): `CUTOVER_REQUIRE_SERVICES` when it is set, else `CI`; any value but empty, 0, false, no or
off requires the services. Checked on the rule itself and on a real pytest session pointed at a
PostgreSQL that is not there: the same test fails when required and skips otherwise, and the session's
first lines say which."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, services_required

NOWHERE = "postgresql+psycopg://nobody@127.0.0.1:1/postgres"
A_POSTGRES_TEST = "tests/ops/test_bench_parts.py::test_copy_rate_and_staged_insert_alone_in_text_format"


@pytest.mark.parametrize(("environ", "required"), [
    ({}, False), ({"CI": ""}, False), ({"CI": "true"}, True), ({"CI": "1"}, True), ({"CI": "yes"}, True),
    ({"CI": "True"}, True), ({"CI": "woodpecker"}, True), ({"CI": "false"}, False), ({"CI": "0"}, False),
    ({"CI": "no"}, False), ({"CUTOVER_REQUIRE_SERVICES": "1"}, True), ({"CUTOVER_REQUIRE_SERVICES": "yes"}, True),
    ({"CUTOVER_REQUIRE_SERVICES": "0", "CI": "true"}, False), ({"CUTOVER_REQUIRE_SERVICES": "1", "CI": "false"}, True),
])
def test_the_switch(environ: dict[str, str], required: bool) -> None:
    assert services_required(environ) is required


def session(**settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CUTOVER_REQUIRE_SERVICES")}
    env.update({"CUTOVER_TEST_POSTGRES_URL": NOWHERE, **settings})
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", A_POSTGRES_TEST],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_a_missing_postgresql_fails_its_tests_when_required() -> None:
    done = session(CI="1")
    assert done.returncode == 1, done.stdout
    assert "cutover services: a missing PostgreSQL makes its tests FAIL (CI=1)" in done.stdout
    assert "cutover services: PostgreSQL at 127.0.0.1:1/postgres UNREACHABLE" in done.stdout
    assert "cutover services: 1 of 1 collected tests need PostgreSQL and will FAIL (services required)" in done.stdout
    assert "1 failed" in done.stdout and "required (CI=1)" in done.stdout


def test_a_missing_postgresql_skips_its_tests_otherwise() -> None:
    done = session(CUTOVER_REQUIRE_SERVICES="0", CI="true")
    assert done.returncode == 0, done.stdout
    assert "a missing PostgreSQL makes its tests SKIP (CUTOVER_REQUIRE_SERVICES=0)" in done.stdout
    assert "need PostgreSQL and will be SKIPPED" in done.stdout
    assert "1 skipped" in done.stdout and "postgres unreachable" in done.stdout
