"""The vault across processes, with real workers on SQLite and PostgreSQL (runbook "Records with passwords
are dead", §14 "Rotating the key", docs/cli.md `cutover vault rotate`):

* workers with another key than the producer's dead-letter the records whose secrets they must open
  ("cannot be decrypted"), and a replay loads them once the keys agree;
* `cutover vault rotate` re-seals the target's card and bank numbers and the staged records under the
  current key, so workers that know only the new key load what was staged before the rotation;
* after two rotations (keys listed oldest first) a file run again is still recognised: nothing is added."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import InvalidValue
from shared.vault import PREFIX, Vault
from tests.conftest import CASES, Cluster, new_vault_key

pytestmark = pytest.mark.slow

SERVICES_REFERENCE = str(CASES / "services" / "reference.xml")  # Owner Acme, TaxCode Exempt and State


def vault(key: str) -> Vault:
    import base64

    return Vault(base64.urlsafe_b64decode(key))


def write(path: Path, *records: str) -> str:
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<Import>\n' + "".join(f"  {r}\n" for r in records)
                    + "</Import>\n", encoding="utf-8")
    return str(path)


def verify(cluster: Cluster, account: str, password: str) -> bool:
    from workers.passwords import verify_password

    [(stored,)] = cluster.query("SELECT password_hash FROM accounts WHERE name = :n", n=account)
    return bool(stored) and verify_password(stored, password)


def test_workers_with_another_key_dead_letter_secrets_until_the_keys_agree(cluster: Cluster, tmp_path: Path) -> None:
    data = write(tmp_path / "users.xml",
                 '<User Name="ann" Owner="Acme" Password="ann-PW-4410"/>',
                 '<User Name="bob" Owner="Acme"/>',
                 '<Contact User="ann" ContactName="Ann A"/>')
    stranger = cluster.start_worker(CUTOVER_VAULT_KEY=new_vault_key())  # generated its own key, say
    code, doc = cluster.run_json("run", SERVICES_REFERENCE, data)
    assert code == 3, doc
    assert {e: (r["committed"], r["dead"], r["blocked"]) for e, r in doc["entities"].items() if e in ("User", "Contact")} \
        == {"User": (1, 1, 0), "Contact": (0, 0, 1)}, "bob has no secret and loads; ann's contact waits for her"
    [letter] = [lt for lt in cluster.run_json("dlq", "list", "--entity", "User")[1]]
    assert (letter["error_class"], letter["stage"], letter["value"]) == ("InvalidValue", "load", "«not shown»")
    assert letter["message"].startswith("secret cannot be decrypted with this vault key or the previous ones")
    assert "ann-PW-4410" not in cluster.log_text()

    cluster.stop_worker(stranger)
    cluster.start_worker()  # the producer's key: the keys agree now
    code, replay = cluster.run_json("dlq", "replay", "--entity", "User", "--error-class", "InvalidValue")
    assert code == 0, replay
    assert {e: r["committed"] for e, r in replay["entities"].items()} == {"User": 1, "Contact": 1}
    assert verify(cluster, "ann", "ann-PW-4410")


def sealed_secrets(cluster: Cluster) -> dict[str, list[str]]:
    """Every stored ciphertext: the target's card and bank numbers, and the staged records' secret fields."""
    import json

    staged = []
    for (payload,) in cluster.query("SELECT payload FROM staged_records WHERE entity IN "
                                    "('User', 'UserPaymentMethodCreditCard', 'UserPaymentMethodACH')"):
        fields = payload if isinstance(payload, dict) else json.loads(payload)
        staged += [v for k, v in fields.items() if k in ("Password", "CardNumber", "AccountNumber")
                   and isinstance(v, str) and v.startswith(PREFIX)]
    target = [r[0] for r in cluster.query("SELECT secret FROM account_payment_methods WHERE secret IS NOT NULL")]
    return {"staged_records": staged, "account_payment_methods": target}


def opens_only_with(secrets: list[str], good: Vault, old: Vault) -> bool:
    for token in secrets:
        good.decrypt(token)
        with pytest.raises(InvalidValue):
            old.decrypt(token)
    return True


def test_rotate_reseals_every_secret_and_reruns_are_still_recognised(cluster: Cluster, tmp_path: Path) -> None:
    k1 = cluster.env["CUTOVER_VAULT_KEY"]
    records = write(tmp_path / "records.xml",
                    '<User Name="ann" Owner="Acme" Password="ann-PW-1"/>',
                    '<User Name="zed" Owner="Acme" Password="zed-PW-2" TaxCode="Gold"/>',  # dead until Gold exists
                    '<UserPaymentMethodCreditCard User="ann" CardType="Visa" CardNumber="4111 1111 1111 1111" '
                    'ExpiryMonth="3" ExpiryYear="2031" NameOnCard="Ann"/>',
                    '<UserPaymentMethodCreditCard User="zoe" CardType="Visa" CardNumber="4012 8888 8888 1881" '
                    'ExpiryMonth="4" ExpiryYear="2031" NameOnCard="Zoe"/>',  # dead until zoe exists
                    '<UserPaymentMethodACH User="ann" BankName="First" RoutingNumber="011000015" '
                    'AccountNumber="000123456789" AccountType="Checking" NameOnAccount="Ann"/>')
    first_worker = cluster.start_worker()
    code, first = cluster.run_json("run", SERVICES_REFERENCE, records)
    assert code == 3 and first["totals"]["dead"] == 2, first
    before = sealed_secrets(cluster)
    assert (len(before["staged_records"]), len(before["account_payment_methods"])) == (5, 2)

    # rotation 1: K2 is the key, K1 is listed; workers restart with K2 alone
    k2 = new_vault_key()
    second = cluster.with_env(CUTOVER_VAULT_KEY=k2, CUTOVER_VAULT_PREVIOUS_KEYS=k1)
    rotated = second.cli("vault", "rotate")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert rotated.stdout.splitlines()[:3] == ["account_payment_methods: 2 secret(s) sealed under the current key",
                                               "payment_methods: 0 secret(s) sealed under the current key",
                                               "staged_records: 5 secret(s) sealed under the current key"]
    assert "keep the FIRST key listed in CUTOVER_VAULT_PREVIOUS_KEYS for good" in rotated.stdout
    after = sealed_secrets(cluster)
    assert all(opens_only_with(tokens, vault(k2), vault(k1)) for tokens in after.values())

    cluster.stop_worker(first_worker)
    cluster.start_worker(CUTOVER_VAULT_KEY=k2)  # the old key is not listed on the workers any more
    fix = write(tmp_path / "fix.xml", '<TaxCode Name="Gold" Rate1="0.05"/>', '<User Name="zoe" Owner="Acme"/>')
    assert second.run_json("run", fix)[0] == 0
    code, replay = second.run_json("dlq", "replay")
    assert code == 0, replay
    assert {e: r["committed"] for e, r in replay["entities"].items()} == {"User": 1, "UserPaymentMethodCreditCard": 1}
    assert verify(cluster, "zed", "zed-PW-2"), "staged under K1, re-sealed under K2, opened by a K2-only worker"
    numbers = {vault(k2).decrypt(s) for (s,) in cluster.query("SELECT secret FROM account_payment_methods")}
    assert numbers == {"4111111111111111", "4012888888881881", "000123456789"}

    # rotation 2: K3, with K1 then K2 listed oldest first; the first file is still recognised
    k3 = new_vault_key()
    third = cluster.with_env(CUTOVER_VAULT_KEY=k3, CUTOVER_VAULT_PREVIOUS_KEYS=f"{k1},{k2}")
    rotated = third.cli("vault", "rotate")
    assert rotated.returncode == 0 and rotated.stdout.startswith(
        "account_payment_methods: 3 secret(s) sealed under the current key"), rotated.stdout
    assert all(opens_only_with(tokens, vault(k3), vault(k2)) for tokens in sealed_secrets(cluster).values())
    methods = cluster.query("SELECT count(*) FROM account_payment_methods")
    code, again = third.run_json("run", SERVICES_REFERENCE, records)
    assert code == 0 and again["state"] == "completed", again
    assert again["totals"]["committed"] == 0, "every record of the first file is recognised after two rotations"
    assert cluster.query("SELECT count(*) FROM account_payment_methods") == methods
