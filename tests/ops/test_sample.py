"""The synthetic engageip generator: well-formed, counted by formula, reproducible, streamed."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

from ops.sample import CHILD_EVERY, UNKNOWN_TAX_CODES, account_name, write_engageip_sample

USER_REFS = {"Owner": "Owner", "Role": "Role", "Culture": "Culture", "Currency": "Currency",
             "Language": "Language", "StatusType": "StatusType", "TaxCode": "TaxCode",
             "BillGroup": "BillGroup", "CreditRating": "CreditRating"}


def _parse(path: Path) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.parse(str(path), parser).getroot()


def _attr(element: etree._Element, name: str) -> str:
    value = element.get(name)
    assert value is not None, f"{element.tag} line {element.sourceline} has no {name}"
    return value


def _reference(path: Path) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {}
    for record in _parse(path):
        key = "Code" if record.tag == "Currency" else "Name"
        known.setdefault(record.tag, set()).add(_attr(record, key))
    return known


def _generate(out_dir: Path, accounts: int, *, seed: int = 0, fault_rate: float = 0.0) -> tuple[Path, Path]:
    reference, records = write_engageip_sample(out_dir, accounts, seed=seed, fault_rate=fault_rate)
    return reference, records


def test_returns_reference_then_accounts_and_leaves_no_spool_files(tmp_path: Path) -> None:
    paths = write_engageip_sample(tmp_path, 50)
    assert [p.name for p in paths] == ["reference.xml", "accounts.xml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.xml", "reference.xml"]


@pytest.mark.parametrize("accounts", [0, 1, 9, 10, 257])
def test_files_parse_and_record_counts_match_the_formula(tmp_path: Path, accounts: int) -> None:
    reference, records = _generate(tmp_path, accounts, seed=3)
    assert len(_parse(reference)) > 0
    counts = Counter(record.tag for record in _parse(records))
    expected = {"User": accounts, "Contact": 2 * accounts, "ContactEmail": 2 * accounts,
                "ContactPhone": 2 * accounts, "ChildAccount": accounts // CHILD_EVERY}
    assert counts == Counter({tag: n for tag, n in expected.items() if n})


def test_records_are_grouped_by_type_like_a_legacy_export(tmp_path: Path) -> None:
    _, records = _generate(tmp_path, 40)
    tags = [record.tag for record in _parse(records)]
    runs = [tag for i, tag in enumerate(tags) if i == 0 or tags[i - 1] != tag]
    assert runs == ["User", "Contact", "ContactEmail", "ContactPhone", "ChildAccount"]


def test_every_reference_resolves_and_child_accounts_form_no_cycle(tmp_path: Path) -> None:
    reference, records = _generate(tmp_path, 500, seed=11)
    known = _reference(reference)
    root = _parse(records)
    users = {u.get("Name") for u in root.iter("User")}
    contacts = {(c.get("User"), c.get("ContactName")) for c in root.iter("Contact")}
    for user in root.iter("User"):
        for attribute, kind in USER_REFS.items():
            assert user.get(attribute) in known[kind], (attribute, user.get(attribute))
        assert 1 <= int(_attr(user, "BillDay")) <= 28
    assert len(contacts) == 2 * len(users)  # two distinct contacts per account
    for tag in ("ContactEmail", "ContactPhone"):
        for point in root.iter(tag):
            assert (point.get("User"), point.get("ContactName")) in contacts
    assert {"Email Address", "Fax", "Work Phone", "Home Phone", "Mobile Phone"} <= known["ContactPointType"]
    for child in root.iter("ChildAccount"):
        assert child.get("Parent") in users
        assert _attr(child, "Parent") < _attr(child, "Name")  # parent is always an earlier account


def test_special_characters_are_escaped(tmp_path: Path) -> None:
    _, records = _generate(tmp_path, 300)
    text = records.read_text(encoding="utf-8")
    assert "&amp;" in text and " & " not in text
    companies = {c.get("ContactCompany") for c in _parse(records).iter("Contact")}
    assert any("&" in (company or "") for company in companies)


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = _generate(tmp_path / "a", 300, seed=7, fault_rate=0.1)
    again = _generate(tmp_path / "b", 300, seed=7, fault_rate=0.1)
    other = _generate(tmp_path / "c", 300, seed=8, fault_rate=0.1)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert first[1].read_bytes() != other[1].read_bytes()


@pytest.mark.parametrize(("accounts", "fault_rate", "expected"),
                         [(1000, 0.0, 0), (1000, 0.05, 50), (333, 0.1, 33), (10, 1.0, 10), (5, 0.5, 3)])
def test_fault_rate_gives_that_many_unknown_tax_codes(tmp_path: Path, accounts: int, fault_rate: float,
                                                      expected: int) -> None:
    reference, records = _generate(tmp_path, accounts, fault_rate=fault_rate)
    tax_codes = _reference(reference)["TaxCode"]
    unknown = [u.get("TaxCode") for u in _parse(records).iter("User") if u.get("TaxCode") not in tax_codes]
    assert len(unknown) == expected
    assert set(unknown) <= set(UNKNOWN_TAX_CODES)


def test_faults_are_spread_through_the_file(tmp_path: Path) -> None:
    reference, records = _generate(tmp_path, 1000, fault_rate=0.01)
    tax_codes = _reference(reference)["TaxCode"]
    faulty = [i for i, u in enumerate(_parse(records).iter("User")) if u.get("TaxCode") not in tax_codes]
    assert len(faulty) == 10
    assert faulty[0] < 200 and faulty[-1] > 800


def test_streaming_memory_stays_flat_and_size_grows_linearly(tmp_path: Path) -> None:
    small_size, small_peak = _measure(tmp_path / "small", 2_000)
    large_size, large_peak = _measure(tmp_path / "large", 20_000)
    assert 9.0 < large_size / small_size < 11.0
    # ten times the records, (almost) the same peak of Python allocations: nothing is held per record
    assert large_peak < small_peak * 1.5 + 256 * 1024, (small_peak, large_peak)


def _measure(out_dir: Path, accounts: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        write_engageip_sample(out_dir, accounts, seed=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (out_dir / "accounts.xml").stat().st_size, peak


def test_account_names_are_stable_and_sortable() -> None:
    assert account_name(0) == "CUST0000001"
    assert account_name(999_999) == "CUST1000000"
    assert sorted(account_name(i) for i in (5, 50, 500)) == [account_name(i) for i in (5, 50, 500)]


@pytest.mark.parametrize(("accounts", "fault_rate"), [(-1, 0.0), (10, -0.1), (10, 1.5)])
def test_bad_arguments_are_refused(tmp_path: Path, accounts: int, fault_rate: float) -> None:
    with pytest.raises(ValueError):
        write_engageip_sample(tmp_path, accounts, fault_rate=fault_rate)
