"""Operators and their permissions: ``name=perm+perm`` pairs separated by ``;`` (spaces, empty
permission lists, unknown permissions and malformed entries); the policy with no operators configured
(everything allowed), an operator without ``import`` (paperless only), an operator not listed when
some are (nothing but paperless), and the message that refuses them."""

from __future__ import annotations

import pytest

from producer.readers.csv_profile import IMPORT_TYPES
from shared.errors import ConfigError
from shared.permissions import (
    DISCARD,
    IMPORT,
    OPEN_TO_ALL,
    PERMISSIONS,
    REPLAY,
    NotPermitted,
    Policy,
    current_operator,
    parse_operators,
)
from shared.settings import Settings


def policy(text: str) -> Policy:
    return Policy.from_settings(Settings(operators=text))


def allowed(p: Policy, operator: str) -> list[str]:
    """The import types ``operator`` may run, in contract order."""
    return [t for t in IMPORT_TYPES if p.may_import(operator, t)]


# --- parse_operators --------------------------------------------------------------------------------


def test_parse_operators() -> None:
    assert parse_operators("alice=import; bob=") == {"alice": frozenset({IMPORT}), "bob": frozenset()}


@pytest.mark.parametrize("text", ["alice=import;bob=", "  alice = import ;  bob =  ", "alice=import+;bob=;;",
                                  "alice=import + import; bob= + ", "\talice=import;\n bob="])
def test_parse_operators_ignores_spaces_and_empty_entries(text: str) -> None:
    assert parse_operators(text) == {"alice": frozenset({IMPORT}), "bob": frozenset()}


@pytest.mark.parametrize("text", ["", "   ", ";", " ; ; "])
def test_no_operators(text: str) -> None:
    assert parse_operators(text) == {}


def test_empty_permissions_are_an_empty_set() -> None:
    assert parse_operators("carol=") == {"carol": frozenset()}


@pytest.mark.parametrize("text", ["alice=admin", "alice=import+admin", "alice=IMPORT", "alice=import; bob=export"])
def test_unknown_permission_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="unknown permission") as caught:
        parse_operators(text)
    assert "known: import" in str(caught.value)


def test_unknown_permission_names_it_and_the_operator() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_operators("alice=import; bob=export")
    assert "'export'" in str(caught.value) and "'bob'" in str(caught.value)


@pytest.mark.parametrize("text", ["alice", "alice=import; bob", "=import", "  = import", "alice:import"])
def test_malformed_entry_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="is not name=permissions"):
        parse_operators(text)


def test_bad_operators_setting_is_refused_when_the_policy_is_built() -> None:
    with pytest.raises(ConfigError):
        policy("alice=root")


# --- Policy -----------------------------------------------------------------------------------------


def test_no_operators_configured_allows_everything() -> None:
    p = policy("")
    assert p.operators == {}
    assert allowed(p, "anyone") == list(IMPORT_TYPES)
    assert p.permissions_of("anyone") == frozenset(PERMISSIONS) == frozenset({IMPORT, REPLAY, DISCARD})
    for import_type in IMPORT_TYPES:
        p.check_import("anyone", import_type)


def test_operator_with_import_may_run_every_import_type() -> None:
    p = policy("alice=import; bob=")
    assert allowed(p, "alice") == list(IMPORT_TYPES)


def test_operator_without_import_may_run_only_paperless() -> None:
    p = policy("alice=import; bob=")
    assert allowed(p, "bob") == ["paperless"]
    assert OPEN_TO_ALL == ("paperless",)
    p.check_import("bob", "paperless")
    for import_type in ("registration", "autopay"):
        with pytest.raises(NotPermitted):
            p.check_import("bob", import_type)


def test_operator_not_listed_has_no_permissions_when_some_are_configured() -> None:
    p = policy("alice=import")
    assert p.permissions_of("mallory") == frozenset()
    assert allowed(p, "mallory") == ["paperless"]
    assert p.permissions_of("Alice") == frozenset(), "operator names are matched exactly"


def test_not_permitted_names_the_operator_and_the_permission() -> None:
    with pytest.raises(NotPermitted) as caught:
        policy("alice=import; bob=").check_import("bob", "autopay")
    message = str(caught.value)
    assert "operator 'bob'" in message and "autopay" in message
    assert "'import' permission" in message and "only paperless" in message
    assert isinstance(caught.value, ConfigError)


def test_current_operator_is_the_setting_or_the_system_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "zed")
    assert current_operator(Settings(operator="alice")) == "alice"
    assert current_operator(Settings()) == "zed"


def test_replay_and_discard_are_rights_of_their_own() -> None:
    p = policy("alice=import+replay+discard; bob=import; carol=replay")
    assert [p.may(name, REPLAY) for name in ("alice", "bob", "carol", "dave")] == [True, False, True, False]
    assert [p.may(name, DISCARD) for name in ("alice", "bob", "carol", "dave")] == [True, False, False, False]
    with pytest.raises(NotPermitted, match="'bob' may not replay dead letters: they need the 'replay' permission"):
        p.check("bob", REPLAY, "replay dead letters")
    p.check("carol", REPLAY, "replay dead letters")
