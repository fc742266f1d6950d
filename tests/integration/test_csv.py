"""The csv format (the seed's Customer Import Tool) end to end on real Redis, real workers, SQLite and
PostgreSQL: the three import types (registration, autopay, paperless) through mapping profiles; a
UTF-8 BOM and a Latin-1 file; the blocking pre-check errors that refuse a run; account numbers that do
not exist (dead, or created with --create-missing) and an idempotent re-run; the import permission;
the e-mailed report; formula-safe CSV reports; card and bank numbers never in clear; `cutover
validate` and `cutover csv profile init|check`.

Case files are in tests/cases/csv (README.md there lists every planted fault by line)."""

from __future__ import annotations

import base64
import csv
import email
import io
import json
import os
import re
import socket
import subprocess
import sys
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CASES, Cluster
from tests.integration.test_secrets import RedisRecorder

pytestmark = pytest.mark.slow

CSV_CASES = CASES / "csv"
REFERENCE = str(CSV_CASES / "reference.xml")  # InvoiceType: Water Bill, Sewer Bill, Monthly Statement
REGISTRATION = str(CSV_CASES / "registration.csv")  # UTF-8 with BOM
REGISTRATION_PROFILE = str(CSV_CASES / "registration.yaml")
LATIN1 = str(CSV_CASES / "registration-latin1.csv")
AUTOPAY = str(CSV_CASES / "autopay.csv")
AUTOPAY_PROFILE = str(CSV_CASES / "autopay.yaml")
AUTOPAY_MISSING = str(CSV_CASES / "autopay-missing.csv")
AUTOPAY_FAULTS = str(CSV_CASES / "autopay-faults.csv")
PAPERLESS = str(CSV_CASES / "paperless.csv")  # CRLF line ends
PAPERLESS_PROFILE = str(CSV_CASES / "paperless.json")  # a JSON profile
COLUMNS = ("read", "committed", "skipped", "dead", "blocked")
SECRET_MASK = "«secret»"
PORTAL_TABLES = ("reference_items", "accounts", "logins", "payment_methods", "enrolments")

# autopay-faults.csv: every card and bank account number planted in it, as written in the file
FAULTS_SECRETS = ["3782 822463 10005", "987654321012", "6011-1111-1111-1117", "4012 8888 8888 1882", "445566778899",
                  "4000 0566 5566 5556", "31337X2468"]
FAULTS_OWNERS = {"WTR-2001-N": "hal", "WTR-2002-N": "ida", "WTR-2003-N": "jo"}
# line: (entity, stage, error_class, field, value) of autopay-faults.csv's dead rows (value of secrets masked)
FAULTS_LETTERS = {
    5: ("Autopay", "read", "InvalidValue", "card_number", SECRET_MASK),  # fails the Luhn check
    6: ("Autopay", "read", "InvalidValue", "routing_number", "011000016"),  # fails the ABA checksum
    7: ("Autopay", "load", "UnknownReference", "account_number", "WTR-9001-N"),  # no such account
    8: ("Autopay", "read", "InvalidValue", "bank_account_number", SECRET_MASK),  # a letter in the number
}


# -- helpers -------------------------------------------------------------------------------------------


def counts(doc: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(row[c] for c in COLUMNS) for name, row in doc["entities"].items()}


def with_env(cluster: Cluster, **extra: str) -> Cluster:
    """The same installation (home, database, broker, vault key) whose CLI sees more settings."""
    return Cluster(cluster.home, {**cluster.env, **extra})


def seed_accounts(cluster: Cluster, owners: dict[str, str]) -> None:
    """Accounts that exist before the import (loaded some other way), each with its owner login."""
    for number, login in owners.items():
        cluster.execute("INSERT INTO accounts (name) VALUES (:n)", n=number)
        cluster.execute("INSERT INTO logins (account_id, login, is_owner, name) SELECT id, :login, :owner, :name "
                        "FROM accounts WHERE name = :n", login=login, owner=True, name=login.title(), n=number)


def portal_counts(cluster: Cluster) -> dict[str, int]:
    return {t: cluster.query(f"SELECT count(*) FROM {t}")[0][0] for t in PORTAL_TABLES}


def control_counts(cluster: Cluster) -> dict[str, int]:
    return {t: cluster.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("runs", "staged_records", "dead_letters")}


def accounts(cluster: Cluster) -> list[str]:
    return [r[0] for r in cluster.query("SELECT name FROM accounts ORDER BY name")]


def logins(cluster: Cluster) -> list[tuple[Any, ...]]:
    """account, login, owner?, name, email, phone, address — by account."""
    rows = cluster.query("SELECT a.name, l.login, l.is_owner, l.name, l.email, l.phone, l.address FROM logins l "
                         "JOIN accounts a ON a.id = l.account_id ORDER BY a.name, l.login")
    return [(r[0], r[1], bool(r[2]), *r[3:]) for r in rows]


def payment_methods(cluster: Cluster) -> dict[str, tuple[Any, ...]]:
    """account → (id, kind, secret, last4, holder, card type, expiry month, year, bank, routing, account type)."""
    rows = cluster.query(
        "SELECT a.name, p.id, p.kind, p.secret, p.last4, p.holder, p.card_type, p.expiry_month, p.expiry_year, "
        "p.bank_name, p.routing_number, p.account_type FROM payment_methods p JOIN logins l ON l.id = p.login_id "
        "JOIN accounts a ON a.id = l.account_id")
    by_account = {r[0]: tuple(r[1:]) for r in rows}
    assert len(by_account) == len(rows), "one payment method per account"
    return by_account


def enrolments(cluster: Cluster, kind: str) -> list[tuple[Any, ...]]:
    """(account, invoice type, payment method id, the payment method's account) of one kind, sorted."""
    rows = cluster.query(
        "SELECT a.name, r.name, e.payment_method_id, pa.name FROM enrolments e JOIN logins l ON l.id = e.login_id "
        "JOIN accounts a ON a.id = l.account_id JOIN reference_items r ON r.id = e.invoice_type_id "
        "LEFT JOIN payment_methods p ON p.id = e.payment_method_id LEFT JOIN logins pl ON pl.id = p.login_id "
        "LEFT JOIN accounts pa ON pa.id = pl.account_id WHERE e.kind = :k ORDER BY a.name, r.name", k=kind)
    return [tuple(r) for r in rows]


def letters_by_line(cluster: Cluster, source: str) -> dict[int, tuple[Any, ...]]:
    """Dead letters of one file by line: entity, stage, error_class, field, value, message, hint."""
    rows = cluster.query("SELECT line, entity, stage, error_class, field, value, message, hint FROM dead_letters "
                         "WHERE source_file = :f", f=source)
    by_line = {r[0]: tuple(r[1:]) for r in rows}
    assert len(by_line) == len(rows), "one dead letter per line"
    return by_line


def vault_of(cluster: Cluster) -> Any:
    from shared.vault import Vault

    return Vault(base64.urlsafe_b64decode(cluster.env["CUTOVER_VAULT_KEY"]))


def write_profile(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return str(path)


def profile_doc(path: str) -> dict[str, Any]:
    text = Path(path).read_text(encoding="utf-8")
    doc = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def spellings(number: str) -> set[str]:
    """A planted number as written, as digits only, and in groups of four with spaces or dashes."""
    digits = re.sub(r"[\s-]", "", number)
    groups = [digits[i:i + 4] for i in range(0, len(digits), 4)]
    return {number, digits, " ".join(groups), "-".join(groups)}


def offline_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`cutover csv profile …` needs no broker and no database: a bare environment, home in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    env.update({"CUTOVER_HOME": str(tmp_path / "home"), "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


# -- 1. each import type -------------------------------------------------------------------------------


def test_registration_autopay_and_paperless_end_to_end(cluster: Cluster) -> None:
    cluster.start_worker()

    # registration: a UTF-8 file with a BOM (its first header, "Account Number", is in the recipe)
    code, doc = cluster.run_json("run", REFERENCE, REGISTRATION, "--profile", REGISTRATION_PROFILE)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc) == {"InvoiceType": (3, 3, 0, 0, 0), "Registration": (9, 4, 1, 4, 0)}
    assert doc["balanced"] is True
    assert doc["precheck"] == ["pre-check (registration): 9 row(s): 4 to load, 4 refused at read, 1 repeated",
                               "  no blocking errors"]
    assert accounts(cluster) == ["WTR-1001-N", "WTR-1002-S", "WTR-1003-N", "WTR-1007-W"]
    assert logins(cluster) == [
        ("WTR-1001-N", "ann", True, "Ann Archer", "ann@example.com", "555-0101", "12 Elm St\nSpringfield"),
        ("WTR-1002-S", "bo", True, "Bo Baker", "bo@example.com", "555-0102", "3 Oak Ave"),
        ("WTR-1003-N", "cy", True, "Cy Cole", "cy@example.com", None, None),
        ("WTR-1007-W", "gus", True, "Gus Gray", "gus@example.com", "555-0107", "7 Cedar Ct"),  # cells trimmed
    ]
    letters = letters_by_line(cluster, REGISTRATION)
    assert {line: row[:5] for line, row in letters.items()} == {
        6: ("Registration", "read", "MissingField", "login", ""),
        7: ("Registration", "read", "InvalidValue", "email", "ed@@example.com"),
        10: ("Registration", "load", "Conflict", "account_number", "WTR-1003-N"),  # line 9 repeats line 4: skipped
        11: ("Registration", "read", "InvalidValue", "(row)", "5"),
    }, "lines count the address cell spanning lines 2-3 and the blank line 8"
    assert f"{REGISTRATION}:5" in letters[10][5], "the conflict names the earlier row"

    # autopay: cards and a bank account on the owner logins, enrolled on both listed invoice types
    code, doc = cluster.run_json("run", AUTOPAY, "--profile", AUTOPAY_PROFILE)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc) == {"Autopay": (4, 3, 0, 1, 0)}
    assert doc["balanced"] is True
    assert doc["precheck"] == ["pre-check (autopay): 4 row(s): 3 to load, 1 refused at read, 0 repeated",
                               "  enrols every row on each invoice type: Water Bill, Sewer Bill",
                               "  no blocking errors; every account number exists"]
    methods = payment_methods(cluster)
    assert {account: (row[1], *row[3:]) for account, row in methods.items()} == {
        "WTR-1001-N": ("card", "1111", "Ann Archer", "Visa", 4, 2027, None, None, None),
        "WTR-1002-S": ("ach", "6789", "Bo Baker", None, None, None, "First Bank", "011000015", "Checking"),
        "WTR-1003-N": ("card", "4444", "Cy Cole", "Mastercard", 12, 2030, None, None, None),
    }
    vault = vault_of(cluster)
    for account, number in (("WTR-1001-N", "4111111111111111"), ("WTR-1002-S", "000123456789"),
                            ("WTR-1003-N", "5555555555554444")):
        secret = methods[account][2]
        assert secret.startswith("vault:") and number not in secret
        assert vault.decrypt(secret) == number, "the ciphertext holds the number, separators removed"
    ids = {account: row[0] for account, row in methods.items()}
    assert enrolments(cluster, "autopay") == [
        (account, invoice_type, ids[account], account)
        for account in ("WTR-1001-N", "WTR-1002-S", "WTR-1003-N") for invoice_type in ("Sewer Bill", "Water Bill")
    ]
    assert letters_by_line(cluster, AUTOPAY) == {
        5: ("Autopay", "read", "InvalidValue", "card_number", SECRET_MASK,
            "card_number fails the Luhn check (a digit is wrong or two are swapped)",
            "check the number against the source system")}

    # paperless (a JSON profile, a CRLF file): the owner login's e-mail, enrolled on both listed types
    code, doc = cluster.run_json("run", PAPERLESS, "--profile", PAPERLESS_PROFILE)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc) == {"Paperless": (4, 3, 0, 1, 0)}
    assert doc["balanced"] is True
    assert [(r[0], r[3], r[4]) for r in logins(cluster)] == [
        ("WTR-1001-N", "Ann Archer", "ann.paperless@example.com"),
        ("WTR-1002-S", "Bo Baker", "bo.paperless@example.com"),  # an empty name keeps the login's
        ("WTR-1003-N", "Cy Cole", "cy@example.com"),  # its row is dead: unchanged
        ("WTR-1007-W", "Gus Gray", "gus.paperless@example.com"),
    ]
    assert enrolments(cluster, "paperless") == [
        (account, invoice_type, None, None)
        for account in ("WTR-1001-N", "WTR-1002-S", "WTR-1007-W") for invoice_type in ("Monthly Statement", "Water Bill")
    ]
    assert len(enrolments(cluster, "autopay")) == 6, "paperless leaves autopay enrolments alone"
    assert {line: row[:5] for line, row in letters_by_line(cluster, PAPERLESS).items()} == {
        4: ("Paperless", "read", "InvalidValue", "email", "cy at example.com")}
    assert portal_counts(cluster) == {"reference_items": 3, "accounts": 4, "logins": 4, "payment_methods": 3,
                                      "enrolments": 12}


# -- 2. encodings --------------------------------------------------------------------------------------


def test_latin1_file_loads_with_its_encoding_and_is_refused_without(cluster: Cluster) -> None:
    code, refused = cluster.run_json("run", LATIN1, "--profile", REGISTRATION_PROFILE)
    assert code == 4 and refused["state"] == "refused", refused
    assert LATIN1 in refused["message"] and "--encoding" in refused["message"]
    assert cluster.query("SELECT state FROM runs") == [("refused",)]
    assert control_counts(cluster) == {"runs": 1, "staged_records": 0, "dead_letters": 0}
    assert portal_counts(cluster) == dict.fromkeys(PORTAL_TABLES, 0)

    cluster.start_worker()
    code, doc = cluster.run_json("run", LATIN1, "--profile", REGISTRATION_PROFILE, "--encoding", "latin-1")
    assert code == 0 and doc["state"] == "completed", doc
    assert counts(doc) == {"Registration": (2, 2, 0, 0, 0)}
    assert logins(cluster) == [
        ("WTR-3001-N", "jose", True, "José Núñez", "jose@example.com", "555-0301", "Calle Mayor 5"),
        ("WTR-3002-N", "soren", True, "Søren Østergård", "soren@example.dk", "555-0302", "Nørregade 1"),
    ]


# -- 3. blocking errors --------------------------------------------------------------------------------


def test_blocking_errors_refuse_the_run_and_load_nothing(cluster: Cluster, tmp_path: Path) -> None:
    # a mapped column the header does not have
    registration = profile_doc(REGISTRATION_PROFILE)
    registration["columns"]["phone"] = "Telephone"
    missing_column = write_profile(tmp_path / "missing-column.yaml", registration)
    code, doc = cluster.run_json("run", REFERENCE, REGISTRATION, "--profile", missing_column)
    assert code == 4 and doc["state"] == "refused", doc
    assert f"{REGISTRATION}:1: the profile maps column 'Telephone', which is not in the header" in doc["message"]
    registration["columns"]["phone"] = "Phone"
    registration["account_number"]["parts"][2] = {"column": "Dist"}  # the recipe's columns are checked too
    missing_part = write_profile(tmp_path / "missing-part.yaml", registration)
    code, doc = cluster.run_json("run", REFERENCE, REGISTRATION, "--profile", missing_part)
    assert code == 4 and doc["state"] == "refused", doc
    assert "the profile maps column 'Dist', which is not in the header" in doc["message"]
    registration["account_number"]["parts"][2] = {"column": "District"}
    assert cluster.query("SELECT state FROM runs") == [("refused",), ("refused",)]

    # an invoice type that is not configured (the reference data of the same run has 'Sewer Bill')
    autopay = profile_doc(AUTOPAY_PROFILE)
    autopay["invoice_types"] = ["Water Bill", "Sewer bill"]
    unknown_type = write_profile(tmp_path / "unknown-type.yaml", autopay)
    code, doc = cluster.run_json("run", REFERENCE, AUTOPAY, "--profile", unknown_type)
    assert code == 4 and doc["state"] == "refused", doc
    assert "invoice type 'Sewer bill' is not configured" in doc["message"]
    assert "did you mean 'Sewer Bill'?" in doc["message"]
    assert cluster.query("SELECT state FROM runs") == [("refused",)] * 3

    # a required field with no mapping, and an autopay profile with neither the card nor the ACH fields
    del registration["columns"]["login"]
    no_login = write_profile(tmp_path / "no-login.yaml", registration)
    done = cluster.cli("run", REFERENCE, REGISTRATION, "--profile", no_login)
    assert done.returncode == 4, done.stderr
    assert "a registration import needs login mapped to a column" in done.stderr
    autopay["columns"] = {"payment_method": "Pay Method", "card_number": "Card Number"}
    autopay["invoice_types"] = ["Water Bill"]
    half_card = write_profile(tmp_path / "half-card.yaml", autopay)
    done = cluster.cli("run", REFERENCE, AUTOPAY, "--profile", half_card)
    assert done.returncode == 4, done.stderr
    assert "an autopay import needs the card fields" in done.stderr

    assert control_counts(cluster) == {"runs": 3, "staged_records": 0, "dead_letters": 0}, \
        "a bad profile is refused before any run exists"
    assert portal_counts(cluster) == dict.fromkeys(PORTAL_TABLES, 0), "nothing loaded, reference data included"


# -- 4. account numbers that do not exist --------------------------------------------------------------


def test_missing_accounts_are_dead_or_created_and_a_rerun_adds_nothing(cluster: Cluster) -> None:
    seed_accounts(cluster, {"WTR-2001-N": "hal", "WTR-2002-N": "ida"})
    cluster.start_worker()
    code, doc = cluster.run_json("run", REFERENCE, AUTOPAY_MISSING, "--profile", AUTOPAY_PROFILE)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc) == {"InvoiceType": (3, 3, 0, 0, 0), "Autopay": (4, 2, 0, 2, 0)}
    assert doc["precheck"][0] == "pre-check (autopay): 4 row(s): 4 to load, 0 refused at read, 0 repeated"
    assert doc["precheck"][2].startswith("  2 row(s) name accounts that do not exist: these rows will be dead-lettered")
    assert "--create-missing" in doc["precheck"][2] and doc["precheck"][2].endswith(": WTR-9001-N, WTR-9002-N")
    letters = letters_by_line(cluster, AUTOPAY_MISSING)
    assert {line: row[:5] for line, row in letters.items()} == {
        3: ("Autopay", "load", "UnknownReference", "account_number", "WTR-9001-N"),
        5: ("Autopay", "load", "UnknownReference", "account_number", "WTR-9002-N"),
    }
    assert all("--create-missing" in row[6] for row in letters.values())
    assert accounts(cluster) == ["WTR-2001-N", "WTR-2002-N"]
    assert sorted(payment_methods(cluster)) == ["WTR-2001-N", "WTR-2002-N"]

    code, doc = cluster.run_json("run", AUTOPAY_MISSING, "--profile", AUTOPAY_PROFILE, "--create-missing")
    assert doc["state"] == "completed" and code == 0, doc
    assert counts(doc) == {"Autopay": (4, 2, 2, 0, 0)}, "the rows committed before are skipped"
    assert doc["precheck"][2] == ("  2 row(s) name accounts that will be created first (--create-missing): "
                                  "WTR-9001-N, WTR-9002-N")
    assert accounts(cluster) == ["WTR-2001-N", "WTR-2002-N", "WTR-9001-N", "WTR-9002-N"]
    assert logins(cluster)[2:] == [("WTR-9001-N", "WTR-9001-N", True, "Mo Moss", None, None, None),
                                   ("WTR-9002-N", "WTR-9002-N", True, "Nia North", None, None, None)]
    methods = payment_methods(cluster)
    assert {account: (row[1], row[3], row[4]) for account, row in methods.items()} == {
        "WTR-2001-N": ("card", "4242", "Hal Hart"), "WTR-2002-N": ("ach", "1222", "Ida Ives"),
        "WTR-9001-N": ("card", "5100", "Mo Moss"), "WTR-9002-N": ("ach", "8999", "Nia North"),
    }
    assert len(enrolments(cluster, "autopay")) == 8
    assert all(row[0] == row[3] for row in enrolments(cluster, "autopay"))

    before = portal_counts(cluster)
    code, doc = cluster.run_json("run", AUTOPAY_MISSING, "--profile", AUTOPAY_PROFILE, "--create-missing")
    assert doc["state"] == "completed" and code == 0, doc
    assert counts(doc) == {"Autopay": (4, 0, 4, 0, 0)}
    assert doc["precheck"][2] == "  no blocking errors; every account number exists"
    assert portal_counts(cluster) == before == {"reference_items": 3, "accounts": 4, "logins": 4, "payment_methods": 4,
                                                "enrolments": 8}


def test_a_later_autopay_with_another_card_for_the_account_is_a_conflict(cluster: Cluster, tmp_path: Path) -> None:
    head = Path(AUTOPAY).read_text(encoding="utf-8").splitlines()[0]
    first, second = tmp_path / "autopay-1.csv", tmp_path / "autopay-2.csv"
    first.write_text(f"{head}\n2001,N,Card,Visa,4242 4242 4242 4242,05,2028,Hal Hart,,,,,\n", encoding="utf-8")
    second.write_text(f"{head}\n2001,N,Card,Visa,4000 0566 5566 5556,06,2030,Hal Hart,,,,,\n", encoding="utf-8")
    seed_accounts(cluster, {"WTR-2001-N": "hal"})
    cluster.start_worker()
    code, doc = cluster.run_json("run", REFERENCE, str(first), "--profile", AUTOPAY_PROFILE)
    assert code == 0 and counts(doc)["Autopay"] == (1, 1, 0, 0, 0), doc
    code, doc = cluster.run_json("run", str(second), "--profile", AUTOPAY_PROFILE)
    assert doc["state"] == "completed", doc
    assert counts(doc) == {"Autopay": (1, 0, 0, 1, 0)}, "same natural key (account number), other content"
    assert letters_by_line(cluster, str(second))[2][2] == "Conflict"
    assert portal_counts(cluster)["payment_methods"] == 1


# -- 5. permissions ------------------------------------------------------------------------------------


def test_operators_without_the_import_permission_may_only_run_paperless(cluster: Cluster, tmp_path: Path) -> None:
    seed_accounts(cluster, {"WTR-1001-N": "ann", "WTR-1002-S": "bo", "WTR-1003-N": "cy", "WTR-1007-W": "gus"})
    operators = "alice=import; bob="
    bob = with_env(cluster, CUTOVER_OPERATORS=operators, CUTOVER_OPERATOR="bob")
    for data, profile, import_type in ((AUTOPAY, AUTOPAY_PROFILE, "autopay"),
                                       (REGISTRATION, REGISTRATION_PROFILE, "registration")):
        done = bob.cli("run", REFERENCE, data, "--profile", profile)
        assert done.returncode == 4, done.stderr
        assert f"operator 'bob' may not run {import_type} imports" in done.stderr
        assert "'import' permission" in done.stderr
    carol = with_env(cluster, CUTOVER_OPERATORS=operators, CUTOVER_OPERATOR="carol")
    done = carol.cli("run", REFERENCE, AUTOPAY, "--profile", AUTOPAY_PROFILE)
    assert done.returncode == 4 and "operator 'carol' may not run autopay imports" in done.stderr, \
        "an operator not listed has no permission"
    assert control_counts(cluster) == {"runs": 0, "staged_records": 0, "dead_letters": 0}, "nothing staged"
    assert portal_counts(cluster)["reference_items"] == 0

    cluster.start_worker()
    code, doc = bob.run_json("run", REFERENCE, PAPERLESS, "--profile", PAPERLESS_PROFILE)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc) == {"InvoiceType": (3, 3, 0, 0, 0), "Paperless": (4, 3, 0, 1, 0)}

    alice = with_env(cluster, CUTOVER_OPERATORS=operators, CUTOVER_OPERATOR="alice")
    code, doc = alice.run_json("run", AUTOPAY, "--profile", AUTOPAY_PROFILE)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc) == {"Autopay": (4, 3, 0, 1, 0)}

    # no operators configured: everyone may do everything
    new = tmp_path / "new-customer.csv"
    new.write_text("Account Number,District,Customer Name,Login,E-mail,Phone,Service Address\n"
                   "3101,N,Una Unger,una,una@example.com,,\n", encoding="utf-8")
    code, doc = with_env(cluster, CUTOVER_OPERATOR="bob").run_json("run", str(new), "--profile", REGISTRATION_PROFILE)
    assert doc["state"] == "completed" and code == 0, doc
    assert counts(doc) == {"Registration": (1, 1, 0, 0, 0)}


# -- 6. the e-mailed report ----------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler: every message it is given, as (sender, recipients, raw bytes)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        raw = envelope.original_content or envelope.content
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), raw if isinstance(raw, bytes) else raw.encode()))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_report_is_emailed_with_every_dead_row_attached(cluster: Cluster) -> None:
    from aiosmtpd.controller import Controller

    seed_accounts(cluster, FAULTS_OWNERS)
    done = cluster.cli("run", REFERENCE, AUTOPAY_FAULTS, "--profile", AUTOPAY_PROFILE, "--email", "ops@example.com")
    assert done.returncode == 4, done.stderr
    assert "--email needs an SMTP server" in done.stderr
    assert control_counts(cluster) == {"runs": 0, "staged_records": 0, "dead_letters": 0}, "refused before staging"

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        mailing = with_env(cluster, CUTOVER_SMTP_HOST="127.0.0.1", CUTOVER_SMTP_PORT=str(port),
                           CUTOVER_SMTP_STARTTLS="never", CUTOVER_MAIL_FROM="cutover@example.com")
        done = mailing.cli("run", REFERENCE, AUTOPAY_FAULTS, "--profile", AUTOPAY_PROFILE, "--email", "ops at example")
        assert done.returncode == 4 and "--email 'ops at example' is not a valid e-mail address" in done.stderr, done.stderr
        assert control_counts(cluster)["runs"] == 0
        cluster.start_worker()
        code, doc = mailing.run_json("run", REFERENCE, AUTOPAY_FAULTS, "--profile", AUTOPAY_PROFILE,
                                     "--email", "ops@example.com")
    finally:
        controller.stop()
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc) == {"InvoiceType": (3, 3, 0, 0, 0), "Autopay": (7, 3, 0, 4, 0)}
    assert doc["email"] == "sent to ops@example.com"
    run_id = doc["run_id"]

    assert len(inbox.messages) == 1
    sender, recipients, raw = inbox.messages[0]
    assert (sender, recipients) == ("cutover@example.com", ["ops@example.com"])
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == f"cutover run {run_id} completed: 10 read, 6 committed, 0 skipped, 4 dead, 0 blocked"
    body_part = message.get_body(preferencelist=("plain",))
    assert body_part is not None
    body = body_part.get_content().replace("\r\n", "\n")
    assert re.search(r"^InvoiceType +3 +3 +0 +0 +0$", body, re.M), body
    assert re.search(r"^Autopay +7 +3 +0 +4 +0$", body, re.M), body
    assert doc["precheck"][0] == "pre-check (autopay): 7 row(s): 4 to load, 3 refused at read, 0 repeated"
    assert "1 row(s) name accounts that do not exist" in doc["precheck"][2] and "WTR-9001-N" in doc["precheck"][2]
    for line in doc["precheck"]:
        assert line in body.splitlines()
    assert "4 row(s) did not load" in body

    attachments = {part.get_filename(): part for part in message.iter_attachments()}
    assert list(attachments) == [f"{run_id}-errors.csv"]
    attached = attachments[f"{run_id}-errors.csv"].get_payload(decode=True)
    assert isinstance(attached, bytes)
    assert attachments[f"{run_id}-errors.csv"].get_content_charset() == "utf-8", "the part names its charset"
    text = attachments[f"{run_id}-errors.csv"].get_content()
    assert text == attached.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {int(r["line"]): (r["entity"], r["outcome"], r["error_class"], r["field"], r["value"]) for r in rows} == {
        line: (entity, "dead", error_class, field, value)
        for line, (entity, _stage, error_class, field, value) in FAULTS_LETTERS.items()
    }
    assert all(r["source_file"] == AUTOPAY_FAULTS and r["error"] for r in rows)
    assert len(rows) == len(letters_by_line(cluster, AUTOPAY_FAULTS)) == 4
    for planted in FAULTS_SECRETS:
        for spelled in spellings(planted):
            assert spelled not in text and spelled not in body, f"{planted} in clear in the e-mail"


# -- 7. formula-safe CSV reports -----------------------------------------------------------------------


def test_spreadsheet_safe_keeps_plain_numbers() -> None:
    from ops.report import spreadsheet_safe

    assert spreadsheet_safe("-12.50") == "-12.50"
    assert spreadsheet_safe("+3") == "+3"
    assert spreadsheet_safe(-12.5) == -12.5
    assert spreadsheet_safe(7) == 7
    assert spreadsheet_safe(None) is None
    assert spreadsheet_safe("=1+2") == "'=1+2"
    assert spreadsheet_safe("-1+2") == "'-1+2"
    assert spreadsheet_safe("@SUM(A1)") == "'@SUM(A1)"
    assert spreadsheet_safe("\t=1") == "'\t=1"
    assert spreadsheet_safe("plain text") == "plain text"


def test_report_csv_cells_never_run_as_formulas(cluster: Cluster, tmp_path: Path) -> None:
    # Reports carry error values, not records' fields: the customer name is the account number here
    # (the recipe reads the "Customer" column), so a repeated name is a conflict whose value is the name.
    data = tmp_path / "formulas.csv"
    data.write_text(
        "Customer,Login,Email\n"
        '"=HYPERLINK(""http://x"",""y"")",hyper1,h1@example.com\n'
        '"=HYPERLINK(""http://x"",""y"")",hyper2,h2@example.com\n'
        "Bob Plain,@SUM(1),bob@example.com\n"
        "Carl Plain,@SUM(1),carl@example.com\n"
        "Dan Plain,dan,+dan@@example.com\n"
        "-42,minus1,m1@example.com\n"
        "-42,minus2,m2@example.com\n", encoding="utf-8")
    profile = write_profile(tmp_path / "formulas.yaml", {
        "import_type": "registration", "columns": {"name": "Customer", "login": "Login", "email": "Email"},
        "account_number": {"parts": [{"column": "Customer"}]}})
    cluster.start_worker()
    code, doc = cluster.run_json("run", str(data), "--profile", profile)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc) == {"Registration": (7, 3, 0, 4, 0)}
    hyperlink = '=HYPERLINK("http://x","y")'
    assert (hyperlink, "hyper1") in [(r[3], r[1]) for r in logins(cluster)]
    # the two rows with login @SUM(1) (lines 4 and 5) may load concurrently: exactly one of them wins the
    # login, and the other is dead for it
    letters = letters_by_line(cluster, str(data))
    [loser] = set(letters) & {4, 5}
    winner = {4: "Bob Plain", 5: "Carl Plain"}[9 - loser]
    assert sorted(letters) == sorted([3, loser, 6, 8])
    assert letters[loser][:4] == ("Registration", "load", "RuleViolation", "login"), letters[loser]
    assert [r[0] for r in logins(cluster) if r[1] == "@SUM(1)"] == [winner]
    assert {row[4] for row in letters.values()} == {hyperlink, "@SUM(1)", "+dan@@example.com", "-42"}, \
        "dead letters keep the values as they were"

    out = tmp_path / "report"
    done = cluster.cli("report", doc["run_id"], "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == [f"{doc['run_id']}.csv"]
    rows = list(csv.DictReader(io.StringIO((out / f"{doc['run_id']}.csv").read_text(encoding="utf-8"))))
    assert len(rows) == 7
    values = {int(r["line"]): r["value"] for r in rows if r["outcome"] == "dead"}
    assert values[3] == "'" + hyperlink
    assert values[loser] == "'@SUM(1)"
    assert values[6] == "'+dan@@example.com"
    assert values[8] == "-42", "a plain negative number is not text"
    for row in rows:
        for cell in row.values():
            assert not (cell or "").startswith(("=", "+", "@", "\t", "\r")), row


# -- 8. card and bank account numbers never in clear ---------------------------------------------------


def test_card_and_bank_numbers_never_in_clear(cluster: Cluster, tmp_path: Path) -> None:
    seed_accounts(cluster, FAULTS_OWNERS)
    cluster.start_worker()
    with RedisRecorder(cluster.env["CUTOVER_BROKER_URL"]) as recorder:
        done = cluster.cli("run", REFERENCE, AUTOPAY_FAULTS, "--profile", AUTOPAY_PROFILE)
        assert done.returncode == 3, done.stdout + done.stderr
        found = re.search(r"run (r[\w-]+): staged", done.stdout)
        assert found, done.stdout
        run_id = found.group(1)
        listed = cluster.cli("dlq", "list", "--json")
        letter_ids = [letter["id"] for letter in json.loads(listed.stdout)]
        assert len(letter_ids) == 4
        shown = [cluster.cli("dlq", "show", str(i)) for i in letter_ids]
        status = cluster.cli("status", run_id)
        reported = cluster.cli("report", run_id, "--out", str(tmp_path / "report"))
        assert reported.returncode == 0, reported.stderr
    redis_text = recorder.decoded_text()
    assert '"ids": [' in redis_text, "the recording saw the task messages"
    assert "vault:v1:" not in redis_text, "messages name their records: not even ciphertext crosses the broker"
    assert {line: row[:5] for line, row in letters_by_line(cluster, AUTOPAY_FAULTS).items()} == FAULTS_LETTERS
    payloads = [p if isinstance(p, dict) else json.loads(p) for (p,) in cluster.query(
        "SELECT payload FROM staged_records WHERE entity = 'Autopay'")]
    assert len(payloads) == 7
    for payload in payloads:
        number = payload.get("card_number") or payload.get("bank_account_number")
        assert number and number.startswith("vault:v1:"), payload

    logs = {str(p): p.read_text(errors="replace") for p in cluster.home.rglob("*.log")}
    assert logs, "the worker wrote a log"
    haystacks = {
        "redis": redis_text,
        **{f"log {name}": text for name, text in logs.items()},
        "cli": "".join(d.stdout + d.stderr for d in (done, listed, *shown, status, reported)),
        "dead letters": cluster.dump("dead_letters"),
        "staged records": cluster.dump("staged_records"),
        "payment methods": cluster.dump("payment_methods"),
        **{f"report {p.name}": p.read_text(encoding="utf-8") for p in (tmp_path / "report").iterdir()},
    }
    assert {name for name in haystacks if name.startswith("report")} == {f"report {run_id}.jsonl", f"report {run_id}.csv"}
    for where, text in haystacks.items():
        for planted in FAULTS_SECRETS:
            for spelled in spellings(planted):
                assert spelled not in text, f"{planted!r} in clear in {where} (as {spelled!r})"


# -- 9. validate, profile init and check ---------------------------------------------------------------


def test_validate_prints_the_precheck_and_writes_nothing(cluster: Cluster) -> None:
    seed_accounts(cluster, FAULTS_OWNERS)
    before = portal_counts(cluster)
    done = cluster.cli("validate", REFERENCE, AUTOPAY_FAULTS, "--profile", AUTOPAY_PROFILE)
    assert done.returncode == 3, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        "pre-check (autopay): 7 row(s): 4 to load, 3 refused at read, 0 repeated",
        "  enrols every row on each invoice type: Water Bill, Sewer Bill",
        "  1 row(s) name accounts that do not exist: these rows will be dead-lettered (continuable; run with "
        "--create-missing to create them, or import their registration and replay): WTR-9001-N",
    ]
    assert lines[-1] == "10 records checked, 4 would not load"
    for line, (entity, _stage, error_class, _field, _value) in FAULTS_LETTERS.items():
        assert any(text.startswith(f"{AUTOPAY_FAULTS}:{line}: {entity}: dead ({error_class}):") for text in lines), line
    assert portal_counts(cluster) == before
    assert control_counts(cluster) == {"runs": 0, "staged_records": 0, "dead_letters": 0}

    created = cluster.cli("validate", REFERENCE, AUTOPAY_FAULTS, "--profile", AUTOPAY_PROFILE, "--create-missing", "--json")
    assert created.returncode == 3, created.stdout + created.stderr
    findings = json.loads(created.stdout)
    assert "will be created first (--create-missing): WTR-9001-N" in findings["precheck"][-1]
    assert portal_counts(cluster) == before
    assert control_counts(cluster) == {"runs": 0, "staged_records": 0, "dead_letters": 0}


def test_profile_init_maps_the_obvious_headers(tmp_path: Path) -> None:
    out = tmp_path / "autopay.yaml"
    done = offline_cli(tmp_path, "csv", "profile", "init", AUTOPAY, "--type", "autopay", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "review it before use: check the account_number recipe and fill in invoice_types" in done.stdout
    written = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert written["import_type"] == "autopay"
    assert written["columns"] == profile_doc(AUTOPAY_PROFILE)["columns"], "every header of the file is obvious"
    assert written["account_number"] == {"prefix": "", "parts": [{"column": "Account Number"}]}
    assert written["invoice_types"] == ["FILL IN: an invoice type name"]

    again = offline_cli(tmp_path, "csv", "profile", "init", AUTOPAY, "--type", "autopay", "--out", str(out))
    assert again.returncode == 4 and "--force" in again.stderr, "an existing profile is not overwritten"

    # a file with a BOM: the first header is "Account Number", not "\ufeffAccount Number"
    registration = tmp_path / "registration.yaml"
    done = offline_cli(tmp_path, "csv", "profile", "init", REGISTRATION, "--type", "registration", "--out",
                       str(registration))
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load(registration.read_text(encoding="utf-8"))
    assert written["columns"] == {"name": "Customer Name", "login": "Login", "email": "E-mail", "phone": "Phone",
                                  "address": "Service Address"}
    assert written["account_number"]["parts"] == [{"column": "Account Number"}]
    assert "invoice_types" not in written


def test_profile_check_fails_until_the_placeholders_are_filled(tmp_path: Path) -> None:
    data = tmp_path / "paperless.csv"
    data.write_text("Cust Ref,Full Name,Email Address\nX1,Ann,ann@example.com\n", encoding="utf-8")
    profile = tmp_path / "paperless.yaml"
    done = offline_cli(tmp_path, "csv", "profile", "init", str(data), "--type", "paperless", "--out", str(profile))
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load(profile.read_text(encoding="utf-8"))
    assert written["columns"] == {"name": "Full Name", "email": "Email Address"}
    assert written["account_number"] == {"prefix": "", "parts": [{"column": "FILL IN: account number header"}]}
    assert written["invoice_types"] == ["FILL IN: an invoice type name"]

    for args in ((str(profile), str(data)), (str(profile),)):
        check = offline_cli(tmp_path, "csv", "profile", "check", *args)
        assert check.returncode == 4, check.stdout
        assert "'FILL IN: account number header'" in check.stderr

    written["account_number"] = {"prefix": "P-", "parts": [{"column": "Cust Ref"}]}
    write_profile(profile, written)
    check = offline_cli(tmp_path, "csv", "profile", "check", str(profile), str(data))
    assert check.returncode == 4, check.stdout
    assert "invoice_types[0] still says 'FILL IN: an invoice type name'" in check.stderr

    written["invoice_types"] = ["Water Bill"]
    write_profile(profile, written)
    check = offline_cli(tmp_path, "csv", "profile", "check", str(profile), str(data))
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == (f"{profile}: paperless profile, 2 column(s) mapped, enrols on Water Bill; "
                                    f"{data} has every column it maps")


def test_profile_init_does_not_take_the_customer_name_for_the_account_number(tmp_path: Path) -> None:
    data = tmp_path / "paperless.csv"
    data.write_text("Cust Ref,Customer Name,Email Address\nX1,Ann,ann@example.com\n", encoding="utf-8")
    profile = tmp_path / "paperless.yaml"
    done = offline_cli(tmp_path, "csv", "profile", "init", str(data), "--type", "paperless", "--out", str(profile))
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load(profile.read_text(encoding="utf-8"))
    assert written["columns"] == {"name": "Customer Name", "email": "Email Address"}
    assert written["account_number"]["parts"] == [{"column": "FILL IN: account number header"}], \
        "no header looks like an account number: a placeholder to fill in, not the customer name"
    assert "no column was found for account_number" in done.stdout


def test_profile_tools_read_a_bom_file_as_run_does(tmp_path: Path) -> None:
    """The registration profile says `encoding: utf-8` and its file starts with a BOM, as `run` reads it."""
    check = offline_cli(tmp_path, "csv", "profile", "check", REGISTRATION_PROFILE, REGISTRATION)
    assert check.returncode == 0, check.stderr
    out = tmp_path / "registration.yaml"
    done = offline_cli(tmp_path, "csv", "profile", "init", REGISTRATION, "--type", "registration", "--encoding", "utf-8",
                       "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["account_number"]["parts"] == [{"column": "Account Number"}]
