"""Prometheus metrics of runs, per run and entity, read from the database at each scrape (the
counts a Grafana board needs to watch a cut-over): records read, committed, skipped, dead, blocked
and pending per entity; records in flight, settled per second and state per run. Runs in progress
and those finished within the last day are exported, so old runs do not pile up as series."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from ops.summary import run_document
from ops.web.runview import ACTIVE, Meters
from shared.dispatch import in_flight
from shared.schema.base import utcnow
from shared.schema.control import Run

RECENT = timedelta(days=1)
STATES = ("staging", "ready", "running", "completed", "refused")


class RunCollector(Collector):
    def __init__(self, sf: sessionmaker[Session], meters: Meters) -> None:
        self.sf, self.meters = sf, meters

    def collect(self) -> Iterator[Metric]:
        records = GaugeMetricFamily("cutover_records", "Records of a run per entity type and outcome "
                                    "(read, committed, skipped, dead, blocked, pending).",
                                    labels=["run", "kind", "entity", "wave", "outcome"])
        flying = GaugeMetricFamily("cutover_records_in_flight", "Records of a run published and not yet settled "
                                   "(bounded by CUTOVER_MAX_IN_FLIGHT).", labels=["run"])
        state = GaugeMetricFamily("cutover_run_state", "1 for the state a run is in.", labels=["run", "kind", "state"])
        rate = GaugeMetricFamily("cutover_records_settled_per_second", "Records a run settled per second over the "
                                 "last 30 s, as the console's run page measured it.", labels=["run"])
        with self.sf() as session:
            runs = session.scalars(select(Run).where(or_(Run.state.in_(ACTIVE), Run.finished_at >= utcnow() - RECENT))
                                   .order_by(Run.created_at.desc()).limit(100)).all()
            for run in runs:
                doc = run_document(session, run.id)
                for entity, row in doc["entities"].items():
                    for outcome in ("read", "committed", "skipped", "dead", "blocked", "pending"):
                        records.add_metric([run.id, run.kind, entity, str(row["wave"]), outcome], row[outcome])
                flying.add_metric([run.id], in_flight(session, run.id) if run.state == "running" else 0)
                for name in STATES:
                    state.add_metric([run.id, run.kind, name], 1.0 if run.state == name else 0.0)
                measured = self.meters.rate(run.id)
                if measured is not None:
                    rate.add_metric([run.id], measured)
        yield from (records, flying, state, rate)


def registry_for(sf: sessionmaker[Session], meters: Meters) -> CollectorRegistry:
    """A registry of its own: the console's /metrics shows runs, not this process's internals."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(sf, meters))
    return registry
