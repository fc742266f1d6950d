"""Passwords are stored only as a slow, salted hash, made the way the ``password_hash`` setting says:

* ``argon2id`` (default) with the parameters the settings state — by default OWASP's minimum for
  Argon2id (19 MiB of memory, 2 passes, 1 lane): tens of milliseconds a password, where RFC 9106's
  low-memory profile (64 MiB, 3 passes, 4 lanes) costs several times more;
* ``bcrypt`` with ``bcrypt_cost`` (passwords over 72 bytes are refused: bcrypt would cut them);
* ``keep``: the source's ``Password`` already holds a hash (``$argon2id$…``, ``$2b$…``) and is
  stored as is; anything else is refused.

Verifying accepts any of these formats, so a re-run compares a stored password whatever made it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import bcrypt
from argon2 import PasswordHasher

from shared.errors import InvalidValue
from shared.settings import Settings, load_settings

KEPT_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$", "$2b$", "$2a$", "$2y$")
BCRYPT_MAX_BYTES = 72


@dataclass(frozen=True)
class PasswordPolicy:
    scheme: str
    argon2: PasswordHasher
    bcrypt_cost: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        return cls(settings.password_hash,
                   PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib,
                                  parallelism=settings.argon2_parallelism),
                   settings.bcrypt_cost)

    def hash(self, clear: str) -> str:
        if self.scheme == "keep":
            if not clear.startswith(KEPT_PREFIXES):
                raise InvalidValue("Password is not a hash cutover recognises, and password_hash is keep",
                                   field="Password", value=clear,
                                   hint=f"with password_hash = keep, Password holds a hash ({', '.join(KEPT_PREFIXES)}…); "
                                        "set password_hash to argon2id or bcrypt to hash clear passwords")
            return clear
        if self.scheme == "bcrypt":
            raw = clear.encode()
            if len(raw) > BCRYPT_MAX_BYTES:
                raise InvalidValue(f"Password is {len(raw)} bytes long; bcrypt hashes at most {BCRYPT_MAX_BYTES}",
                                   field="Password", value=clear, hint="use password_hash = argon2id for longer passwords")
            return bcrypt.hashpw(raw, bcrypt.gensalt(self.bcrypt_cost)).decode()
        return self.argon2.hash(clear)

    def verify(self, stored: str, clear: str) -> bool:
        """Whether ``clear`` is the password ``stored`` was made from (or, under ``keep``, is ``stored``)."""
        if self.scheme == "keep":
            return stored == clear
        try:
            if stored.startswith(("$2b$", "$2a$", "$2y$")):
                return bcrypt.checkpw(clear.encode(), stored.encode())
            return self.argon2.verify(stored, clear)
        except Exception:
            return False


@lru_cache(maxsize=1)
def policy() -> PasswordPolicy:
    return PasswordPolicy.from_settings(load_settings())


def hash_password(clear: str) -> str:
    return policy().hash(clear)


def verify_password(stored_hash: str, clear: str) -> bool:
    return policy().verify(stored_hash, clear)
