"""Operators and their sign-ins. Passwords are stored only as Argon2id hashes (argon2-cffi, as the
loaders hash account passwords); a sign-in is a random token in an ``HttpOnly`` cookie whose SHA-256
is the session's key in the database, with a CSRF token of its own that every form carries."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from shared.errors import ConfigError
from shared.schema.base import utcnow
from shared.schema.console import ConsoleOperator, ConsoleSession

MIN_PASSWORD = 10
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password anyone has")
"""Verified against when the name is unknown, so a wrong name takes as long as a wrong password."""


@dataclass(frozen=True)
class SignedIn:
    """The operator behind a request, and the CSRF token their forms must carry."""

    operator: str
    csrf: str
    token_hash: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ConfigError(f"operator name {name!r}: use letters, digits and . _ @ - (up to 64, starting with a letter or digit)")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password needs at least {MIN_PASSWORD} characters")
    return password


def add_operator(sf: sessionmaker[Session], name: str, password: str, *, reset: bool = False) -> bool:
    """Create the operator, or with ``reset`` give an existing one a new password (and end their
    sign-ins). Returns True when the operator is new."""
    check_name(name)
    hashed = _HASHER.hash(check_password(password))
    with sf.begin() as session:
        existing = session.scalar(select(ConsoleOperator).where(ConsoleOperator.name == name))
        if existing is None:
            session.add(ConsoleOperator(name=name, password_hash=hashed))
            return True
        if not reset:
            raise ConfigError(f"operator {name!r} exists; use --reset to give them a new password")
        existing.password_hash = hashed
        session.execute(delete(ConsoleSession).where(ConsoleSession.operator_id == existing.id))
        return False


def remove_operator(sf: sessionmaker[Session], name: str) -> None:
    with sf.begin() as session:
        operator = session.scalar(select(ConsoleOperator).where(ConsoleOperator.name == name))
        if operator is None:
            raise ConfigError(f"no operator {name!r}; `cutover operator list` lists them")
        session.execute(delete(ConsoleSession).where(ConsoleSession.operator_id == operator.id))
        session.delete(operator)


def list_operators(sf: sessionmaker[Session]) -> list[ConsoleOperator]:
    with sf() as session:
        return list(session.scalars(select(ConsoleOperator).order_by(ConsoleOperator.name)))


def verify(sf: sessionmaker[Session], name: str, password: str) -> ConsoleOperator | None:
    with sf() as session:
        operator = session.scalar(select(ConsoleOperator).where(ConsoleOperator.name == name))
    try:
        _HASHER.verify(operator.password_hash if operator else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return operator


def open_session(sf: sessionmaker[Session], operator: ConsoleOperator, hours: int) -> str:
    """A new sign-in for ``operator``; returns the cookie's token (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with sf.begin() as session:
        session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        session.add(ConsoleSession(token_hash=token_hash(token), operator_id=operator.id, csrf=secrets.token_urlsafe(32),
                                   created_at=now, expires_at=now + timedelta(hours=hours)))
        signed = session.get_one(ConsoleOperator, operator.id)
        signed.signed_in_at = now
    return token


def find_session(sf: sessionmaker[Session], token: str | None) -> SignedIn | None:
    if not token:
        return None
    hashed = token_hash(token)
    with sf() as session:
        row = session.execute(
            select(ConsoleSession.csrf, ConsoleSession.expires_at, ConsoleOperator.name)
            .join(ConsoleOperator, ConsoleOperator.id == ConsoleSession.operator_id)
            .where(ConsoleSession.token_hash == hashed)).first()
    if row is None or row.expires_at < utcnow():
        return None
    return SignedIn(row.name, row.csrf, hashed)


def close_session(sf: sessionmaker[Session], hashed: str) -> None:
    with sf.begin() as session:
        session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == hashed))


class Throttle:
    """Slows password guessing: after ``limit`` failed sign-ins for one name within ``window``
    seconds, that name is refused until the window has passed (kept in memory, per console)."""

    def __init__(self, limit: int = 5, window: float = 900.0) -> None:
        self.limit, self.window = limit, window
        self.failures: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def blocked(self, name: str) -> bool:
        with self.lock:
            recent = [t for t in self.failures.get(name.casefold(), []) if t > time.monotonic() - self.window]
            self.failures[name.casefold()] = recent
            return len(recent) >= self.limit

    def failed(self, name: str) -> None:
        with self.lock:
            self.failures.setdefault(name.casefold(), []).append(time.monotonic())

    def succeeded(self, name: str) -> None:
        with self.lock:
            self.failures.pop(name.casefold(), None)
