"""The entity registry: waves are the topological levels of the dependency graph."""

from __future__ import annotations

import re

import pytest

from shared.entities import REFERENCE_QUEUE, SIMPLE_REFERENCE_KINDS, build_default_registry
from shared.errors import RegistryError
from shared.registry import EntityType, Registry, compute_waves


def _registry(graph: dict[str, tuple[str, ...]]) -> Registry:
    registry = Registry()
    registry.declare_all(EntityType(name, "q", depends_on=deps) for name, deps in graph.items())
    return registry


def _assert_topological_levels(graph: dict[str, tuple[str, ...]], waves: list[tuple[str, ...]]) -> None:
    """Each type sits exactly one wave after its deepest dependency (wave 0 when it has none)."""
    placed = [name for wave in waves for name in wave]
    assert sorted(placed) == sorted(graph), "every type in exactly one wave"
    level = {name: index for index, wave in enumerate(waves) for name in wave}
    for name, deps in graph.items():
        expected = 1 + max((level[d] for d in deps), default=-1)
        assert level[name] == expected, f"{name} in wave {level[name]}, expected {expected}"


def test_waves_are_topological_levels() -> None:
    graph = {
        "D": ("B", "C"),
        "A": (),
        "B": ("A",),
        "C": ("B",),
        "E": (),
        "F": ("E", "A"),
    }
    waves = compute_waves(graph)
    assert waves == [("A", "E"), ("B", "F"), ("C",), ("D",)]
    _assert_topological_levels(graph, waves)


def test_independent_types_share_a_wave() -> None:
    registry = _registry({"Owner": (), "Culture": (), "Language": (), "User": ("Owner", "Culture", "Language")})
    assert registry.waves == [("Culture", "Language", "Owner"), ("User",)]
    assert registry.wave_of("Owner") == registry.wave_of("Culture") == registry.wave_of("Language") == 0
    assert registry.wave_of("User") == 1


def test_a_type_waits_for_its_deepest_dependency() -> None:
    # X depends on a wave-0 type and a wave-2 type: it goes after the deeper one, not next to the shallow one.
    graph = {"A": (), "B": ("A",), "C": ("B",), "X": ("A", "C")}
    waves = compute_waves(graph)
    _assert_topological_levels(graph, waves)
    assert waves[-1] == ("X",)


def test_waves_are_recomputed_after_a_late_declaration() -> None:
    registry = _registry({"A": ()})
    assert registry.waves == [("A",)]
    registry.declare(EntityType("B", "q", depends_on=("A",)))
    assert registry.waves == [("A",), ("B",)]


def test_cycle_raises_naming_the_cycle_members() -> None:
    # Start depends on the cycle but is not part of it; Free is independent.
    registry = _registry({"Start": ("P",), "P": ("Q",), "Q": ("R",), "R": ("P",), "Free": ()})
    with pytest.raises(RegistryError) as caught:
        _ = registry.waves
    message = str(caught.value)
    assert "cycle" in message
    named = set(re.findall(r"\b[A-Z][a-z]*\b", message.split(":", 1)[1]))
    assert named == {"P", "Q", "R"}, message


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(RegistryError, match=r"cycle.*\bA -> A\b"):
        compute_waves({"A": ("A",), "B": ()})


def test_unknown_dependency_raises() -> None:
    registry = _registry({"User": ("Owner", "Ghost")})
    with pytest.raises(RegistryError) as caught:
        _ = registry.waves
    assert "'User'" in str(caught.value)
    assert "Ghost" in str(caught.value)


def test_duplicate_name_raises_at_declaration() -> None:
    registry = Registry()
    registry.declare(EntityType("User", "accounts"))
    with pytest.raises(RegistryError, match="'User'.*twice"):
        registry.declare(EntityType("User", "other"))
    assert registry["User"].queue == "accounts", "the first declaration stays"


def test_unknown_type_lookup_raises() -> None:
    registry = _registry({"A": ()})
    with pytest.raises(RegistryError, match="'Nope'"):
        registry["Nope"]
    with pytest.raises(RegistryError, match="'Nope'"):
        registry.wave_of("Nope")
    assert "A" in registry and "Nope" not in registry


def test_entity_type_defaults() -> None:
    user = EntityType("User", "accounts", natural_key=("Owner", "Name"), ref_key=("Name",))
    assert user.lookup_key == ("Name",)
    assert EntityType("Contact", "contacts", natural_key=("User", "ContactName")).lookup_key == ("User", "ContactName")
    assert user.task_name == "cutover.load.User"


# --- the default registry ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default() -> Registry:
    return build_default_registry()


def test_build_default_registry_works(default: Registry) -> None:
    names = {e.name for e in default}
    assert {"User", "Contact", "ChildAccount", "ContactEmail", "Company", *SIMPLE_REFERENCE_KINDS} <= names
    graph = {e.name: e.depends_on for e in default}
    _assert_topological_levels(graph, default.waves)
    assert REFERENCE_QUEUE in default.queues
    assert default.queues == sorted(set(default.queues))


def test_default_reference_kinds_come_before_user(default: Registry) -> None:
    reference = [e.name for e in default if e.queue == REFERENCE_QUEUE]
    assert {"Owner", "Role", "Currency", "TaxCode", "Campaign", "PackageService"} <= set(reference)
    for kind in reference:
        assert default.wave_of(kind) < default.wave_of("User"), kind


def test_default_user_before_contact_and_child_account(default: Registry) -> None:
    user = default.wave_of("User")
    assert default.wave_of("Contact") > user
    assert default.wave_of("ChildAccount") > user


def test_default_contact_before_its_points_and_company(default: Registry) -> None:
    contact = default.wave_of("Contact")
    for kind in ("ContactEmail", "ContactPhone", "ContactFax", "ContactPoint", "Company"):
        assert default.wave_of(kind) > contact, kind


def test_default_user_keeps_password_secret(default: Registry) -> None:
    assert "Password" in default["User"].secret_fields


def test_every_default_entity_has_a_loader_and_a_lookup_key(default: Registry) -> None:
    from shared.money import LEDGER_ENTITIES
    from workers.batch import Loaders
    from workers.loaders import load_all
    from workers.plans import load_planners

    loaders = Loaders(load_planners(), load_all())
    parents = {parent for entity in default for parent in entity.depends_on}
    for entity in default:
        assert entity.name in loaders, entity.name
        if entity.name in LEDGER_ENTITIES:  # ledger lines are distinct even when identical: no natural key
            assert not entity.natural_key, entity.name
            continue
        if entity.name in parents:
            assert entity.lookup_key, f"{entity.name} needs a natural key so children can find it or be blocked by it"
