"""The console's parts that need no browser: upload names, folders and the keeping rule, the order of
the import screens, the profile an import amounts to (the one format `--profile` reads), operators,
sign-ins and the sign-in throttle (on a real SQLite database), and `cutover config` hiding the
metrics token."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from ops.web import auth, drafts
from ops.web.uploads import private_folder, remove_csv_files, safe_name, sweep
from producer.readers.csv_profile import load_profile
from shared.db import ensure_schema, session_factory
from shared.errors import ConfigError
from shared.schema.console import ConsoleImport

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "csv"


def test_upload_names_keep_only_the_last_plain_component() -> None:
    assert safe_name("autopay.csv") == "autopay.csv"
    assert safe_name("C:\\exports\\June run\\autopay (1).csv") == "autopay _1_.csv"
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..") == "upload.csv" and safe_name("") == "upload.csv"


def test_private_folders_and_the_keeping_rule(tmp_path: Path) -> None:
    root = private_folder(tmp_path / "home" / "console" / "uploads")
    for folder in (root, root.parent):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    for name in ("open1", "started1", "cancelled1", "stranger"):
        private_folder(root / name)
        (root / name / "data.csv").write_text("a,b\n")
        (root / name / "profile.yaml").write_text("import_type: paperless\n")
    sweep(root, {"open1": "open", "started1": "started", "cancelled1": "cancelled"})
    assert sorted(p.name for p in root.iterdir()) == ["open1", "started1"]
    assert sorted(p.name for p in (root / "open1").iterdir()) == ["data.csv", "profile.yaml"]
    assert [p.name for p in (root / "started1").iterdir()] == ["profile.yaml"], "a started import keeps its mapping only"
    remove_csv_files(root / "open1")
    assert [p.name for p in (root / "open1").iterdir()] == ["profile.yaml"]


def _draft(tmp_path: Path, **answers: object) -> ConsoleImport:
    upload = tmp_path / "autopay.csv"
    upload.write_bytes((EXAMPLES / "autopay.csv").read_bytes())
    draft = ConsoleImport(id="d1", operator="alice", biller="Millbrook", import_type="autopay", file_path=str(upload),
                          file_name="autopay.csv", headers=drafts.headers_of(upload, None), invoice_types=[], columns={},
                          parts=[], prefix="", precheck=None)
    for name, value in answers.items():
        setattr(draft, name, value)
    return draft


def test_screens_open_in_order_and_a_change_forgets_what_follows(tmp_path: Path) -> None:
    draft = _draft(tmp_path)
    assert drafts.first_missing(draft) == "invoice-types"
    assert [s for s, _ in drafts.steps_for("registration")].count("invoice-types") == 0
    draft.invoice_types = ["Water Bill"]
    assert drafts.first_missing(draft) == "mapping" and not drafts.reachable(draft, "order")
    draft.columns, draft.parts = drafts.guess(Path(str(draft.file_path)), "autopay", None)
    assert draft.columns["card_number"] == "Card Number" and draft.parts == [{"column": "Account Number"}]
    assert drafts.first_missing(draft) == "order"
    draft.precheck = {"blocking": "no"}
    assert drafts.first_missing(draft) == "precheck"
    draft.precheck = {"blocking": None}
    assert drafts.first_missing(draft) == "review" and drafts.reachable(draft, "review")
    drafts.forget_from(draft, "file")
    assert draft.columns == {} and draft.parts == [] and draft.precheck is None and draft.invoice_types == ["Water Bill"]
    drafts.forget_from(draft, "type")
    assert draft.invoice_types == []


def test_an_import_amounts_to_a_profile_the_command_line_reads(tmp_path: Path) -> None:
    example = load_profile(EXAMPLES / "autopay.yaml")
    draft = _draft(tmp_path, invoice_types=["Water Bill", "Sewer Bill"])
    assert drafts.apply_profile(draft, example) == []
    built = drafts.build_profile(draft)
    saved = drafts.write_profile(built, tmp_path / "saved.yaml", "a test")
    again = load_profile(saved)
    assert (again.import_type, again.columns, again.prefix, again.parts, again.invoice_types) == (
        example.import_type, example.columns, example.prefix, example.parts, example.invoice_types)
    assert saved.stat().st_mode & 0o777 == 0o600
    draft.parts = [{"column": "Card Number"}]
    with pytest.raises(ConfigError, match="holds card or bank account numbers"):
        drafts.build_profile(draft)
    draft.parts = [{"literal": "WTR-"}]
    with pytest.raises(ConfigError, match="needs at least one column"):
        drafts.check_parts(draft)
    draft.parts = [{"column": "Card Number"}]
    assert drafts.preview_numbers(draft) == [], "no preview from a secret column"
    with pytest.raises(ConfigError, match="is mapped to card_number: it cannot also be name_on_card"):
        drafts.check_columns("autopay", {**example.columns, "name_on_card": "Card Number"})
    shared_number = {**example.columns, "card_number": "Number", "bank_account_number": "Number"}
    drafts.check_columns("autopay", shared_number)  # one column for either number: both stay secret
    with pytest.raises(ConfigError, match="card fields .* or the ACH fields"):
        drafts.check_columns("autopay", {"payment_method": "Pay Method"})
    with pytest.raises(ConfigError, match="profile name"):
        drafts.save_named(tmp_path / "profiles", "../evil", built, "alice", datetime(2026, 1, 1), False)


def test_operators_passwords_and_sign_ins(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    ensure_schema(url)
    sf = session_factory(url)
    assert auth.add_operator(sf, "alice", "a long enough password") is True
    with pytest.raises(ConfigError, match="exists; use --reset"):
        auth.add_operator(sf, "alice", "another long password")
    with pytest.raises(ConfigError, match="at least 10 characters"):
        auth.add_operator(sf, "bob", "short")
    with pytest.raises(ConfigError, match="operator name"):
        auth.add_operator(sf, "bob smith", "a long enough password")
    stored = auth.list_operators(sf)[0]
    assert stored.password_hash.startswith("$argon2id$") and "a long enough password" not in stored.password_hash
    assert auth.verify(sf, "alice", "a wrong password") is None and auth.verify(sf, "nobody", "x") is None
    operator = auth.verify(sf, "alice", "a long enough password")
    assert operator is not None
    token = auth.open_session(sf, operator, hours=1)
    found = auth.find_session(sf, token)
    assert found is not None and found.operator == "alice" and len(found.csrf) >= 32
    assert found.token_hash != token, "only the token's hash is stored"
    assert auth.find_session(sf, token + "x") is None
    assert auth.add_operator(sf, "alice", "a brand new password", reset=True) is False
    assert auth.find_session(sf, token) is None, "a new password ends the sign-ins"
    auth.remove_operator(sf, "alice")
    assert auth.list_operators(sf) == []


def test_the_throttle_refuses_a_name_after_five_failures() -> None:
    throttle = auth.Throttle(limit=5, window=60)
    for _ in range(4):
        throttle.failed("Alice")
    assert not throttle.blocked("alice")
    throttle.failed("alice")
    assert throttle.blocked("ALICE") and not throttle.blocked("bob")
    throttle.succeeded("alice")
    assert not throttle.blocked("alice")


def test_cutover_config_hides_the_metrics_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    env.update({"CUTOVER_HOME": str(tmp_path), "CUTOVER_CONSOLE_METRICS_TOKEN": "tok-9f8e7d"})
    done = subprocess.run([sys.executable, "-m", "ops.cli", "config"], env=env, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("CUTOVER_CONSOLE_METRICS_TOKEN"))
    assert "«set»" in line and "tok-9f8e7d" not in done.stdout
    assert "CUTOVER_CONSOLE_UPLOAD_MAX_MB" in done.stdout
