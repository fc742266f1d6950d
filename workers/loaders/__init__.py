"""One loader module per entity family; each registers its loaders by entity name.

A loader is ``load(ctx) -> Loaded``: it resolves references, applies the rules and writes rows in
the caller's transaction. It never commits, never touches the ledger: ``workers.outcomes`` does."""

from __future__ import annotations

from collections.abc import Callable

from shared.errors import RegistryError
from workers.context import Loader

LOADERS: dict[str, Loader] = {}


def loader(*entities: str) -> Callable[[Loader], Loader]:
    def register(fn: Loader) -> Loader:
        for name in entities:
            if name in LOADERS:
                raise RegistryError(f"two loaders for entity {name!r}")
            LOADERS[name] = fn
        return fn
    return register


def load_all() -> dict[str, Loader]:
    """Import every loader module (explicit, so nothing registers by accident)."""
    from workers.loaders import (  # noqa: F401
        accounts,
        attributes,
        contacts,
        payment_methods,
        portal,
        reference,
        services,
        subscriptions,
        tickets,
    )

    return LOADERS
