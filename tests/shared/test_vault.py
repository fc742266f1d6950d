"""The vault: secrets travel as AES-GCM ciphertext; digests are keyed."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from shared.errors import ConfigError, InvalidValue
from shared.settings import Settings
from shared.vault import PREFIX, Vault, load_or_create_key

SECRET = "alice-PW-7781 & ünïcode"


def _key() -> bytes:
    return os.urandom(32)


def test_round_trip() -> None:
    vault = Vault(_key())
    token = vault.encrypt(SECRET)
    assert token.startswith(PREFIX)
    assert vault.decrypt(token) == SECRET
    assert vault.decrypt(vault.encrypt("")) == ""


def test_ciphertext_hides_the_clear_text_and_differs_each_time() -> None:
    vault = Vault(_key())
    tokens = {vault.encrypt(SECRET) for _ in range(20)}
    assert len(tokens) == 20, "a fresh nonce every time"
    for token in tokens:
        assert "alice" not in token and "7781" not in token
        assert SECRET.encode().hex() not in token
        assert base64.urlsafe_b64encode(SECRET.encode()).decode()[:8] not in token


def test_another_vault_with_the_same_key_decrypts() -> None:
    key = _key()
    assert Vault(key).decrypt(Vault(key).encrypt(SECRET)) == SECRET


def test_digest_is_stable_for_the_same_key() -> None:
    key = _key()
    first, second = Vault(key).digest(SECRET), Vault(key).digest(SECRET)
    assert first == second
    assert first.startswith("hmac:")
    assert "alice" not in first
    assert Vault(key).digest("other") != first


def test_digest_differs_between_keys() -> None:
    assert Vault(_key()).digest(SECRET) != Vault(_key()).digest(SECRET)


def test_wrong_key_is_invalid_value_without_the_secret() -> None:
    token = Vault(_key()).encrypt(SECRET)
    with pytest.raises(InvalidValue) as caught:
        Vault(_key()).decrypt(token)
    err = caught.value
    for text in (str(err), repr(err), err.describe(), str(err.value), str(err.hint)):
        assert SECRET not in text
        assert "alice" not in text
    assert "key" in str(err)


def test_tampered_ciphertext_is_invalid_value() -> None:
    vault = Vault(_key())
    token = vault.encrypt(SECRET)
    raw = bytearray(base64.urlsafe_b64decode(token[len(PREFIX):]))
    raw[-1] ^= 0x01
    with pytest.raises(InvalidValue):
        vault.decrypt(PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode())


def test_clear_text_is_not_accepted_as_ciphertext() -> None:
    with pytest.raises(InvalidValue) as caught:
        Vault(_key()).decrypt(SECRET)
    assert SECRET not in str(caught.value) and SECRET not in str(caught.value.value)


@pytest.mark.parametrize("token", [PREFIX + "abc", PREFIX + base64.urlsafe_b64encode(b"short").decode()])
def test_malformed_ciphertext_is_invalid_value(token: str) -> None:
    with pytest.raises(InvalidValue):
        Vault(_key()).decrypt(token)


def test_key_must_be_32_bytes() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        Vault(b"x" * 16)


def test_key_is_generated_into_home_owner_only_and_reused(tmp_path: Path) -> None:
    home = tmp_path / "home" / "nested"
    settings = Settings(home=home)
    key = load_or_create_key(settings)
    path = home / "vault.key"
    assert path.is_file()
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(settings) == key, "the key is reused, not regenerated"
    assert base64.urlsafe_b64decode(path.read_text().strip()) == key
    # A vault built later from the same home decrypts what an earlier one encrypted.
    token = Vault.from_settings(settings).encrypt(SECRET)
    assert Vault.from_settings(Settings(home=home)).decrypt(token) == SECRET


def test_two_homes_get_different_keys(tmp_path: Path) -> None:
    assert load_or_create_key(Settings(home=tmp_path / "a")) != load_or_create_key(Settings(home=tmp_path / "b"))


def test_configured_key_wins_and_nothing_is_written(tmp_path: Path) -> None:
    key = _key()
    settings = Settings(home=tmp_path / "home", vault_key=base64.urlsafe_b64encode(key).decode())
    assert load_or_create_key(settings) == key
    assert not (tmp_path / "home" / "vault.key").exists()


def test_configured_key_that_is_not_base64_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_or_create_key(Settings(home=tmp_path, vault_key="abc"))


def test_configured_key_of_the_wrong_length_is_a_config_error(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, vault_key=base64.urlsafe_b64encode(b"k" * 16).decode())
    with pytest.raises(ConfigError, match="32 bytes"):
        Vault.from_settings(settings)


def test_rotation_keeps_old_secrets_readable_and_digests_stable() -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    before = Vault(old_key)
    sealed = before.encrypt("4111111111111111")
    rotated = Vault(new_key, previous=(old_key,))
    assert rotated.decrypt(sealed) == "4111111111111111", "a secret sealed before the rotation still opens"
    resealed = rotated.reencrypt(sealed)
    assert Vault(new_key).decrypt(resealed) == "4111111111111111", "re-sealed secrets need only the new key"
    with pytest.raises(InvalidValue, match="PREVIOUS_KEYS"):
        Vault(new_key).decrypt(sealed)
    assert rotated.digest("4111111111111111") == before.digest("4111111111111111"), \
        "idempotency keys of records with secrets survive a rotation"
