"""The source formats cutover reads, each declared once: the file suffixes it claims, its reader,
its own options, and the steps it settles from file order while staging. The command line's
``--format`` choices and each format's options come from here, and so does what a run records of
its options.

Declaring a format imports nothing heavy (readers and steps are named by import path and imported
when first used), so ``cutover --help`` stays fast. A fourth format is a reader module and one
``FORMATS.declare(SourceFormat(...))``; nothing else in cutover names formats.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer.readers.base import Reader
from producer.steps import StagingStep
from shared.errors import ConfigError, RegistryError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from producer.attachments import AttachmentStore
    from producer.readers.csv_profile import Profile
    from shared.settings import Settings

OPTION = "cutover.option"
KINDS = ("flag", "text", "file")


@dataclass(frozen=True)
class OptionSpec:
    """How a field of a format's options appears on the command line: ``--field-name``."""

    help: str
    kind: str = "flag"
    """``flag`` (on or off), ``text`` (a value), ``file`` (a path to an existing file)."""


def option(help: str, kind: str = "flag") -> Any:
    """A field of a format's options that is also a command-line option (default off / none)."""
    if kind not in KINDS:
        raise RegistryError(f"option kind {kind!r} is not one of {', '.join(KINDS)}")
    return field(default=False if kind == "flag" else None, metadata={OPTION: OptionSpec(help, kind)})


def imported(path: str) -> Callable[..., Any]:
    """``"package.module:Name"``, imported when first called: a declaration stays light."""
    module, _, name = path.partition(":")

    def make(*args: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args)

    make.__qualname__ = path
    return make


@dataclass(frozen=True)
class Preparation:
    """What a format may need to ready its options before anything is staged."""

    settings: Settings
    sessions: sessionmaker[Session]
    loads: bool = True
    """The command loads what it reads (``run``); False for ``validate``, which writes nothing."""


@dataclass(frozen=True)
class NoOptions:
    """A format without options of its own."""


@dataclass(frozen=True)
class SourceFormat:
    """One source format."""

    name: str
    suffixes: tuple[str, ...]
    """File name endings, lower case with the dot (``.xml``): a file's format when ``--format`` is not given."""
    reader: Callable[[], Reader]
    options: type[Any] = NoOptions
    """A frozen dataclass given to the reader; its ``option()`` fields are command-line options."""
    steps: tuple[Callable[[Any], StagingStep], ...] = ()
    """Made with the options once per run that reads files of the format (``producer/steps.py``)."""
    prepare: Callable[[Any, Preparation], Any] | None = None
    """Checks and completes the options before anything is staged; raises ConfigError to refuse."""

    def command_line(self) -> list[tuple[str, OptionSpec]]:
        """(field name, spec) of every command-line option, in declaration order."""
        return [(f.name, f.metadata[OPTION]) for f in fields(self.options) if OPTION in f.metadata]

    def recorded(self, options: Any) -> dict[str, Any]:
        """The command-line options as a run records them (paths as text)."""
        out: dict[str, Any] = {}
        for name, _ in self.command_line():
            value = getattr(options, name)
            out[name] = str(value) if isinstance(value, Path) else value
        return out


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class SourceFile:
    """One input file, its format, and (once readied) that format's options for the run."""

    path: Path
    format: str
    options: Any = None
    """None: the format's defaults."""


class Formats:
    """The declared formats. A duplicate name, suffix or option name is a RegistryError."""

    def __init__(self) -> None:
        self._by_name: dict[str, SourceFormat] = {}

    def declare(self, fmt: SourceFormat) -> SourceFormat:
        if fmt.name in self._by_name:
            raise RegistryError(f"format {fmt.name!r} is declared twice")
        for suffix in fmt.suffixes:
            if not suffix.startswith(".") or suffix != suffix.lower():
                raise RegistryError(f"format {fmt.name!r}: suffix {suffix!r} must be lower case and start with a dot")
            owner = next((f.name for f in self if suffix in f.suffixes), None)
            if owner:
                raise RegistryError(f"format {fmt.name!r}: suffix {suffix} is already {owner!r}'s")
        for name, _ in fmt.command_line():
            owner = next((f.name for f in self if name in dict(f.command_line())), None)
            if owner:
                raise RegistryError(f"format {fmt.name!r}: option {flag(name)} is already {owner!r}'s")
        self._by_name[fmt.name] = fmt
        return fmt

    def __iter__(self) -> Iterator[SourceFormat]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> SourceFormat:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(f"unknown format {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return list(self._by_name)

    def detect(self, path: Path) -> SourceFormat:
        """The format a file's suffix names."""
        suffix = path.suffix.lower()
        for fmt in self:
            if suffix in fmt.suffixes:
                return fmt
        raise ConfigError(f"{path}: cannot tell the format from the extension {path.suffix!r}; "
                          f"name it with --format ({', '.join(sorted(self.names()))})")

    def resolve(self, paths: Iterable[Path], format_name: str | None) -> list[SourceFile]:
        """Files named directly, or every file of a known format inside a named folder (sorted).
        An unknown format is refused here, before any run exists."""
        if format_name is not None:
            self[format_name]
        out: list[SourceFile] = []
        for path in paths:
            children = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else None
            for child in children if children is not None else [path]:
                if format_name is not None:
                    out.append(SourceFile(child, format_name))
                elif children is None or any(child.suffix.lower() in f.suffixes for f in self):
                    out.append(SourceFile(child, self.detect(child).name))
        return out

    def ready(self, sources: list[SourceFile], given: Mapping[str, Any], context: Preparation) -> list[SourceFile]:
        """Give every source its format's options, built from the command line's values (``given``,
        by field name) and readied by the format. An option of a format none of whose files is among
        the inputs is refused, rather than silently doing nothing."""
        present = {s.format for s in sources}
        for fmt in self:
            if fmt.name in present:
                continue
            for name, _ in fmt.command_line():
                if given.get(name) not in (None, False, _default(fmt.options, name)):
                    raise ConfigError(f"{flag(name)} is for {fmt.name} files, and none is among the inputs")
        options: dict[str, Any] = {}
        for name in present:
            fmt = self[name]
            made = fmt.options(**{n: given[n] for n, _ in fmt.command_line() if given.get(n) is not None})
            options[name] = fmt.prepare(made, context) if fmt.prepare else made
        return [replace(s, options=options[s.format]) for s in sources]

    def recorded(self, sources: list[SourceFile]) -> dict[str, Any]:
        """The options of the run's formats, as its ``runs.options`` records them."""
        out: dict[str, Any] = {}
        for source in sources:
            fmt = self[source.format]
            out.update(fmt.recorded(source.options if source.options is not None else fmt.options()))
        return out

    def command_line(self) -> list[tuple[SourceFormat, str, OptionSpec]]:
        """Every format's command-line options, format by format."""
        return [(fmt, name, spec) for fmt in self for name, spec in fmt.command_line()]


def _default(options: type[Any], name: str) -> Any:
    for f in fields(options):
        if f.name == name:
            return None if f.default is MISSING else f.default
    return None


# -- the three formats -----------------------------------------------------------------------------

@dataclass(frozen=True)
class EngageipOptions:
    day_first: bool = option("dates read D/M/YYYY instead of M/D/YYYY (as CUTOVER_DATE_ORDER=day-first).")
    attachments: AttachmentStore | None = None
    """Where ticket attachments are stored while reading (readied from the settings)."""


@dataclass(frozen=True)
class IterasOptions:
    lenient_json: bool = option("accept // and /* */ comments and trailing commas, as in the vendor's examples.")
    manual_invoice_verification: bool = option("mark imported subscriptions for manual invoice verification "
                                               "(go-live safety).")


@dataclass(frozen=True)
class CsvOptions:
    profile: Path | None = option("the mapping profile (YAML or JSON) the file is read through.", kind="file")
    encoding: str | None = option("the file's encoding (default: the profile's, else UTF-8 with or without BOM).",
                                  kind="text")
    create_missing: bool = option("create the customer (and owner login) of an account number that does not exist.")
    mapping: Profile | None = None
    """The profile, loaded and checked (readied from ``profile``)."""


def _ready_engageip(options: EngageipOptions, context: Preparation) -> EngageipOptions:
    from producer.attachments import open_store

    s = context.settings
    return replace(options, day_first=options.day_first or s.day_first,
                   attachments=open_store(s.attachment_store, context.sessions, s.home, s.attachment_max_mb))


def _ready_csv(options: CsvOptions, context: Preparation) -> CsvOptions:
    """The profile is loaded before anything is read, and, for commands that load, the operator's
    permission for its import type is checked."""
    from producer.readers.csv_profile import load_profile
    from shared.permissions import Policy, current_operator

    if options.profile is None:
        raise ConfigError("csv files are read through a mapping profile: add --profile PROFILE "
                          "(`cutover csv profile init FILE.csv --type TYPE` writes one)")
    mapping = load_profile(options.profile)
    if context.loads:
        Policy.from_settings(context.settings).check_import(current_operator(context.settings), mapping.import_type)
    return replace(options, mapping=mapping)


FORMATS = Formats()
FORMATS.declare(SourceFormat(
    "engageip", (".xml",), imported("producer.readers.engageip:EngageIPReader"), EngageipOptions,
    steps=(imported("producer.ledger:LedgerStep"),), prepare=_ready_engageip))
FORMATS.declare(SourceFormat(
    "iteras", (".json", ".jsonl"), imported("producer.readers.iteras:IterasReader"), IterasOptions,
    steps=(imported("producer.customers:CustomerIdStep"),)))
FORMATS.declare(SourceFormat(
    "csv", (".csv",), imported("producer.readers.csv_import:CsvReader"), CsvOptions,
    steps=(imported("producer.precheck:PrecheckStep"),), prepare=_ready_csv))
