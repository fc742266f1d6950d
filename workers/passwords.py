"""Passwords are stored only as a slow, salted hash (Argon2id, RFC 9106 low-memory profile)."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


def hash_password(clear: str) -> str:
    return _hasher().hash(clear)


def verify_password(stored_hash: str, clear: str) -> bool:
    try:
        return _hasher().verify(stored_hash, clear)
    except Exception:
        return False
