"""Ticket attachments never travel inside a queue message: while reading, the producer streams the
bytes into an attachment store and the record carries their SHA-256 and size instead.

Two stores, chosen by the setting ``attachment_store``: ``database`` (the default: a row per
content in ``attachment_blobs``, reachable by every worker that reaches the database) and
``files`` (a content-addressed folder under ``CUTOVER_HOME/attachments``: ``ab/abcdef…``). The same
bytes are stored once. A file above ``attachment_max_mb`` is refused at read (dead-lettered), before
anything is stored."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.errors import ConfigError, InvalidValue, MissingField
from shared.schema.services import AttachmentBlob

CHUNK = 1 << 20
STORES = ("database", "files")


class AttachmentStore(Protocol):
    name: str
    max_bytes: int

    def put(self, chunks: Iterator[bytes]) -> tuple[str, int]:
        """Store the bytes; returns (sha256, size)."""
        ...


def open_store(kind: str, sf: sessionmaker[Session], home: Path, max_mb: int) -> AttachmentStore:
    if kind == "database":
        return DatabaseStore(sf, max_mb * 1024 * 1024)
    if kind == "files":
        return FileStore(home.resolve() / "attachments", max_mb * 1024 * 1024)
    raise ConfigError(f"attachment_store must be one of {', '.join(STORES)}, not {kind!r}")


class TooLarge(Exception):
    pass


def _bounded(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise TooLarge
        yield chunk


class DatabaseStore:
    name = "database"

    def __init__(self, sf: sessionmaker[Session], max_bytes: int) -> None:
        self.sf, self.max_bytes = sf, max_bytes

    def put(self, chunks: Iterator[bytes]) -> tuple[str, int]:
        digest = hashlib.sha256()
        parts: list[bytes] = []
        for chunk in _bounded(chunks, self.max_bytes):
            digest.update(chunk)
            parts.append(chunk)
        sha = digest.hexdigest()
        data = b"".join(parts)
        try:
            with self.sf.begin() as session:
                if session.scalar(select(AttachmentBlob.sha256).where(AttachmentBlob.sha256 == sha)) is None:
                    session.add(AttachmentBlob(sha256=sha, size=len(data), data=data))
        except IntegrityError:
            pass  # another producer stored the same content meanwhile
        return sha, len(data)


class FileStore:
    name = "files"

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root, self.max_bytes = root, max_bytes

    def path_of(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def put(self, chunks: Iterator[bytes]) -> tuple[str, int]:
        self.root.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        handle, temp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in _bounded(chunks, self.max_bytes):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            target = self.path_of(sha)
            target.parent.mkdir(exist_ok=True)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return sha, size


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _base64_chunks(text: str) -> Iterator[bytes]:
    compact = "".join(text.split())
    step = CHUNK // 3 * 4
    for start in range(0, len(compact), step):
        yield base64.b64decode(compact[start:start + step], validate=True)


def store_attachment(xml_path: Path, fields: dict[str, str], store: AttachmentStore | None) -> dict[str, str]:
    """Replace Path/Content by the stored content's Sha256 and Size (the record's content, so the same
    file under another path is the same record); InvalidValue when it cannot be stored."""
    if store is None:
        raise ConfigError("this command cannot store attachments")
    limit_mb = store.max_bytes / (1024 * 1024)
    if "Path" in fields and "Content" in fields:
        raise InvalidValue(f"attachment {fields['FileName']!r} gives both Path and Content", field="Content",
                           value=shown_content(fields["Content"]), hint="give the file by Path or inline as Content, not both")
    if "Path" in fields:
        folder = xml_path.parent.resolve()
        source = (folder / fields["Path"]).resolve()
        if not source.is_relative_to(folder):
            raise InvalidValue(f"attachment path {fields['Path']!r} leads outside the folder of {xml_path.name}",
                               field="Path", value=fields["Path"],
                               hint="attachments are read from the XML file's folder or below it")
        if not source.is_file():
            raise MissingField(f"attachment file {fields['Path']!r} not found (paths are relative to {xml_path.name})",
                               field="Path", value=fields["Path"])
        if source.stat().st_size > store.max_bytes:
            raise InvalidValue(f"attachment {fields['FileName']!r} is {source.stat().st_size / 1048576:.1f} MB, above the "
                               f"{limit_mb:g} MB limit", field="Path", value=fields["Path"],
                               hint="raise attachment_max_mb, or attach it in the billing system")
        chunks = _file_chunks(source)
    else:
        if len("".join(fields["Content"].split())) * 3 // 4 > store.max_bytes + 3:
            raise InvalidValue(f"attachment {fields['FileName']!r} is above the {limit_mb:g} MB limit", field="Content",
                               value=shown_content(fields["Content"]), hint="raise attachment_max_mb")
        chunks = _base64_chunks(fields["Content"])
    try:
        sha, size = store.put(chunks)
    except TooLarge:
        raise InvalidValue(f"attachment {fields['FileName']!r} is above the {limit_mb:g} MB limit",
                           field="Path" if "Path" in fields else "Content", value=fields.get("Path", "(base64)"),
                           hint="raise attachment_max_mb") from None
    except (binascii.Error, ValueError):
        raise InvalidValue(f"attachment {fields['FileName']!r}: Content is not base64", field="Content",
                           value=shown_content(fields["Content"])) from None
    out = {k: v for k, v in fields.items() if k not in ("Path", "Content")}
    out.update(Sha256=sha, Size=str(size))
    return out


def shown_content(text: str) -> str:
    """Base64 content as a dead letter shows it: never the bytes, only their size."""
    return f"(base64, {len(text)} characters)"
