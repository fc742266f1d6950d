"""`cutover flower`: Flower on the configured broker, behind basic auth. Without credentials it
refuses to start, unless told to run open and bound to localhost."""

from __future__ import annotations

import os
import sys

from shared.errors import ConfigError
from shared.settings import Settings

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")


def flower_command(settings: Settings, port: int | None, address: str, insecure_open: bool) -> tuple[list[str], dict[str, str]]:
    """The command and the environment it needs. Credentials travel in ``FLOWER_BASIC_AUTH`` (an
    environment variable Flower reads), never on the command line where `ps` would show them."""
    if settings.embedded_broker:
        raise ConfigError("set CUTOVER_BROKER_URL: Flower watches a shared broker (the embedded one lives only during a run)")
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


def exec_flower(settings: Settings, command: tuple[list[str], dict[str, str]]) -> None:
    cmd, extra = command
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    os.execvpe(cmd[0], cmd, {**env, **settings.as_env(), **extra})
