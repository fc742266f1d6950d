"""Tables of the web console (`cutover console`, package ``ops.web``): the operators who sign in
(passwords only as Argon2id hashes), their sign-ins, the imports they are clicking through, and the
audit of who started, replayed or discarded what. They sit beside the control tables, so the audit
is kept with the runs it speaks of (migration ``0020``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.schema.base import Base, utcnow
from shared.schema.control import BigId


class ConsoleOperator(Base):
    """Someone who may sign in to the console. What they may do comes from the permission policy
    (setting ``operators``), by name, so the command line and the console apply one policy."""

    __tablename__ = "console_operators"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    signed_in_at: Mapped[datetime | None] = mapped_column(DateTime)


class ConsoleSession(Base):
    """A sign-in. The browser holds a random token; only its SHA-256 is stored, so a copy of the
    database cannot be replayed as a cookie. ``csrf`` is the token every form of the session carries."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("console_operators.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class ConsoleImport(Base):
    """An import being clicked through, screen by screen (the seed's Customer Import Tool): what the
    operator chose so far. ``file_path`` is the upload, private to the console's home folder."""

    __tablename__ = "console_imports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    operator: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="open")
    """``open`` (being prepared), ``started`` (its run exists: ``run_id``), ``cancelled``."""
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    biller: Mapped[str | None] = mapped_column(String(255))
    import_type: Mapped[str | None] = mapped_column(String(16))
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_path: Mapped[str | None] = mapped_column(Text)
    file_size: Mapped[int | None] = mapped_column(BigId)
    encoding: Mapped[str | None] = mapped_column(String(32))
    headers: Mapped[list[str]] = mapped_column(JSON, default=list)
    invoice_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    columns: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    prefix: Mapped[str] = mapped_column(String(64), default="")
    parts: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    """The account-number recipe's parts, in order: ``{"column": HEADER}`` or ``{"literal": TEXT}``."""
    precheck: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    create_missing: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str | None] = mapped_column(String(320))
    run_id: Mapped[str | None] = mapped_column(String(40))


class ConsoleAudit(Base):
    """Who did what to which run, from the console: ``start``, ``replay``, ``discard``, ``email``,
    ``profile`` (a mapping saved). Shown on the run's page; never deleted by the console."""

    __tablename__ = "console_audit"
    __table_args__ = (Index("ix_console_audit_run", "run_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    operator: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str | None] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    records: Mapped[int] = mapped_column(Integer, default=0)
    """Records the action concerned (letters replayed or discarded, rows staged)."""
