"""What docs/cli.md promises of the command line, through the real CLI, on SQLite and PostgreSQL:
`cutover config` (every setting, secrets hidden, exit 4 on a bad one), `status --limit`, usage errors
(status 2: `--records-per-message` out of range, `dlq discard` without a filter, `worker` without a
broker), refusals (status 4: a schema that is behind, ids that do not exist, a replay id where a run is
needed, `--no-wait` on the embedded default), and `--day-first` on `run` and `validate`."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.conftest import CASES, Cluster

REFERENCE = str(CASES / "engageip" / "faults-reference.xml")
TRUNCATED = str(CASES / "engageip" / "run-truncated.xml")


# -- cutover config ----------------------------------------------------------------------------------------


def test_config_prints_every_setting_with_secrets_hidden(embedded: Cluster) -> None:
    configured = embedded.with_env(
        CUTOVER_DATABASE_URL="postgresql+psycopg://cutover:db-S3cret@db-host:5432/cutover",
        CUTOVER_BROKER_URL="redis://:broker-S3cret@redis-host:6379/0",
        CUTOVER_VAULT_KEY="vault-S3cret-key", CUTOVER_VAULT_PREVIOUS_KEYS="old-S3cret-key",
        CUTOVER_FLOWER_PASSWORD="flower-S3cret", CUTOVER_SMTP_PASSWORD="smtp-S3cret", CUTOVER_CHUNK_SIZE="250",
        CUTOVER_DATE_ORDER="day-first")
    done = configured.cli("config")
    assert done.returncode == 0, done.stderr
    printed = {m.group(1): m.group(2).strip() for m in re.finditer(r"^CUTOVER_(\w+?) *= (.*?) +# ", done.stdout, re.M)}
    assert set(printed) == {f.name.upper() for f in fields(Settings)}, "every setting, once"
    assert printed["CHUNK_SIZE"] == "250" and printed["DATE_ORDER"] == "day-first", "the values in effect"
    assert printed["MAX_ATTEMPTS"] == "5", "defaults where nothing is set"
    assert printed["DATABASE_URL"] == "postgresql+psycopg://cutover:***@db-host:5432/cutover"
    assert printed["BROKER_URL"] == "redis://:***@redis-host:6379/0"
    for name in ("VAULT_KEY", "FLOWER_PASSWORD", "SMTP_PASSWORD"):
        assert printed[name] == "«set»", name
    assert "S3cret" not in done.stdout + done.stderr
    assert "# Records per chunk" in done.stdout, "each line ends with the setting's description"


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("CUTOVER_CHUNK_SIZE", "lots", "setting chunk_size: 'lots' is not a whole number"),
    ("CUTOVER_DATE_ORDER", "year-first", "date_order must be month-first or day-first, not 'year-first'"),
    ("CUTOVER_CONFIG", "no-such-file.toml", "CUTOVER_CONFIG names no-such-file.toml, which does not exist"),
])
def test_config_refuses_an_invalid_setting(embedded: Cluster, variable: str, value: str, message: str) -> None:
    done = embedded.with_env(**{variable: value}).cli("config")
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.strip() == f"error: {message}" or done.stderr.startswith(f"error: {message}"), done.stderr


def test_config_refuses_an_unknown_toml_key(embedded: Cluster, tmp_path: Path) -> None:
    toml = tmp_path / "cutover.toml"
    toml.write_text('chunk_sise = 10\n')
    done = embedded.with_env(CUTOVER_CONFIG=str(toml)).cli("config")
    assert done.returncode == 4
    assert done.stderr.startswith(f"error: {toml}: unknown setting(s) chunk_sise; known: home, ")
    toml.write_text('chunk_size = 10\n')
    done = embedded.with_env(CUTOVER_CONFIG=str(toml)).cli("config")
    assert done.returncode == 0 and re.search(r"^CUTOVER_CHUNK_SIZE *= 10 ", done.stdout, re.M), done.stdout


# -- usage errors (status 2) -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "10001", "-3"])
def test_records_per_message_out_of_range_is_a_usage_error(cluster: Cluster, value: str) -> None:
    done = cluster.cli("run", REFERENCE, "--records-per-message", value)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--records-per-message" in done.stderr and "1<=x<=10000" in done.stderr
    assert cluster.query("SELECT count(*) FROM runs") == [(0,)], "nothing was staged"


def test_worker_without_a_broker_is_a_usage_error(embedded: Cluster) -> None:
    done = embedded.cli("worker")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "set CUTOVER_BROKER_URL" in done.stderr


def test_discard_without_ids_or_a_filter_is_a_usage_error(cluster: Cluster) -> None:
    done = cluster.cli("dlq", "discard", "--yes")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "name the letters to discard: their ids, or at least one of --run" in done.stderr


# -- status --limit ----------------------------------------------------------------------------------------


def test_status_lists_the_newest_runs_up_to_the_limit(cluster: Cluster) -> None:
    created = []
    for _ in range(3):
        code, refused = cluster.run_json("run", REFERENCE, TRUNCATED)
        assert code == 4 and refused["state"] == "refused", refused
        created.append(refused["run_id"])
    code, listed = cluster.run_json("status", "--limit", "2")
    assert code == 0
    assert [doc["run_id"] for doc in listed] == created[::-1][:2], "newest first, at most --limit"
    assert all(doc["state"] == "refused" and "run-truncated.xml:7" in doc["message"] for doc in listed)
    code, everything = cluster.run_json("status")
    assert code == 0 and [doc["run_id"] for doc in everything] == created[::-1], "the default limit is 20"
    plain = cluster.cli("status", "--limit", "1")
    assert plain.returncode == 0
    assert created[2] in plain.stdout and created[1] not in plain.stdout and created[0] not in plain.stdout


# -- refusals (status 4) ---------------------------------------------------------------------------------


def test_ids_that_do_not_exist_are_refused(cluster: Cluster) -> None:
    for args, message in ((("status", "r20000101-000000-000000"), "no run 'r20000101-000000-000000'"),
                          (("resume", "r20000101-000000-000000"), "no run 'r20000101-000000-000000'"),
                          (("reconcile", "r20000101-000000-000000"), "no run 'r20000101-000000-000000' to reconcile"),
                          (("report", "r20000101-000000-000000"), "no run 'r20000101-000000-000000'"),
                          (("dlq", "show", "424242"), "424242")):
        done = cluster.cli(*args)
        assert done.returncode == 4, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("error: ") and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_schema_that_is_behind_is_refused_until_upgraded(database_url: str, tmp_path: Path) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from shared.db import alembic_config, engine_for
    from tests.conftest import clean_environment

    home = tmp_path / "home"
    home.mkdir()
    env = {**clean_environment(), "CUTOVER_HOME": str(home), "CUTOVER_DATABASE_URL": database_url,
           "CUTOVER_BROKER_URL": "redis://127.0.0.1:1/0"}  # never reached: the schema check comes first
    installation = Cluster(home, env)
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert head is not None

    done = installation.cli("status")
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.strip() == \
        f"error: the database has no cutover schema yet (cutover needs {head}): run `cutover db upgrade`"

    assert installation.cli("db", "upgrade").returncode == 0
    command.downgrade(alembic_config(database_url), "-1")
    engine_for(database_url).dispose()
    behind = ScriptDirectory.from_config(alembic_config(database_url)).get_revision(head).down_revision
    for args in (("status",), ("run", REFERENCE), ("dlq", "list")):
        done = installation.cli(*args)
        assert done.returncode == 4, (args, done.stdout, done.stderr)
        assert f"the database schema is at {behind}, cutover needs {head}: run `cutover db upgrade`" in done.stderr

    upgraded = installation.cli("db", "upgrade")
    assert upgraded.returncode == 0 and upgraded.stdout.startswith("schema is current on "), upgraded.stdout
    assert installation.cli("status").returncode == 0


@pytest.mark.slow
def test_reconcile_and_report_of_a_replay_id_are_refused(cluster: Cluster) -> None:
    cluster.start_worker()
    code, first = cluster.run_json("run", REFERENCE, str(CASES / "engageip" / "faults-accounts.xml"))
    assert code == 3, first
    assert cluster.run_json("run", str(CASES / "engageip" / "fix-reference.xml"))[0] == 0
    code, replay = cluster.run_json("dlq", "replay", "--run", first["run_id"])
    assert code == 3 and replay["run_id"].startswith("x"), replay
    for command in ("reconcile", "report"):
        done = cluster.cli(command, replay["run_id"])
        assert done.returncode == 4, done.stdout + done.stderr
        assert f"no run '{replay['run_id']}'" in done.stderr and "replays" in done.stderr
    done = cluster.cli("reconcile", first["run_id"])
    assert done.returncode == 0 and done.stdout.startswith("reconciled: "), "the run the replay loaded reconciles"


def test_no_wait_is_refused_with_the_embedded_default(embedded: Cluster) -> None:
    for args in (("run", REFERENCE, "--no-wait"), ("dlq", "replay", "--no-wait"), ("resume", "r1", "--no-wait")):
        done = embedded.cli(*args)
        assert done.returncode == 4, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("error: --no-wait needs a shared broker (CUTOVER_BROKER_URL)"), done.stderr
    assert not (embedded.home / "redis.sock").exists() and not (embedded.home / "logs").exists(), "nothing started"


# -- --day-first --------------------------------------------------------------------------------------------


def users_file(path: Path, *users: tuple[str, str]) -> str:
    path.write_text('<?xml version="1.0"?>\n<Accounts>\n'
                    + "".join(f'  <User Name="{name}" Owner="admin" CreatedDate="{date}"/>\n' for name, date in users)
                    + "</Accounts>\n")
    return str(path)


def created_dates(cluster: Cluster) -> dict[str, datetime]:
    return {name: value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
            for name, value in cluster.query("SELECT name, created_date FROM accounts")}


@pytest.mark.slow
def test_day_first_from_the_command_line_and_the_setting(cluster: Cluster, tmp_path: Path) -> None:
    dates = users_file(tmp_path / "dates.xml", ("dora", "13/2/2007"), ("dirk", "3/4/2007 4:05:06 PM"))
    cluster.start_worker()

    checked = cluster.cli("validate", REFERENCE, dates)
    assert checked.returncode == 3, checked.stdout + checked.stderr
    assert (f"{dates}:3: User: dead (InvalidValue): CreatedDate '13/2/2007' is not a real date "
            "(M/D/YYYY: month 13, day 2) — dates read M/D/YYYY in this run") in checked.stdout
    assert cluster.cli("validate", "--day-first", REFERENCE, dates).returncode == 0

    code, month_first = cluster.run_json("run", REFERENCE, dates)
    assert code == 3 and month_first["entities"]["User"]["dead"] == 1, month_first
    assert created_dates(cluster) == {"dirk": datetime(2007, 3, 4, 16, 5, 6)}

    code, day_first = cluster.run_json("run", "--day-first", users_file(tmp_path / "d2.xml", ("dora", "13/2/2007"),
                                                                        ("dean", "3/4/2007")))
    assert code == 0, day_first
    assert created_dates(cluster) == {"dirk": datetime(2007, 3, 4, 16, 5, 6), "dora": datetime(2007, 2, 13),
                                      "dean": datetime(2007, 4, 3)}

    by_setting = cluster.with_env(CUTOVER_DATE_ORDER="day-first")
    code, doc = by_setting.run_json("run", users_file(tmp_path / "d3.xml", ("dana", "5/6/2007")))
    assert code == 0, doc
    assert created_dates(cluster)["dana"] == datetime(2007, 6, 5), "the setting does what the option does"
