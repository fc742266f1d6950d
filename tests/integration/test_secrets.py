"""A Password never appears in clear: not in Redis (every command, decoded message bodies included,
which is also what Flower shows), not in worker logs, CLI output, dead letters or staged records."""

from __future__ import annotations

import base64
import binascii
import re
import threading

import pytest
import redis

from tests.conftest import CASES, Cluster

pytestmark = pytest.mark.slow

PASSWORDS = [m.group(1) for m in re.finditer(r'Password="([^"]+)"', (CASES / "engageip" / "faults-accounts.xml").read_text())]
B64 = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


class RedisRecorder:
    """Every command Redis receives during the test (MONITOR), kept as text."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        try:
            with self.client.monitor() as monitor:
                for command in monitor.listen():
                    self.lines.append(str(command.get("command", "")))
        except (redis.ConnectionError, ValueError):
            return

    def __enter__(self) -> RedisRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.client.connection_pool.disconnect()

    def decoded_text(self) -> str:
        """Raw commands plus every base64 blob decoded (kombu base64-encodes message bodies)."""
        parts = list(self.lines)
        for line in self.lines:
            for blob in B64.findall(line):
                for decode in (base64.b64decode, base64.urlsafe_b64decode):
                    try:
                        parts.append(decode(blob + "=" * (-len(blob) % 4)).decode("utf-8", "replace"))
                    except (binascii.Error, ValueError):
                        continue
        return "\n".join(parts)


def test_password_never_in_clear(cluster: Cluster) -> None:
    assert len(PASSWORDS) >= 8
    cluster.start_worker()
    with RedisRecorder(cluster.env["CUTOVER_BROKER_URL"]) as recorder:
        files = [str(CASES / "engageip" / name) for name in ("faults-reference.xml", "faults-accounts.xml")]
        done = cluster.cli("run", *files)
        shown = cluster.cli("dlq", "list", "--json")
        letter_ids = [int(i) for i in re.findall(r'"id": (\d+)', shown.stdout)]
        details = [cluster.cli("dlq", "show", str(i)).stdout for i in letter_ids]
    redis_text = recorder.decoded_text()
    # the recording really saw the task messages (the labels Flower shows as arguments), and they name
    # their records by id: not even the vault's ciphertext travels through the broker
    assert "User 'admin/alice'" in redis_text
    assert '"ids": [' in redis_text
    assert "vault:v1:" not in redis_text
    haystacks = {
        "redis": redis_text,
        "worker log": cluster.log.read_text(),
        "cli": done.stdout + done.stderr + shown.stdout + "".join(details),
        "dead letters": cluster.dump("dead_letters"),
        "staged records": cluster.dump("staged_records"),
        "accounts": cluster.dump("accounts"),
    }
    for where, text in haystacks.items():
        for password in PASSWORDS:
            assert password not in text, f"password {password[:3]}… in clear in {where}"
    from workers.passwords import verify_password

    (stored,) = cluster.query("SELECT password_hash FROM accounts WHERE name = 'alice'")[0]
    assert stored.startswith("$argon2id$") and verify_password(stored, "alice-PW-7781")
    assert not verify_password(stored, "alice-PW-7782")
