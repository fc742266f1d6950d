"""`CUTOVER_VAULT_PREVIOUS_KEYS` as configuration.md describes it: comma-separated, oldest first, blanks
and spaces ignored, every key still opens what it sealed, and the keyed digests behind idempotency keys
come from the FIRST (oldest) key, not from the last or the current one. Three generations of keys, so
the first cannot be mistaken for the last."""

from __future__ import annotations

import base64
import os

import pytest

from shared.errors import ConfigError
from shared.settings import Settings
from shared.vault import Vault, previous_keys

SECRET = "4012888888881881"


def encoded(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


@pytest.fixture
def generations() -> tuple[bytes, bytes, bytes]:
    return os.urandom(32), os.urandom(32), os.urandom(32)


def test_previous_keys_are_parsed_oldest_first_with_blanks_and_spaces_ignored(
        generations: tuple[bytes, bytes, bytes]) -> None:
    oldest, middle, _ = generations
    settings = Settings(vault_previous_keys=f" {encoded(oldest)} ,, {encoded(middle)},")
    assert previous_keys(settings) == (oldest, middle)
    assert previous_keys(Settings()) == ()


def test_a_previous_key_that_is_not_base64_or_not_32_bytes_is_refused() -> None:
    with pytest.raises(ConfigError, match="CUTOVER_VAULT_PREVIOUS_KEYS holds a key that is not urlsafe base64"):
        previous_keys(Settings(vault_previous_keys="not base64!"))
    short = encoded(os.urandom(16))
    with pytest.raises(ConfigError, match="32 bytes"):
        Vault.from_settings(Settings(vault_key=encoded(os.urandom(32)), vault_previous_keys=short))


def test_every_generation_opens_and_digests_come_from_the_first_key(generations: tuple[bytes, bytes, bytes]) -> None:
    oldest, middle, current = generations
    sealed = {name: Vault(key).encrypt(SECRET) for name, key in (("oldest", oldest), ("middle", middle))}
    vault = Vault.from_settings(Settings(vault_key=encoded(current),
                                         vault_previous_keys=f"{encoded(oldest)},{encoded(middle)}"))
    assert {name: vault.decrypt(token) for name, token in sealed.items()} == {"oldest": SECRET, "middle": SECRET}
    assert Vault(current).decrypt(vault.encrypt(SECRET)) == SECRET, "new secrets are sealed under the current key"

    digest = vault.digest(SECRET)
    assert digest == Vault(oldest).digest(SECRET), "the digest key is the oldest one listed"
    assert digest != Vault(middle).digest(SECRET) and digest != Vault(current).digest(SECRET)
    # listed the other way round, the first listed key derives the digest: the order is the operator's promise
    reversed_order = Vault(current, previous=(middle, oldest))
    assert reversed_order.digest(SECRET) == Vault(middle).digest(SECRET) != digest
