"""The synthetic engageip generator: well-formed, counted by formula, reproducible, streamed; with
the benchmark options (no passwords, three contact points, a ledger), read by the real reader, planned
by the real invoice planner, and loaded end to end with no dead letters."""

from __future__ import annotations

import re
import tracemalloc
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from lxml import etree

from ops.sample import (
    CHILD_EVERY,
    LEDGER_MIX,
    UNKNOWN_TAX_CODES,
    account_name,
    expected_counts,
    write_engageip_sample,
)
from producer.formats import FORMATS, EngageipOptions
from producer.ledger import InvoicePlanner
from producer.readers import RawRecord
from tests.conftest import Cluster

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


@pytest.mark.parametrize(("points", "per_close"), [(5, 100), (-1, 100), (4, 0)])
def test_bad_shape_options_are_refused(tmp_path: Path, points: int, per_close: int) -> None:
    with pytest.raises(ValueError):
        write_engageip_sample(tmp_path, 10, points_per_account=points, ledger=True, accounts_per_close=per_close)
    with pytest.raises(ValueError):
        expected_counts(10, points_per_account=points, ledger=True, accounts_per_close=per_close)


# ---------------------------------------------------------------- benchmark options, read by the real reader

def _read(paths: list[Path]) -> list[RawRecord]:
    """Every record of the files through the producer's engageip reader; none may carry a read error."""
    reader = FORMATS["engageip"].reader()
    records = [raw for path in paths for raw in reader.read(path, EngageipOptions())]
    errors = [(raw.position, raw.entity, raw.error) for raw in records if raw.error is not None]
    assert not errors, errors[:5]
    return records


@pytest.mark.parametrize(("accounts", "points", "ledger", "per_close"),
                         [(0, 4, True, 100), (1, 4, True, 100), (10, 3, True, 100), (257, 3, True, 7), (64, 0, True, 64),
                          (65, 2, True, 64), (37, 1, False, 100), (257, 4, False, 100)])
def test_counts_read_by_the_real_reader_match_expected_counts(tmp_path: Path, accounts: int, points: int, ledger: bool,
                                                              per_close: int) -> None:
    paths = write_engageip_sample(tmp_path, accounts, seed=accounts, points_per_account=points, ledger=ledger,
                                  accounts_per_close=per_close, fault_rate=0.1)
    assert [p.name for p in paths] == ["reference.xml", "accounts.xml"] + (["ledger.xml"] if ledger else [])
    read = Counter(raw.entity for raw in _read(paths))
    expected = expected_counts(accounts, points_per_account=points, ledger=ledger, accounts_per_close=per_close)
    assert read == Counter(expected)


def test_the_ledger_mix_per_account_is_exact(tmp_path: Path) -> None:
    _, _, ledger = write_engageip_sample(tmp_path, 40, seed=4, ledger=True)
    per_account: dict[str, Counter[str]] = defaultdict(Counter)
    for raw in _read([ledger]):
        if raw.entity != "CloseInvoice":
            per_account[raw.fields["User"]][raw.entity] += 1
    assert set(per_account) == {account_name(i) for i in range(40)}
    assert all(mix == Counter(LEDGER_MIX) for mix in per_account.values())
    transactions = sum(n for tag, n in LEDGER_MIX.items() if tag != "Payment")
    assert (transactions, LEDGER_MIX["Payment"]) == (12, 4)
    assert LEDGER_MIX["Debit"] > 3 * LEDGER_MIX["Credit"], "mostly debits, a few credits"


def test_default_options_give_the_default_files(tmp_path: Path) -> None:
    plain = write_engageip_sample(tmp_path / "plain", 120, seed=9, fault_rate=0.05)
    explicit = write_engageip_sample(tmp_path / "explicit", 120, seed=9, fault_rate=0.05, passwords=True,
                                     points_per_account=4, ledger=False)
    assert [p.read_bytes() for p in plain] == [p.read_bytes() for p in explicit]


def test_no_passwords_means_no_password_attribute_and_nothing_else_changes(tmp_path: Path) -> None:
    _, with_passwords = _generate(tmp_path / "on", 200, seed=5)
    _, without = write_engageip_sample(tmp_path / "off", 200, seed=5, passwords=False)
    users = list(_parse(without).iter("User"))
    assert len(users) == 200 and all(u.get("Password") is None for u in users)
    assert all(u.get("Password") for u in _parse(with_passwords).iter("User"))
    stripped = re.sub(r' Password="[^"]*"', "", with_passwords.read_text(encoding="utf-8"))
    assert without.read_text(encoding="utf-8") == stripped, "the random stream does not shift"


def test_three_contact_points_are_both_emails_and_the_first_contacts_phone(tmp_path: Path) -> None:
    _, four = _generate(tmp_path / "four", 100, seed=6)
    _, three = write_engageip_sample(tmp_path / "three", 100, seed=6, points_per_account=3)
    root = _parse(three)
    first_contacts = {(c.get("User"), c.get("ContactName")) for c in root.iter("Contact")
                      if c.get("ContactType") == "Billing Contact"}
    emails = [(e.get("User"), e.get("ContactName")) for e in root.iter("ContactEmail")]
    phones = [(e.get("User"), e.get("ContactName")) for e in root.iter("ContactPhone")]
    assert len(emails) == 200 and len(set(emails)) == 200
    assert len(phones) == 100 and set(phones) == first_contacts
    four_lines = set(four.read_text(encoding="utf-8").splitlines())
    assert set(three.read_text(encoding="utf-8").splitlines()) <= four_lines, "the same points, one phone fewer"


def test_the_ledger_leaves_reference_defaults_and_accounts_unchanged(tmp_path: Path) -> None:
    reference, accounts = _generate(tmp_path / "plain", 150, seed=2, fault_rate=0.1)
    with_ledger = write_engageip_sample(tmp_path / "ledger", 150, seed=2, fault_rate=0.1, ledger=True)
    assert with_ledger[1].read_bytes() == accounts.read_bytes()
    base = reference.read_text(encoding="utf-8").splitlines()
    extended = with_ledger[0].read_text(encoding="utf-8").splitlines()
    assert extended[:-1] == base[:-1] + extended[len(base) - 1:-1], "the ledger only appends reference items"


def test_same_seed_gives_identical_ledger_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    def sample(out_dir: Path, seed: int) -> list[Path]:
        return write_engageip_sample(out_dir, 120, seed=seed, fault_rate=0.1, ledger=True, passwords=False,
                                     points_per_account=3, accounts_per_close=13)

    first, again, other = sample(tmp_path / "a", 7), sample(tmp_path / "b", 7), sample(tmp_path / "c", 8)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert first[2].read_bytes() != other[2].read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["accounts.xml", "ledger.xml", "reference.xml"]


def test_every_ledger_reference_resolves(tmp_path: Path) -> None:
    reference, records, ledger = write_engageip_sample(tmp_path, 300, seed=12, fault_rate=0.1, ledger=True)
    known = _reference(reference)
    assert "Opening Balance" in known["Service"]
    users = {u.get("Name") for u in _parse(records).iter("User")}
    for record in _parse(ledger):
        if record.tag == "CloseInvoice":
            assert record.attrib == {"CloseInvoice": ""}
            continue
        assert record.get("User") in users
        for attribute, kind in (("Package", "Service"), ("TaxCode", "TaxCode"), ("PaymentType", "PaymentType")):
            if record.get(attribute) is not None:
                assert record.get(attribute) in known[kind], (record.tag, attribute, record.get(attribute))
        if record.tag == "Debit":
            assert record.get("TaxCode") in ("Residential", "Commercial"), "faulty users' lines only wait for their User"


def test_ledger_records_sit_in_account_order_within_blocks(tmp_path: Path) -> None:
    accounts, per_close = 95, 10
    _, _, ledger = write_engageip_sample(tmp_path, accounts, seed=3, ledger=True, accounts_per_close=per_close)
    sections: list[list[str]] = [[]]
    first: dict[str, int] = {}  # account → closes read before its first record
    last: dict[str, int] = {}
    for record in _parse(ledger):
        if record.tag == "CloseInvoice":
            sections.append([])
            continue
        name = _attr(record, "User")
        sections[-1].append(name)
        first.setdefault(name, len(sections) - 1)
        last[name] = len(sections) - 1
    assert list(first) == [account_name(i) for i in range(accounts)], "accounts appear in account order"
    assert all(section == sorted(section) for section in sections), "between two closes, records are in account order"
    # an account's records span exactly its block's three closes (January … April payments), no other block's
    assert all((first[account_name(i)], last[account_name(i)]) == (3 * (i // per_close), 3 * (i // per_close) + 3)
               for i in range(accounts))
    # between two closes: one month of a block, or a block's April payments and the next block's January
    assert all(len(set(section)) <= 2 * per_close for section in sections)


def test_the_real_invoice_planner_accepts_the_ledger(tmp_path: Path) -> None:
    """What the producer makes of the file: every CloseInvoice closes something, no invoice stays open,
    each account gets its opening-balance invoice then three monthly ones, and every Payment that names
    an invoice names one of its account's (default names ``<User>-<n>``, on a fresh target)."""
    accounts = 45
    _, _, ledger = write_engageip_sample(tmp_path, accounts, seed=21, ledger=True, accounts_per_close=10)
    planner = InvoicePlanner()
    planner.start_file()
    payments: list[RawRecord] = []
    plans = []
    for raw in _read([ledger]):
        planner.observe(raw)
        assert raw.error is None, (raw.position, raw.error)
        payments += [raw] if raw.entity == "Payment" else []
        plans += planner.drain()
    left_open = planner.drain(final=True)
    assert left_open == [] and all(plan.closed for plan in plans)
    by_account: dict[str, list[bool]] = defaultdict(list)
    for plan in sorted(plans, key=lambda p: p.plan):
        by_account[plan.account].append(plan.opening)
    assert by_account == {account_name(i): [True, False, False, False] for i in range(accounts)}
    named = [(raw.fields["User"], raw.fields["Invoice"]) for raw in payments if "Invoice" in raw.fields]
    assert all(invoice in {f"{user}-{n}" for n in range(1, 5)} for user, invoice in named)
    assert 0.1 * len(payments) < len(named) < 0.5 * len(payments), "some payments name an invoice, most auto-disburse"


def test_streaming_memory_stays_flat_with_the_ledger(tmp_path: Path) -> None:
    """The ledger holds one block of accounts at a time: ten times the blocks, the same peak."""
    small_peak = _ledger_peak(tmp_path / "small", 200)
    large_peak = _ledger_peak(tmp_path / "large", 2_000)
    assert large_peak < small_peak * 1.5 + 256 * 1024, (small_peak, large_peak)


def _ledger_peak(out_dir: Path, accounts: int) -> int:
    tracemalloc.start()
    try:
        write_engageip_sample(out_dir, accounts, seed=1, ledger=True, accounts_per_close=20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_the_cli_writes_the_files_and_prints_the_counts(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ops.cli import main

    out = tmp_path / "out"
    done = CliRunner().invoke(main, ["sample", str(out), "--accounts", "25", "--ledger", "--no-passwords",
                                     "--points-per-account", "3", "--accounts-per-close", "10", "--seed", "4"])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in out.iterdir()) == ["accounts.xml", "ledger.xml", "reference.xml"]
    # the counts printed are those of the files written, as the producer's reader reads them
    written = Counter(raw.entity for raw in _read([out / "reference.xml", out / "accounts.xml", out / "ledger.xml"]))
    printed = dict(re.findall(r"^  (\w+) +([\d,]+)$", done.output, re.MULTILINE))
    assert {entity: int(n.replace(",", "")) for entity, n in printed.items()} == dict(written)
    assert f"records: {sum(written.values()):,}" in done.output
    assert written["User"] == 25 and written["Debit"] == 9 * 25, "the options were applied"
    assert all(u.get("Password") is None for u in _parse(out / "accounts.xml").iter("User"))
    assert CliRunner().invoke(main, ["sample", str(out), "--points-per-account", "5"]).exit_code == 2


# ---------------------------------------------------------------- end to end

@pytest.mark.slow
def test_a_ledger_sample_loads_with_no_dead_letters(cluster: Cluster, tmp_path: Path) -> None:
    """The benchmark's shape (no passwords, three contact points, the ledger) on a fresh database: every
    record committed, the invariant holds, every invoice exists and is closed, the money reconciles."""
    accounts, per_close = 30, 8  # four blocks, the last one short
    paths = write_engageip_sample(tmp_path / "sample", accounts, seed=17, passwords=False, points_per_account=3,
                                  ledger=True, accounts_per_close=per_close)
    cluster.start_worker(concurrency=4)
    code, doc = cluster.run_json("run", *map(str, paths))
    assert doc["state"] == "completed", doc
    totals = doc["totals"]
    assert totals["read"] == totals["committed"] + totals["skipped"] + totals["dead"] + totals["blocked"]
    assert (totals["dead"], totals["blocked"], totals["skipped"]) == (0, 0, 0), \
        {e: row for e, row in doc["entities"].items() if row["read"] != row["committed"]}
    assert code == 0, doc
    expected = expected_counts(accounts, points_per_account=3, ledger=True, accounts_per_close=per_close)
    assert {e: (row["read"], row["committed"]) for e, row in doc["entities"].items() if row["read"]} == \
        {e: (n, n) for e, n in expected.items()}
    assert all(v["reconciled"] for v in doc["reconciliation"]), doc["reconciliation"]
    assert cluster.query("SELECT state, count(*) FROM invoices GROUP BY state") == [("closed", 4 * accounts)]
    assert cluster.query("SELECT count(*) FROM transactions") == [(12 * accounts,)]
    named, total = cluster.query("SELECT count(invoice_id), count(*) FROM payments")[0]
    assert total == 4 * accounts and 0 < named < total
