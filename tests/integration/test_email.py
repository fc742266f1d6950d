"""`run --email` at its edges (docs/cli.md `--email`, runbook §13 "E-mailed reports"), with real workers
and a real SMTP server (aiosmtpd) in the test: refused with `--no-wait` before anything starts; a report
that cannot be sent is said plainly and leaves the exit status alone; STARTTLS really used against a
server that offers it (and requires it), `smtp_starttls = never` then failing, and `always` failing
against a server without it."""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CASES, Cluster

pytestmark = pytest.mark.slow

REFERENCE = str(CASES / "engageip" / "faults-reference.xml")
ACCOUNTS = str(CASES / "engageip" / "faults-accounts.xml")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Inbox:
    """aiosmtpd handler: what it received, and whether each message came over TLS."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append((list(envelope.rcpt_tos), session.ssl is not None))
        return "250 Message accepted for delivery"


def self_signed(folder: Path) -> ssl.SSLContext:
    """A server context with a certificate made for 127.0.0.1 (smtplib's STARTTLS does not verify it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.fixture
def smtp_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a free port; with the `tls` parameter it offers STARTTLS and requires it."""
    from aiosmtpd.controller import Controller

    inbox, port = Inbox(), free_port()
    tls = getattr(request, "param", False)
    options: dict[str, Any] = {"tls_context": self_signed(tmp_path), "require_starttls": True} if tls else {}
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    yield inbox, port
    controller.stop()


def mailing(cluster: Cluster, port: int, starttls: str) -> Cluster:
    return cluster.with_env(CUTOVER_SMTP_HOST="127.0.0.1", CUTOVER_SMTP_PORT=str(port), CUTOVER_SMTP_STARTTLS=starttls,
                            CUTOVER_MAIL_FROM="cutover@example.com")


def test_email_with_no_wait_is_refused_before_anything_starts(cluster: Cluster) -> None:
    done = mailing(cluster, free_port(), "never").cli("run", REFERENCE, "--email", "ops@example.com", "--no-wait")
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.strip() == ("error: --email sends the report when the run ends: it cannot be combined with "
                                   "--no-wait")
    assert cluster.query("SELECT count(*) FROM runs") == [(0,)]


def test_a_report_that_cannot_be_sent_leaves_the_exit_status_alone(cluster: Cluster) -> None:
    cluster.start_worker()
    closed = free_port()  # nothing listens there
    unreachable = mailing(cluster, closed, "auto")
    code, doc = unreachable.run_json("run", REFERENCE, ACCOUNTS, "--email", "ops@example.com")
    assert doc["state"] == "completed" and code == 3, doc
    assert doc["email"].startswith(f"failed: the report could not be e-mailed through 127.0.0.1:{closed}: ")
    assert doc["email"].endswith("; `cutover report` writes it to files")
    plain = unreachable.cli("run", REFERENCE, "--email", "ops@example.com")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert f"the report could not be e-mailed through 127.0.0.1:{closed}: " in plain.stdout
    assert "report e-mailed to" not in plain.stdout


@pytest.mark.parametrize("smtp_server", [True], indirect=True)
def test_starttls_is_used_when_the_server_offers_it(cluster: Cluster, smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    cluster.start_worker()
    code, doc = mailing(cluster, port, "auto").run_json("run", REFERENCE, ACCOUNTS, "--email", "ops@example.com")
    assert code == 3 and doc["email"] == "sent to ops@example.com", doc
    assert inbox.messages == [(["ops@example.com"], True)], "delivered over TLS"

    code, doc = mailing(cluster, port, "always").run_json("run", REFERENCE, "--email", "ops@example.com")
    assert code == 0 and doc["email"] == "sent to ops@example.com", doc
    assert inbox.messages[1] == (["ops@example.com"], True)

    # the server requires STARTTLS: a client told never to use it is refused, and says so
    code, doc = mailing(cluster, port, "never").run_json("run", REFERENCE, "--email", "ops@example.com")
    assert code == 0, doc
    assert doc["email"].startswith(f"failed: the report could not be e-mailed through 127.0.0.1:{port}: ")
    assert "STARTTLS" in doc["email"]
    assert len(inbox.messages) == 2


def test_starttls_always_against_a_server_without_it_fails_plainly(cluster: Cluster,
                                                                 smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    cluster.start_worker()
    code, doc = mailing(cluster, port, "always").run_json("run", REFERENCE, "--email", "ops@example.com")
    assert code == 0, doc
    assert doc["email"].startswith(f"failed: the report could not be e-mailed through 127.0.0.1:{port}: ")
    assert "STARTTLS" in doc["email"], doc["email"]
    assert inbox.messages == []
    code, doc = mailing(cluster, port, "auto").run_json("run", REFERENCE, "--email", "ops@example.com")
    assert code == 0 and doc["email"] == "sent to ops@example.com"
    assert inbox.messages == [(["ops@example.com"], False)], "auto: plain SMTP when the server offers no STARTTLS"
