"""The README's examples, run as a new user runs them: the README's own commands, on the embedded default
(no CUTOVER_BROKER_URL: each command starts its own Redis and local workers; SQLite under a private
CUTOVER_HOME), from the repository root. The figures are read from the README files themselves (the
top-level README, each example's README and the runbook), so the documents and the product cannot
drift apart without this failing.

These are slow (tens of seconds each): password hashing dominates the engageip example."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, ROOT, Cluster

pytestmark = pytest.mark.slow

COLUMNS = ("read", "committed", "skipped", "dead", "blocked")


# -- reading the documents -----------------------------------------------------------------------------


def document(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_block_after(text: str, marker: str) -> list[str]:
    """The lines of the first fenced code block after ``marker``."""
    found = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S).search(text, text.index(marker))
    assert found, f"no code block after {marker!r}"
    return found.group(1).splitlines()


def table_after(text: str, marker: str) -> list[list[str]]:
    """The body rows of the first markdown table after ``marker``, cells stripped of ** and `."""
    rows: list[list[str]] = []
    for line in text[text.index(marker):].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip().replace("**", "").replace("`", "") for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"no table after {marker!r}"
    return rows[2:]


def prose(text: str) -> str:
    """The text with every run of white space one space: a sentence can wrap anywhere in markdown."""
    return " ".join(text.split())


def number(text: str, pattern: str, flags: int = 0) -> int:
    found = re.search(pattern, text, flags)
    assert found, f"the document no longer says {pattern!r}"
    return int(found.group(1))


def counts_rows(lines: list[str]) -> dict[str, tuple[int, ...]]:
    """Rows of a printed counts table (``│ wave │ entity │ read │ …``), by entity."""
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if line.startswith("│") and len(cells) == 7 and cells[2].isdigit():
            rows[cells[1]] = tuple(int(c) for c in cells[2:])
    return rows


def entity_counts(doc: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    rows = {name: tuple(row[c] for c in COLUMNS) for name, row in doc["entities"].items()}
    rows["total"] = tuple(doc["totals"][c] for c in COLUMNS)
    return rows


def readme_commands(lines: list[str], **placeholders: str) -> Iterator[tuple[list[str], str]]:
    """``cutover …`` lines of a shell block: the arguments after `cutover` (placeholders such as
    ``<first run>`` filled in) and the comment that says what to expect."""
    for line in lines:
        command, _, comment = line.partition("#")
        if not command.strip().startswith("cutover "):
            continue
        for placeholder, value in placeholders.items():
            command = command.replace(placeholder, value)
        yield shlex.split(command)[1:], comment.strip()


def run_id_in(output: str) -> str:
    found = re.search(r"^run (r[\w-]+): staged", output, re.M)
    assert found, output
    return found.group(1)


def without_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# -- engageip ------------------------------------------------------------------------------------------


def example_totals(rows: list[list[str]]) -> dict[str, tuple[int, ...]]:
    """An example README's totals table: its entity rows (`User`, `user` (unknown element)…) and the run total."""
    found = {}
    for cells in rows:
        label, figures = cells[0], cells[1:6]
        if not all(f.isdigit() for f in figures):
            continue
        if label == "run total":
            found["total"] = tuple(int(f) for f in figures)
        elif not label.endswith(".xml") and not label.startswith("reference data") and " (as in" not in label:
            found[label.split(" ")[0]] = tuple(int(f) for f in figures)
    return found


def test_engageip_example_as_the_readme_walks_it(embedded: Cluster, tmp_path: Path) -> None:
    readme, runbook = document(ROOT / "README.md"), document(ROOT / "docs" / "runbook.md")
    example = document(EXAMPLES / "engageip" / "README.md")

    # "The two commands": the install line ends with the run of the example
    install = next(line for line in code_block_after(readme, "## The two commands") if "cutover run" in line)
    first_command = shlex.split(install.split("&&")[-1])
    assert first_command[:2] == ["cutover", "run"]
    done = embedded.cli(*first_command[1:], timeout=600)
    output = without_ansi(done.stdout)
    assert done.returncode == number(prose(readme), r"ends with exit status (\d)"), output + done.stderr

    # the summary the README shows: its rows, the invariant and the reconciliation, line for line
    shown = code_block_after(readme, "## What the first run shows")
    printed = counts_rows(output.splitlines())
    assert {entity: printed[entity] for entity in counts_rows(shown)} == counts_rows(shown)
    for line in (line for line in shown if not line.startswith("│")):
        assert line in output.splitlines(), f"the README shows {line!r}; the run printed:\n{output}"
    hint = re.search(r"\(`(TaxCode 'residential' not found — [^`]+)`\)", readme)
    assert hint and hint.group(1) in output

    # the example's own table of the first run, entity by entity
    run_id = run_id_in(output)
    _, first = embedded.run_json("status", run_id)
    expected = example_totals(table_after(example, "First run, `cutover run examples/engageip`"))
    assert {e: entity_counts(first)[e] for e in expected} == expected
    assert first["totals"]["read"] == number(prose(readme), r"\(`examples/engageip/`, (\d+) records")

    # "Fix the reference data and replay", command by command
    results = tmp_path / "results"
    steps = list(readme_commands(code_block_after(readme, "Fix the reference data and replay"),
                                 **{"<first run>": run_id, "results/": f"{results}/"}))
    assert [args[:2] for args, _ in steps] == [["dlq", "list"], ["run", "examples/engageip/fixes/reference-fix.xml"],
                                               ["dlq", "replay"], ["status"], ["reconcile", run_id],
                                               ["report", run_id]], "the README's steps changed: update this test"
    outputs = {}
    for args, comment in steps:
        step = embedded.cli(*args, timeout=600)
        outputs[" ".join(args[:2])] = (step.returncode, without_ansi(step.stdout), comment)
        assert "Traceback" not in step.stderr, step.stderr

    code, listed, _ = outputs["dlq list"]
    assert code == 0 and "Commercial Plus" in listed
    fix_block = code_block_after(runbook, "Load the missing reference data as a run of its own")
    code, fixed, _ = outputs["run examples/engageip/fixes/reference-fix.xml"]
    assert code == 0 and fix_block[1].lstrip("…") in fixed.splitlines()

    code, replayed, _ = outputs["dlq replay"]
    sentence = re.search(r"The replay itself re-publishes (\d+) records .*? it commits (\d+) .*? leaves (\d+) dead "
                         r".*? and (\d+) blocked .*? the (\d+) that failed at read time", prose(example))
    assert sentence, "the example README no longer describes the replay's figures"
    records, committed, dead, blocked, not_replayable = map(int, sentence.groups())
    assert code == (3 if dead or blocked else 0)
    assert (f"{not_replayable} dead letter(s) failed at read time and cannot be replayed: fix the source file and run "
            "it again, or discard them") in replayed.splitlines()
    assert re.search(rf"^replay x[\w-]+: {records} record\(s\) in wave order", replayed, re.M), replayed
    assert f"holds ({records} = {committed} + 0 + {dead} + {blocked})" in replayed
    runbook_replay = [line for line in fix_block if line.startswith(("│", f"{not_replayable} dead"))]
    assert counts_rows(runbook_replay) == {e: counts_rows(replayed.splitlines())[e] for e in counts_rows(runbook_replay)}, \
        "runbook §7 shows the example's replay"

    code, _, comment = outputs["status"]
    assert code == 0
    _, after = embedded.run_json("status", run_id)
    assert after["totals"]["committed"] == number(comment, r"counts (\d+) committed")
    expected = example_totals(table_after(example, "the first run's records stand as follows"))
    assert {e: entity_counts(after)[e] for e in expected} == expected

    code, reconciled, _ = outputs[f"reconcile {run_id}"]
    parked = re.search(r"after the fix in section 7: `(parked in dead letters: [^`]+)`", prose(runbook))
    assert parked and code == 0
    assert reconciled.startswith("reconciled: ") and parked.group(1) in reconciled.splitlines()[0]

    code, reported, _ = outputs[f"report {run_id}"]
    assert code == 0 and f"wrote {results}/{run_id}.jsonl" in reported
    rows = [json.loads(line) for line in (results / f"{run_id}.jsonl").read_text().splitlines()]
    assert len(rows) == first["totals"]["read"], "one row per source record"

    # "Running the same files again commits nothing" (runbook §11 gives the totals)
    again_line = next(line for line in code_block_after(runbook, "**Running the same file again is safe.**")
                      if "cutover run examples/engageip" in line)
    [(args, comment)] = list(readme_commands([again_line.lstrip("$ ")]))
    counted = {"invoices", "transactions", "payments", "notes", "ticket_tracking", "account_payment_methods"}
    before = {t: embedded.query(f"SELECT count(*) FROM {t}")[0][0] for t in counted}
    code, again = embedded.run_json(*[a for a in args if a != "--json"], timeout=600)
    totals = dict(re.findall(r"(read|committed|skipped|dead|blocked) (\d+)", comment))
    assert {k: again["totals"][k] for k in totals} == {k: int(v) for k, v in totals.items()}
    assert code == 3 and again["reconciliation"][0]["reconciled"] is True
    assert {t: embedded.query(f"SELECT count(*) FROM {t}")[0][0] for t in counted} == before, \
        "no invoice, line or payment is added"


# -- iteras --------------------------------------------------------------------------------------------


def test_iteras_example_as_the_readme_walks_it(embedded: Cluster) -> None:
    readme, example = document(ROOT / "README.md"), document(EXAMPLES / "iteras" / "README.md")
    [(args, _)] = list(readme_commands(code_block_after(readme, "The iteras example")))
    done = embedded.cli(*args, timeout=600)
    output = without_ansi(done.stdout)
    said = re.search(r"It ends with status (\d) \(`(\d+) = (\d+) \+ (\d+) \+ (\d+) \+ (\d+)`\), gives the four customers "
                     r"without an id the ids (\d+)–(\d+), and prints two `go-live:` reminders", prose(readme))
    assert said, "the README no longer says how the iteras example ends"
    status, read, committed, skipped, dead, blocked, low, high = map(int, said.groups())
    assert done.returncode == status, output + done.stderr
    assert f"holds ({read} = {committed} + {skipped} + {dead} + {blocked})" in output

    step1 = "**1. `cutover run examples/iteras/reference.xml examples/iteras/operations.json`**"
    for line in code_block_after(example, step1):
        assert line in output.splitlines(), f"the example README shows {line!r}; the run printed:\n{output}"
    assert sum(line.startswith("go-live: ") for line in output.splitlines()) == 2
    run_id = run_id_in(output)
    _, first = embedded.run_json("status", run_id)
    table = {cells[1]: tuple(int(c) for c in cells[2:7]) for cells in table_after(example, step1)}
    assert entity_counts(first) == table
    given = {int(cells[2]): cells[1] for cells in table_after(example, "which get, in file order")}
    assert sorted(given) == list(range(low, high + 1))
    assigned = dict(embedded.query("SELECT id, name FROM customers WHERE id_assigned"))
    assert {i: assigned[i] for i in given} == {i: name.split(" (")[0] for i, name in given.items()}

    # 2. the same command again: nothing committed, no go-live lines
    again = embedded.cli(*args, timeout=600)
    assert again.returncode == number(prose(example), r"\*\*2\. The same command again\*\*: exit status (\d)")
    assert code_block_after(example, "**2. The same command again**")[0] in without_ansi(again.stdout).splitlines()
    assert "go-live:" not in again.stdout
    assert dict(embedded.query("SELECT id, name FROM customers WHERE id_assigned")) == assigned

    # 3. the seed-style file: refused without --lenient-json, loaded with it
    step3 = "**3. `cutover run --lenient-json examples/iteras/reference.xml examples/iteras/seed-style.json`**"
    lenient = shlex.split(re.search(r"`(cutover run --lenient-json [^`]+)`", step3).group(1))[1:]  # type: ignore[union-attr]
    strict = [a for a in lenient if a != "--lenient-json"]
    refused = embedded.cli(*strict, timeout=600)
    assert refused.returncode == number(prose(example),
                                        r"Without `--lenient-json` the same command is refused \(exit status (\d)")
    shown = code_block_after(example, "Without `--lenient-json` the same command is refused")
    assert shown[0].split("… ", 1)[1] in without_ansi(refused.stdout) and shown[1] in refused.stdout
    loaded = embedded.cli(*lenient, timeout=600)
    assert loaded.returncode == number(example, re.escape(step3) + r"\s*:\s*exit status (\d)"), loaded.stdout
    _, third = embedded.run_json("status", run_id_in(without_ansi(loaded.stdout)))
    table = {cells[1]: tuple(int(c) for c in cells[2:7]) for cells in table_after(example, step3)}
    assert entity_counts(third) == table


# -- csv -----------------------------------------------------------------------------------------------


def precheck_shown(example: str, args: list[str]) -> list[str]:
    """The pre-check lines the csv README shows for one of its runs (run 3 prints the same as validate)."""
    if args[0] != "run" or "--profile" not in args:
        return []
    name = Path(args[1]).name
    if name == "registration.csv":
        return code_block_after(example, "**2. `cutover validate … registration.csv`**")[:2]
    heading = {"autopay.csv": "**5. `cutover run … autopay.csv --create-missing`**" if "--create-missing" in args
               else "**4. `cutover run … autopay.csv`**",
               "paperless.csv": "**6. `cutover run … paperless.csv --profile examples/csv/paperless.json`**"}[name]
    return code_block_after(example, heading)


def test_csv_example_as_its_readme_walks_it(embedded: Cluster) -> None:
    readme, example = document(ROOT / "README.md"), document(EXAMPLES / "csv" / "README.md")
    steps = list(readme_commands(code_block_after(example, "## How to run it")))
    totals = table_after(example, "### Totals")
    assert len(steps) == len(totals), "one row of the Totals table per command"
    runs = []
    for (args, _), row in zip(steps, totals, strict=True):
        done = embedded.cli(*args, timeout=600)
        output = without_ansi(done.stdout)
        assert done.returncode == int(row[-1]), (args, output, done.stderr)
        assert "Traceback" not in done.stderr
        if args[0] == "validate":
            expected = code_block_after(example, "**2. `cutover validate … registration.csv`**")
            assert output.splitlines() == expected, "validate prints exactly what the README shows"
            assert int(row[1]) == number(output, r"^(\d+) records checked", re.M)
            continue
        run_id = run_id_in(output)
        runs.append(run_id)
        _, doc = embedded.run_json("status", run_id)
        read, committed, skipped, dead, blocked = (int(re.match(r"\d+", cell).group(0)) for cell in row[1:6])  # type: ignore[union-attr]
        assert tuple(doc["totals"][c] for c in COLUMNS) == (read, committed, skipped, dead, blocked), (args, doc["totals"])
        for line in precheck_shown(example, args):  # the pre-check, printed before loading, as the README shows it
            assert line in output.splitlines(), (args, line, output)

    held = re.search(r"What the target holds afterwards: (\d+) accounts and (\d+) owner logins .*?, (\d+) payment methods "
                     r"\((\d+) cards, (\d+) bank accounts.*?(\d+) autopay enrolments .*? and (\d+)\s+paperless enrolments",
                     prose(example))
    assert held, "the csv README no longer says what the target holds"
    accounts, owners, methods, cards, banks, autopay, paperless = map(int, held.groups())
    q = embedded.query
    assert q("SELECT count(*) FROM accounts")[0][0] == accounts
    assert q("SELECT count(*) FROM logins WHERE is_owner")[0][0] == owners
    assert dict(q("SELECT kind, count(*) FROM payment_methods GROUP BY kind")) == {"card": cards, "ach": banks}
    assert cards + banks == methods
    assert dict(q("SELECT kind, count(*) FROM enrolments GROUP BY kind")) == {"autopay": autopay, "paperless": paperless}
    code, letters = embedded.run_json("dlq", "list")
    assert code == 0 and len(letters) == number(prose(example), r"`cutover dlq list` then shows (\d+) dead letters")

    # the top-level README: the autopay pre-check, nothing written
    line = next(line for line in code_block_after(readme, "runs one import type per run")
                if line.startswith("cutover validate"))
    [(args, _)] = list(readme_commands([line]))
    before = q("SELECT count(*) FROM payment_methods")
    checked = embedded.cli(*args, timeout=600)
    first_line = re.search(r"`(pre-check \(autopay\): 25 row\(s\): 20 to load), …`", readme)
    assert first_line and without_ansi(checked.stdout).startswith(first_line.group(1))
    assert q("SELECT count(*) FROM payment_methods") == before
