"""The entity registry: every entity type declares its queue and what it depends on. Waves are the
topological levels of that graph, so independent types share a wave and run in parallel.

Declaring an entity is the one place that decides routing (queue), ordering (waves), duplicate
detection (natural key), secret handling, and how others refer to it (lookup key: a child whose
parent with that key is dead-lettered is *blocked*, not dead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.errors import RegistryError


@dataclass(frozen=True)
class EntityType:
    """One kind of record the pipeline loads."""

    name: str
    queue: str
    depends_on: tuple[str, ...] = ()
    natural_key: tuple[str, ...] = ()
    """Fields that identify the row in the target; empty means every record is distinct (ledger lines)."""
    ref_key: tuple[str, ...] = ()
    """Fields other records use to refer to this one (defaults to the natural key)."""
    secret_fields: tuple[str, ...] = ()
    """Fields encrypted by the producer and never shown in clear (messages, logs, dead letters)."""

    @property
    def lookup_key(self) -> tuple[str, ...]:
        return self.ref_key or self.natural_key

    @property
    def task_name(self) -> str:
        """The Celery task name, so Flower reads as the migration."""
        return f"cutover.load.{self.name}"


class Registry:
    """Entity types by name, with their waves. A duplicate name, an unknown dependency or a cycle is
    an error as soon as the waves are asked for (at start-up)."""

    def __init__(self) -> None:
        self._types: dict[str, EntityType] = {}
        self._waves: list[tuple[str, ...]] | None = None

    def declare(self, entity: EntityType) -> EntityType:
        if entity.name in self._types:
            raise RegistryError(f"entity {entity.name!r} is declared twice")
        self._types[entity.name] = entity
        self._waves = None
        return entity

    def declare_all(self, entities: Iterable[EntityType]) -> None:
        for entity in entities:
            self.declare(entity)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __getitem__(self, name: str) -> EntityType:
        try:
            return self._types[name]
        except KeyError:
            raise RegistryError(f"no entity type {name!r} is declared") from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._types.values())

    @property
    def queues(self) -> list[str]:
        return sorted({e.queue for e in self._types.values()})

    @property
    def waves(self) -> list[tuple[str, ...]]:
        """Topological levels: wave n holds every type whose dependencies are all in waves < n."""
        if self._waves is None:
            self._waves = compute_waves({e.name: e.depends_on for e in self._types.values()})
        return self._waves

    def wave_of(self, name: str) -> int:
        for index, members in enumerate(self.waves):
            if name in members:
                return index
        raise RegistryError(f"no entity type {name!r} is declared")


def compute_waves(graph: Mapping[str, Iterable[str]]) -> list[tuple[str, ...]]:
    """Kahn's algorithm, level by level. Raises RegistryError naming the cycle if there is one."""
    deps = {name: set(d) for name, d in graph.items()}
    for name, wanted in deps.items():
        unknown = wanted - deps.keys()
        if unknown:
            raise RegistryError(f"entity {name!r} depends on undeclared {', '.join(sorted(unknown))}")
    placed: set[str] = set()
    waves: list[tuple[str, ...]] = []
    while len(placed) < len(deps):
        level = sorted(n for n, wanted in deps.items() if n not in placed and wanted <= placed)
        if not level:
            raise RegistryError(f"dependency cycle among entity types: {' -> '.join(_find_cycle(deps, placed))}")
        waves.append(tuple(level))
        placed.update(level)
    return waves


def _find_cycle(deps: Mapping[str, set[str]], placed: set[str]) -> list[str]:
    """One cycle among the unplaced types, for the error message."""
    start = sorted(n for n in deps if n not in placed)[0]
    path: list[str] = []
    node = start
    while node not in path:
        path.append(node)
        node = sorted(d for d in deps[node] if d not in placed)[0]
    return path[path.index(node):] + [node]
