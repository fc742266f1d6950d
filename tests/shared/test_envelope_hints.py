"""Envelope content keys (idempotency) and near-miss hints."""

from __future__ import annotations

import difflib
import json

from shared.envelope import (
    KEY_SEPARATOR,
    Envelope,
    canonical_content,
    content_digest,
    idempotency_key,
    natural_key_text,
    show_key,
)
from shared.errors import Position
from shared.hints import did_you_mean, hint_for

# --- canonical content and keys ---------------------------------------------------------------------


def test_canonical_content_ignores_attribute_order() -> None:
    a = {"Name": "bob", "Owner": "admin", "BillDay": "4"}
    b = {"BillDay": "4", "Owner": "admin", "Name": "bob"}
    assert list(a) != list(b)
    assert canonical_content("User", a) == canonical_content("User", b)
    assert content_digest("User", a) == content_digest("User", b)


def test_canonical_content_depends_on_entity_names_and_values() -> None:
    fields = {"Name": "bob", "Owner": "admin"}
    base = content_digest("User", fields)
    assert content_digest("Owner", fields) != base
    assert content_digest("User", {"Name": "bob", "Owner": "admin2"}) != base
    assert content_digest("User", {"Name": "bob", "Owner": "admin", "BillDay": "4"}) != base
    # Moving a value to another attribute is different content.
    assert content_digest("User", {"Name": "admin", "Owner": "bob"}) != base


def test_canonical_content_cannot_be_confused_by_separators() -> None:
    # Naive concatenation would make these equal.
    assert content_digest("X", {"a": "b,c"}) != content_digest("X", {"a": "b", "c": ""})
    assert content_digest("X", {"a": "1\x1f2"}) != content_digest("X", {"a": "1", "2": ""})


def test_canonical_content_is_stable_bytes_keeping_non_ascii() -> None:
    content = canonical_content("Contact", {"ContactName": "Zoë & Søn"})
    assert "Zoë & Søn".encode() in content
    assert json.loads(content) == ["Contact", [["ContactName", "Zoë & Søn"]]]
    assert len(content_digest("Contact", {"ContactName": "x"})) == 64


def test_idempotency_key_differs_by_occurrence() -> None:
    digest = content_digest("Debit", {"User": "bob", "Debit": "10.00"})
    keys = [idempotency_key(digest, n) for n in range(1, 4)]
    assert len(set(keys)) == 3, "two identical ledger lines are two records"
    assert idempotency_key(digest, 1) == keys[0], "a re-run gives the same key to the same occurrence"
    other = content_digest("Debit", {"User": "bob", "Debit": "10.01"})
    assert idempotency_key(other, 1) != keys[0]


def test_natural_key_text_and_show_key() -> None:
    fields = {"User": "bob", "ContactName": "Billing", "Other": "x"}
    text = natural_key_text(fields, ("User", "ContactName"))
    assert text == f"bob{KEY_SEPARATOR}Billing"
    assert show_key(text) == "bob / Billing"
    assert natural_key_text({"User": "bob"}, ("User", "ContactName")) == f"bob{KEY_SEPARATOR}"


def test_envelope_message_round_trip_and_label() -> None:
    envelope = Envelope(run_id="r1", record_id=7, entity="User", key="k", digest="d",
                        position=Position("accounts.xml", 12), fields={"Name": "bob", "Owner": "admin"}, upsert=True)
    message = envelope.to_message()
    assert json.loads(json.dumps(message)) == message, "messages are plain JSON"
    assert Envelope.from_message(message) == envelope
    assert envelope.label(("Name",)) == "User 'bob' (accounts.xml:12)"
    assert envelope.label(()) == "User '#7' (accounts.xml:12)"


# --- hints ------------------------------------------------------------------------------------------


def test_did_you_mean_prefers_a_case_only_match() -> None:
    # By spelling alone "residential2" / "usser" are closer than the case-only match; the case match wins.
    assert difflib.get_close_matches("residential", ["residential2", "Residential"], n=1) == ["residential2"]
    assert did_you_mean("residential", ["residential2", "Residential"]) == "Residential"
    assert difflib.get_close_matches("user", ["usser", "User"], n=1) == ["usser"]
    assert did_you_mean("user", ["usser", "User"]) == "User"
    assert did_you_mean("RESIDENTIAL", ["Residental", "Residential"]) == "Residential"


def test_did_you_mean_falls_back_to_close_spellings() -> None:
    assert did_you_mean("Residental", ["Residential", "Commercial"]) == "Residential"
    assert did_you_mean("Contcat", ["Contact", "Company"]) == "Contact"


def test_did_you_mean_returns_none_without_a_near_miss() -> None:
    assert did_you_mean("Zebra", ["User", "Contact"]) is None
    assert did_you_mean("user", []) is None


def test_hint_for_case_only_says_names_are_case_sensitive() -> None:
    hint = hint_for("user", ["Contact", "User"])
    assert hint is not None
    assert "case-sensitive" in hint
    assert "did you mean 'User'" in hint


def test_hint_for_typo_does_not_blame_case() -> None:
    hint = hint_for("Residental", ["Residential"])
    assert hint == "did you mean 'Residential'?"
    assert "case" not in hint


def test_hint_for_without_a_near_miss_is_none() -> None:
    assert hint_for("Zebra", ["User", "Contact"]) is None


def test_hint_for_accepts_any_iterable_of_names() -> None:
    assert "'ContactName'" in (hint_for("contactName", {"ContactName": "text"}) or "")
    assert "'User'" in (hint_for("user", (n for n in ["User"])) or "")
