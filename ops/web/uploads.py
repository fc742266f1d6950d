"""Uploaded csv files: streamed from the request straight into a private folder under
``CUTOVER_HOME`` (folders 0700, the file 0600; never the web root, never the system's temporary
folder, where a card number would outlive the import), counted as they arrive and refused past the
size limit, with nothing kept.

The rule for keeping them: an uploaded file lives until its run is staged (the staged records hold
what loading needs, secrets encrypted), or until its import is cancelled or left unfinished for
``console_upload_hours``; the mapping profile written beside it is kept as the record of how the
run read its file."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

MAX_FIELD = 4096
MAX_FIELDS = 20
FORM_SLACK = 64 * 1024
"""Bytes of a form beyond the file itself (boundaries, headers, the CSRF token)."""


class UploadRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None
    path: Path | None = None
    size: int = 0


def private_folder(path: Path) -> Path:
    """Create ``path`` readable by this user only, and every missing parent likewise (the umask
    would leave parents open to others)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    os.chmod(path, 0o700)
    return path


def safe_name(name: str) -> str:
    """A file name fit for the disk and for messages: the last path component, plain characters."""
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", base).strip(" .")[:120]
    return cleaned or "upload.csv"


def too_large(limit_mb: int, name: str | None = None) -> UploadRefused:
    what = name or "the upload"
    return UploadRefused(413, f"{what} is larger than the {limit_mb} MB the console accepts "
                              f"(CUTOVER_CONSOLE_UPLOAD_MAX_MB); nothing was kept. Run a file this large with "
                              f"`cutover run FILE --profile PROFILE`, or split it.")


class _Receiver:
    """python-multipart callbacks: the file part goes to disk as it arrives, other parts stay small."""

    def __init__(self, folder: Path, limit: int, keep: bool = True) -> None:
        self.folder, self.limit = folder, limit
        self.upload = Upload()
        self.exceeded = not keep
        """Past the limit (or refused before the first byte, ``keep=False``): nothing more is written."""
        self.refusal: UploadRefused | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._field: str | None = None
        self._data = bytearray()
        self._fd: int | None = None

    def on_part_begin(self) -> None:
        self._disposition, self._field, self._data = b"", None, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._field = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.upload.fields) >= MAX_FIELDS:
                self.refusal = UploadRefused(400, "the form has too many fields")
            return
        if self.upload.file_name is not None or self._field != "file":
            self.refusal = UploadRefused(400, "send one csv file, in the form's file field")
            return
        self.upload.file_name = safe_name(options[b"filename"].decode("utf-8", "replace"))
        if self.exceeded:
            return
        self.upload.path = self.folder / self.upload.file_name
        self.upload.path.unlink(missing_ok=True)
        self._fd = os.open(self.upload.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.refusal is not None or self.exceeded:
            return
        if self._fd is None:
            if len(self._data) + (end - start) > MAX_FIELD:
                self.refusal = UploadRefused(400, f"form field {self._field!r} is too long")
                return
            self._data.extend(data[start:end])
            return
        self.upload.size += end - start
        if self.upload.size > self.limit:
            self.exceeded = True
            self.discard()
            return
        os.write(self._fd, data[start:end])

    def on_part_end(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        elif self._field and self.refusal is None:
            self.upload.fields[self._field] = self._data.decode("utf-8", "replace")

    def discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.upload.path is not None:
            self.upload.path.unlink(missing_ok=True)


async def receive_upload(request: Request, folder: Path, limit_mb: int) -> Upload:
    """Read a multipart form whose ``file`` part is written to ``folder``. Raises UploadRefused (with
    nothing left on disk) when the form is malformed or the file larger than ``limit_mb``."""
    limit = limit_mb * 1024 * 1024
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadRefused(400, "expected a file upload (multipart/form-data)")
    declared = request.headers.get("content-length")
    refuse_now = bool(declared and declared.isdigit() and int(declared) > limit + FORM_SLACK)
    if not refuse_now:
        private_folder(folder)
    receiver = _Receiver(folder, limit, keep=not refuse_now)
    parser = MultipartParser(boundary, {  # type: ignore[arg-type]
        "on_part_begin": receiver.on_part_begin, "on_part_data": receiver.on_part_data,
        "on_part_end": receiver.on_part_end, "on_header_field": receiver.on_header_field,
        "on_header_value": receiver.on_header_value, "on_header_end": receiver.on_header_end,
        "on_headers_finished": receiver.on_headers_finished,
    })
    try:
        async for chunk in request.stream():  # read to the end even when refusing, so the browser gets the answer
            if receiver.refusal is None and (receiver.upload.file_name is None or not receiver.exceeded):
                parser.write(chunk)
        if not receiver.exceeded:
            parser.finalize()
    except Exception as exc:
        receiver.discard()
        raise UploadRefused(400, f"the upload could not be read: {exc}") from None
    if receiver.exceeded:
        raise too_large(limit_mb, receiver.upload.file_name)
    if receiver.refusal is not None:
        receiver.discard()
        raise receiver.refusal
    if receiver.upload.path is None or receiver.upload.size == 0:
        receiver.discard()
        raise UploadRefused(400, "choose a csv file to upload (the file was empty or missing)")
    return receiver.upload


def remove_csv_files(folder: Path) -> None:
    """Remove an import's uploaded data, keeping its mapping profile."""
    if folder.is_dir():
        for child in folder.iterdir():
            if child.name != "profile.yaml":
                child.unlink(missing_ok=True)


def sweep(root: Path, states: dict[str, str]) -> None:
    """Apply the keeping rule to every import folder under ``root``, given each import's state:
    ``open`` keeps its upload, ``started`` keeps only its profile, anything else (cancelled,
    expired, unknown) goes entirely."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        state = states.get(folder.name)
        if state == "started":
            remove_csv_files(folder)
        elif state != "open":
            shutil.rmtree(folder, ignore_errors=True)
