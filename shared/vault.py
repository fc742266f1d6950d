"""Secrets (passwords, later card and bank numbers) are encrypted by the producer before any message
is published, so Redis, task arguments (Flower), logs, dead letters and reports only ever hold
ciphertext. Workers decrypt at the last moment (to hash a password, or to store ciphertext).

AES-256-GCM from ``cryptography``. The key is ``CUTOVER_VAULT_KEY`` or, on first use, generated into
``$CUTOVER_HOME/vault.key`` with owner-only permissions. Workers on other machines need the same key.

Rotation: set the new key, list the old ones in ``CUTOVER_VAULT_PREVIOUS_KEYS`` (oldest first) so
anything sealed before still opens, and run `cutover vault rotate` to seal the stored secrets
(target payment methods, staged records still to load or replay) under the new key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import ConfigError, InvalidValue
from shared.settings import Settings

PREFIX = "vault:v1:"
SECRET_MASK = "«secret»"
"""What reports, dead letters and the CLI show in place of a secret value."""


class Vault:
    """Encrypts and decrypts field values; computes keyed digests for idempotency keys."""

    def __init__(self, key: bytes, previous: tuple[bytes, ...] = ()) -> None:
        for candidate in (key, *previous):
            if len(candidate) != 32:
                raise ConfigError("a vault key must be 32 bytes (urlsafe base64 of 32 random bytes)")
        self._aead = AESGCM(key)
        self._older = [AESGCM(k) for k in reversed(previous)]
        # The digest key comes from the first key ever used, so idempotency keys of records with
        # secrets survive a rotation (a re-run after rotating still finds them in the ledger).
        self._mac_key = hashlib.sha256(b"cutover-digest" + (previous[0] if previous else key)).digest()

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return cls(load_or_create_key(settings), previous_keys(settings))

    def encrypt(self, clear: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, clear.encode(), None)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str) -> str:
        if not token.startswith(PREFIX):
            raise InvalidValue("secret field is not vault ciphertext", value="«not shown»")
        try:
            raw = base64.urlsafe_b64decode(token[len(PREFIX):])
        except ValueError:
            raw = b""
        for aead in (self._aead, *self._older):
            try:
                return aead.decrypt(raw[:12], raw[12:], None).decode()
            except (InvalidTag, ValueError):
                continue
        raise InvalidValue("secret cannot be decrypted with this vault key or the previous ones (damaged, or the key "
                           "was rotated without listing the old key in CUTOVER_VAULT_PREVIOUS_KEYS?)",
                           value="«not shown»")

    def reencrypt(self, token: str) -> str:
        """The same secret under the current key (for `cutover vault rotate`)."""
        return self.encrypt(self.decrypt(token))

    def digest(self, clear: str) -> str:
        """Keyed digest: lets equal secrets give equal idempotency keys without revealing them."""
        return "hmac:" + hmac.new(self._mac_key, clear.encode(), hashlib.sha256).hexdigest()


def previous_keys(settings: Settings) -> tuple[bytes, ...]:
    """Keys used before a rotation, oldest first (``vault_previous_keys``, comma-separated)."""
    out = []
    for text in filter(None, (k.strip() for k in settings.vault_previous_keys.split(","))):
        try:
            out.append(base64.urlsafe_b64decode(text))
        except ValueError as exc:
            raise ConfigError("CUTOVER_VAULT_PREVIOUS_KEYS holds a key that is not urlsafe base64") from exc
    return tuple(out)


def load_or_create_key(settings: Settings) -> bytes:
    if settings.vault_key:
        try:
            return base64.urlsafe_b64decode(settings.vault_key)
        except ValueError as exc:
            raise ConfigError("CUTOVER_VAULT_KEY is not urlsafe base64") from exc
    path = Path(settings.home) / "vault.key"
    if not path.exists():
        _create_key_file(path)
    return base64.urlsafe_b64decode(path.read_text().strip())


def _create_key_file(path: Path) -> None:
    """Written aside, then linked into place: processes starting together agree on one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".vault.key.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.urlsafe_b64encode(os.urandom(32)).decode())
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process won; use its key
    finally:
        draft.unlink(missing_ok=True)
