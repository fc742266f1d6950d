"""Log lines as text (the default) or as JSON lines (``log_format = "json"``), the same in the
workers and in the commands that log. A JSON line carries what a log aggregator indexes as fields
of their own — run id, entity, record key, outcome, position, error class — beside the message,
so nobody has to parse the text. Fields come from the ``extra`` of a log call (:func:`record_fields`)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from shared.envelope import Envelope

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
FIELDS = ("run_id", "entity", "record_key", "outcome", "position", "error_class", "messages", "records", "seconds",
          "chunks_closed")
"""The ``extra`` names a JSON line carries as fields of their own, when a log call gives them."""


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, process, message, the known fields
    a call gave, and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "process": record.processName,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def record_fields(env: Envelope, outcome: str | None = None, error: BaseException | None = None,
                  error_class: str | None = None) -> dict[str, Any]:
    """The fields of a log line about one record (never its values: they may be secret)."""
    if error_class is None and error is not None:
        error_class = getattr(error, "error_class", type(error).__name__)
    return {"run_id": env.run_id, "entity": env.entity, "record_key": env.key, "position": str(env.position),
            "outcome": outcome, "error_class": error_class}


def batch_fields(entity: str, envelopes: list[Envelope], messages: int, seconds: float, chunks_closed: int) -> dict[str, Any]:
    """The fields of a worker's line about one loaded batch; ``run_id`` when its records are of one run."""
    runs = {env.run_id for env in envelopes}
    return {"entity": entity, "run_id": runs.pop() if len(runs) == 1 else None, "messages": messages,
            "records": len(envelopes), "seconds": round(seconds, 3), "chunks_closed": chunks_closed}


def configure_logging(log_format: str, level: int | str = logging.INFO, stream: IO[str] | None = None) -> None:
    """Every log line of this process to ``stream`` (standard error), as text or JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)  # Python warnings become log lines too, in the same format
