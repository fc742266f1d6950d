"""Who may run which import, replay or discard: a policy the CLI applies to the operator in the
settings and the web console (`ops.web`) to the signed-in operator, on every request.

The seed: "This tool is also permission based, so if you lack the correct permissions, you will only
be permitted to the Paperless import path." Operators are configured as ``name=perm+perm`` pairs
separated by ``;`` (setting ``operators``). With none configured the local operator has every
permission; with some configured, an operator not listed has none.

The permissions: ``import`` (every csv import type; without it, only paperless), ``replay`` and
``discard`` (a run's dead letters, in the web console). The command line applies ``import`` to
`cutover run`; its `dlq replay` and `dlq discard` are for whoever holds the installation's
settings (database credentials included), so they do not ask."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from shared.errors import ConfigError
from shared.settings import Settings

IMPORT = "import"
"""Permission to run every csv import type (registration, autopay, paperless)."""
REPLAY = "replay"
"""Web console: replay a run's dead letters (and the records blocked behind them)."""
DISCARD = "discard"
"""Web console: discard dead letters (their records stay dead and are never replayed)."""
PERMISSIONS = (IMPORT, REPLAY, DISCARD)
OPEN_TO_ALL = ("paperless",)
"""Import types anyone may run."""


class NotPermitted(ConfigError):
    """The operator lacks the permission the command needs."""


@dataclass(frozen=True)
class Policy:
    operators: dict[str, frozenset[str]]

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(parse_operators(settings.operators))

    def permissions_of(self, operator: str) -> frozenset[str]:
        if not self.operators:
            return frozenset(PERMISSIONS)
        return self.operators.get(operator, frozenset())

    def may_import(self, operator: str, import_type: str) -> bool:
        return import_type in OPEN_TO_ALL or IMPORT in self.permissions_of(operator)

    def may(self, operator: str, permission: str) -> bool:
        """Whether ``operator`` holds ``permission`` (one of PERMISSIONS)."""
        return permission in self.permissions_of(operator)

    def check(self, operator: str, permission: str, doing: str) -> None:
        if not self.may(operator, permission):
            raise NotPermitted(f"operator {operator!r} may not {doing}: they need the {permission!r} permission")

    def check_import(self, operator: str, import_type: str) -> None:
        if not self.may_import(operator, import_type):
            raise NotPermitted(f"operator {operator!r} may not run {import_type} imports: they need the "
                               f"{IMPORT!r} permission (without it, only {', '.join(OPEN_TO_ALL)} imports are allowed)")


def current_operator(settings: Settings) -> str:
    return settings.operator or getpass.getuser()


def parse_operators(text: str) -> dict[str, frozenset[str]]:
    """``alice=import; bob=`` → {"alice": {"import"}, "bob": set()}."""
    out: dict[str, frozenset[str]] = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        name, sep, perms = entry.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"operators: {entry!r} is not name=permissions (e.g. alice=import; bob=)")
        wanted = frozenset(p.strip() for p in perms.split("+") if p.strip())
        unknown = wanted - set(PERMISSIONS)
        if unknown:
            raise ConfigError(f"operators: unknown permission {sorted(unknown)[0]!r} for {name.strip()!r} "
                              f"(known: {', '.join(PERMISSIONS)})")
        out[name.strip()] = wanted
    return out
