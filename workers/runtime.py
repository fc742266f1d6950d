"""Per-process singletons of a worker: settings, database sessions, vault, registry, loaders.
Built lazily in each pool process after fork, never in the parent (no shared connections)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from shared.db import forget_engines_after_fork, read_session_factory, session_factory
from shared.entities import REGISTRY
from shared.gc_tuning import settle_for_throughput
from shared.registry import Registry
from shared.settings import Settings, load_settings
from shared.vault import Vault
from workers.batch import Loaders
from workers.loaders import load_all
from workers.plans import load_planners


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    vault: Vault
    registry: Registry
    loaders: Loaders
    readers: sessionmaker[Session]
    """Read-only sessions (no write lock on SQLite)."""

    @property
    def window(self) -> int:
        from shared.dispatch import chunks_in_flight

        return chunks_in_flight(self.settings.max_in_flight, self.settings.chunk_size)


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    settings = load_settings()
    url = settings.effective_database_url
    return Runtime(settings, session_factory(url), Vault.from_settings(settings), REGISTRY,
                   Loaders(load_planners(), load_all()), read_session_factory(url))


def reset_after_fork() -> None:
    """A forked pool process must not reuse the parent's connections (the main process has some: its
    sweeper)."""
    forget_engines_after_fork()
    runtime.cache_clear()
    settle_for_throughput()
