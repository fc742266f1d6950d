"""`cutover flower`: Flower on the configured broker, behind basic auth. Without credentials it
refuses to start, unless told to run open and bound to localhost. On the embedded default it watches
the bundled Redis of this home: it shares the one a running `cutover run` or `cutover console` keeps
up, or starts it (as ``ops.backends.broker`` does) and stops it when Flower ends.

Flower answers ``/metrics`` and ``/healthcheck`` without asking for the credentials (its handlers
for them do not check them), so keep Flower on 127.0.0.1 (the default) or behind a proxy that
guards those paths; the web console's own ``/metrics`` needs a sign-in or a token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from ops.embedded import EmbeddedRedis
from ops.processes import die_with_parent
from shared.errors import ConfigError
from shared.settings import Settings

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")


def flower_command(settings: Settings, port: int | None, address: str, insecure_open: bool) -> tuple[list[str], dict[str, str]]:
    """The command and the environment it needs. Credentials travel in ``FLOWER_BASIC_AUTH`` (an
    environment variable Flower reads), never on the command line where `ps` would show them."""
    cmd = [sys.executable, "-m", "celery", "-A", "workers.app", "flower",
           f"--port={port or settings.flower_port}", f"--address={address}"]
    if settings.flower_user and settings.flower_password:
        return cmd, {"FLOWER_BASIC_AUTH": f"{settings.flower_user}:{settings.flower_password}"}
    if insecure_open and address in LOCAL_ADDRESSES:
        return cmd, {}
    if insecure_open:
        raise ConfigError(f"--insecure-open is only allowed on localhost, not {address}")
    raise ConfigError("Flower needs credentials: set CUTOVER_FLOWER_USER and CUTOVER_FLOWER_PASSWORD "
                      "(or --insecure-open on localhost)")


def exec_flower(settings: Settings, command: tuple[list[str], dict[str, str]]) -> int:
    """Run Flower: in place of this process on a configured broker; on the embedded default as a child,
    beside the embedded Redis this command shares or starts (and stops when Flower ends)."""
    cmd, extra = command
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    env = {**env, **settings.as_env(), **extra}
    if not settings.embedded_broker:
        os.execvpe(cmd[0], cmd, env)
    with EmbeddedRedis(settings):
        # Flower never outlives this command: it is signalled if this process dies, and stopped
        # (as on Ctrl-C) when this process is asked to stop.
        child = subprocess.Popen(cmd, env=env, preexec_fn=die_with_parent())
        previous = signal.signal(signal.SIGTERM, _stop_requested)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.terminate()
            return child.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)


def _stop_requested(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
