"""kombu's Redis transport, with one failure made survivable.

When a worker loses Redis, kombu closes the dead channel and, on the way, hands its unacknowledged
messages back to their queues (``QoS.restore_unacked``). If Redis is still down at that moment the
restore raises a connection error outside Celery's reconnect loop, and the whole worker exits
("Unrecoverable error: ConnectionError"). Nothing is lost by skipping it: those messages are still
recorded in Redis's unacked index (restored after the visibility timeout) or, if Redis lost them, the
sweeper publishes their records again. So the restore is attempted, and a connection error is logged
and swallowed. Installed for the ``redis``, ``rediss`` and ``redis+socket`` URLs by
:func:`install`, called where the Celery app is built."""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

log = logging.getLogger("cutover.broker")


class QoS(kombu_redis.QoS):
    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except self.channel.connection_errors as exc:
            delivered: Any = self._delivered
            count = len(delivered)
            delivered.clear()
            log.warning("Redis unreachable while handing back %d unacknowledged message(s) (%s): they come back "
                        "after the visibility timeout, or sooner through the sweeper", count, exc)


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Point kombu's ``redis`` transport name at this module (idempotent)."""
    TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["rediss"] = f"{__name__}:Transport"
