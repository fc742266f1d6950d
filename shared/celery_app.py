"""The Celery application, configured in one place from the settings and the entity registry, so the
queues and routes workers consume can't drift from what the dispatcher publishes. Tasks are attached
by ``workers.app``; a process that only publishes (the CLI) uses this app without importing them."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from shared.entities import CONTROL_QUEUE
from shared.registry import Registry
from shared.settings import Settings

DISPATCH_START = "cutover.dispatch.start"
DISPATCH_CHUNK_DONE = "cutover.dispatch.chunk_done"
DISPATCH_RESUME = "cutover.dispatch.resume"
DISPATCH_TASKS = (DISPATCH_START, DISPATCH_CHUNK_DONE, DISPATCH_RESUME)


def build_app(settings: Settings, registry: Registry) -> Celery:
    app = Celery("cutover", broker=settings.effective_broker_url, backend=settings.effective_result_backend)
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        # kombu sweeps for unacknowledged messages every interval × throttle seconds (100 s by default);
        # tie the sweep to the visibility timeout so a lost worker's messages come back promptly.
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
    }
    queues = [Queue(name) for name in [CONTROL_QUEUE, *registry.queues]]
    routes = {entity.task_name: {"queue": entity.queue} for entity in registry}
    routes.update({name: {"queue": CONTROL_QUEUE} for name in DISPATCH_TASKS})
    app.conf.update(
        task_queues=queues,
        task_default_queue=CONTROL_QUEUE,
        task_routes=routes,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=False,
        worker_prefetch_multiplier=max(settings.worker_prefetch, settings.worker_batch_size),
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        result_expires=3600,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app
