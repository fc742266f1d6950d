"""The Celery application, configured in one place from the settings and the entity registry, so the
queues and routes workers consume can't drift from what the dispatcher publishes. Tasks are attached
by ``workers.app``; a process that only publishes (the CLI) uses this app without importing them."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from kombu import Queue

from shared.broker_transport import install as install_transport
from shared.entities import CONTROL_QUEUE
from shared.errors import ConfigError
from shared.registry import Registry
from shared.settings import Settings

DISPATCH_START = "cutover.dispatch.start"
DISPATCH_CHUNK_DONE = "cutover.dispatch.chunk_done"
DISPATCH_RESUME = "cutover.dispatch.resume"
DISPATCH_TASKS = (DISPATCH_START, DISPATCH_CHUNK_DONE, DISPATCH_RESUME)


def queue_name(logical: str, identity: str) -> str:
    """The broker queue of a logical queue (``accounts``) for the database ``identity``."""
    return f"{logical}.{identity}"


def build_app(settings: Settings, registry: Registry, identity: str, only: Sequence[str] = ()) -> Celery:
    """``identity``: the database's installation id, carried by every queue name. ``only``: the
    logical queues a worker consumes (default: all of them)."""
    install_transport()
    app = Celery("cutover", broker=settings.effective_broker_url, backend=settings.effective_result_backend)
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        # kombu sweeps for unacknowledged messages every interval × throttle seconds (100 s by default);
        # tie the sweep to the visibility timeout so a lost worker's messages come back promptly.
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
    }
    logical = [CONTROL_QUEUE, *registry.queues]
    unknown = sorted(set(only) - set(logical))
    if unknown:
        raise ConfigError(f"unknown queue(s) {', '.join(unknown)}; the queues are {', '.join(logical)}")
    queues = [Queue(queue_name(name, identity)) for name in logical if not only or name in only]
    routes = {entity.task_name: {"queue": queue_name(entity.queue, identity)} for entity in registry}
    routes.update({name: {"queue": queue_name(CONTROL_QUEUE, identity)} for name in DISPATCH_TASKS})
    app.conf.update(
        task_queues=queues,
        task_default_queue=queue_name(CONTROL_QUEUE, identity),
        task_routes=routes,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=False,
        worker_prefetch_multiplier=max(settings.worker_prefetch, settings.messages_per_batch),
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        # A broker outage of any length is waited out: reconnect with back-off, forever.
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        result_expires=3600,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        cutover_identity=identity,
    )
    return app
