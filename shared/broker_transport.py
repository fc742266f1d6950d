"""kombu's Redis transport, with one failure made survivable and its per-message round trips shared.

When a worker loses Redis, kombu closes the dead channel and, on the way, hands its unacknowledged
messages back to their queues (``QoS.restore_unacked``). If Redis is still down at that moment the
restore raises a connection error outside Celery's reconnect loop, and the whole worker exits
("Unrecoverable error: ConnectionError"). Nothing is lost by skipping it: those messages are still
recorded in Redis's unacked index (restored after the visibility timeout) or, if Redis lost them, the
sweeper publishes their records again. So the restore is attempted, and a connection error is logged
and swallowed.

kombu takes one message per ``BRPOP`` and writes each message's unacknowledged entry, and removes it
on acknowledgement, in a round trip of its own: three round trips a message, which bound a worker
consuming one record per message. Here a ``BRPOP`` that returns a message is followed by one ``RPOP
key count`` for up to ``BULK_POP`` more of the same queue (within the prefetch limit), their unacked
entries are written in one pipeline, and the acknowledgements of one event-loop iteration (a batch's
arrive together) are sent in one pipeline. A worker killed between the pop and that pipeline loses at most those
messages from Redis; their records are still pending in the database, and the sweeper publishes them
again. Installed for the ``redis``, ``rediss`` and ``redis+socket`` URLs by :func:`install`, called
where the Celery app is built."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from time import time
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

log = logging.getLogger("cutover.broker")


BULK_POP = 200
"""Messages taken at most in one ``RPOP key count`` after a ``BRPOP`` (Redis 6.2 and later)."""


class QoS(kombu_redis.QoS):
    _appends: dict[str, Any] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acks: list[str] = []
        """Acknowledged, their unacked entries still to be removed (at the event loop's next tick)."""

    @contextmanager
    def appends_together(self) -> Iterator[None]:
        """Messages delivered inside have their unacked entries written in one pipeline at the end."""
        self._appends = {}
        try:
            yield
        finally:
            appends, self._appends = self._appends, None
            if appends:
                now = time()
                with self.pipe_or_acquire() as pipe:
                    for tag, message in appends.items():
                        delivery = message.delivery_info
                        pipe.zadd(self.unacked_index_key, {tag: now})
                        pipe.hset(self.unacked_key, tag, dumps([message._raw, delivery["exchange"],
                                                                 delivery["routing_key"]]))
                    pipe.execute()

    def append(self, message: Any, delivery_tag: str) -> None:
        if self._appends is None:
            super().append(message, delivery_tag)
            return
        self._appends[delivery_tag] = message
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if self._appends:  # acknowledged while its entry is still to be written: never write it
            self._appends.pop(delivery_tag, None)
        if not self.channel.connection.coalesce_acks:
            super().ack(delivery_tag)
            return
        self._acks.append(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def flush_acks(self) -> None:
        """Remove the unacked entries of the messages acknowledged since the last flush, in one
        pipeline. If Redis is unreachable, the entries stay and the messages come back after the
        visibility timeout as duplicates, which the database's idempotency ledger recognises."""
        tags, self._acks = self._acks, []
        if not tags:
            return
        try:
            with self.pipe_or_acquire() as pipe:
                for tag in tags:
                    self._remove_from_indices(tag, pipe)
                pipe.execute()
        except self.channel.connection_errors as exc:
            log.warning("Redis unreachable while acknowledging %d message(s) (%s): they come back after the "
                        "visibility timeout and are recognised as loaded", len(tags), exc)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if self._appends:
            self._appends.pop(delivery_tag, None)
        super().reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client: Any = None) -> None:
        try:
            self.flush_acks()  # what was acknowledged is never handed back
            super().restore_unacked(client)
        except self.channel.connection_errors as exc:
            delivered: Any = self._delivered
            count = len(delivered)
            delivered.clear()
            log.warning("Redis unreachable while handing back %d unacknowledged message(s) (%s): they come back "
                        "after the visibility timeout, or sooner through the sweeper", count, exc)


class Channel(kombu_redis.Channel):
    QoS = QoS
    bulk_pop = BULK_POP

    def _brpop_read(self, **options: Any) -> bool:
        """kombu's, delivering with the message every one an ``RPOP key count`` finds behind it."""
        try:
            try:
                found = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # the next iteration reconnects
                raise
            if not found:
                raise kombu_redis.Empty()
            key, item = bytes_to_str(found[0]), found[1]
            queue = key.rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            qos: Any = self.qos
            with qos.appends_together():
                self.connection._deliver(loads(bytes_to_str(item)), queue)
                for more in self._more(key, qos):
                    self.connection._deliver(loads(bytes_to_str(more)), queue)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()

    def _more(self, key: str, qos: Any) -> Iterable[bytes]:
        room = qos.can_consume_max_estimate()
        count = self.bulk_pop if room is None else min(self.bulk_pop, room)
        if count <= 0:
            return []
        try:
            with self.conn_or_acquire() as client:
                return client.rpop(key, count) or []
        except self._get_response_error() as exc:  # a Redis before 6.2: one message a BRPOP
            log.info("Redis refuses RPOP with a count (%s): messages are taken one at a time", exc)
            self.bulk_pop = 0
        except self.connection_errors as exc:
            log.warning("Redis unreachable while taking more messages (%s)", exc)
        return []


class Transport(kombu_redis.Transport):
    Channel = Channel
    coalesce_acks = False
    """Set once the transport runs in an event loop (a worker): acknowledgements are then sent in one
    pipeline per loop iteration. Celery acknowledges through callbacks queued for the next iteration,
    so a batch's acknowledgements arrive together."""

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)
        self.coalesce_acks = True
        loop.on_tick.add(self._flush_acks)

    def _flush_acks(self) -> None:
        channels: list[Any] = list(self.channels or ())
        for channel in channels:
            qos = channel._qos  # only a channel whose QoS exists has anything to flush
            if isinstance(qos, QoS):
                qos.flush_acks()


def install() -> None:
    """Point kombu's ``redis`` transport name at this module (idempotent)."""
    TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["rediss"] = f"{__name__}:Transport"
