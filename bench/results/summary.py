"""One run's headline numbers: the one place that knows where they are in a
run document.

The index (:func:`bench.results.store.index_entry`), the capacity search's
steps, the comparison's points and the flat rows of ``export``/``diff`` all
take their numbers from here, so a run document's layout can change in this
one module without the four drifting apart.  The capacity step and the
comparison point are :class:`~bench.results.schema.RunSummary` with keys of
their own: :func:`summarize_into` fills one in place.
"""

from __future__ import annotations

from bench.results.schema import RunDocument, RunSummary, server_summary


def summarize_into(record: RunSummary, doc: RunDocument) -> None:
    """Set the run's latency percentiles, deliveries, faults and resources in ``record``."""
    lat = doc["latency_us"]
    server = server_summary(doc)
    record["p50_us"] = lat["p50_us"]
    record["p90_us"] = lat["p90_us"]
    record["p95_us"] = lat.get("p95_us")
    record["p99_us"] = lat["p99_us"]
    record["p99_9_us"] = lat["p99_9_us"]
    record["max_us"] = lat["max_us"]
    record["deliveries_per_s"] = doc["deliveries"]["per_s"]
    record["delivered_ratio"] = doc["deliveries"]["delivered_ratio"]
    record["faults"] = doc["integrity"]["faults"]
    record["failed_connections"] = doc["connections"]["failed"]
    record["server_cpu_percent"] = server.get("cpu_percent_window")
    record["server_rss_max_bytes"] = server.get("rss_max_bytes")
    record["harness_cpu_percent"] = doc["resources"].get("harness_cpu_percent_window")
    record["load_generator_saturated"] = bool(doc.get("load_generator_saturated"))


def run_summary(doc: RunDocument) -> RunSummary:
    """The run's summary on its own (``index.json``'s ``summary``)."""
    summary: RunSummary = {}
    summarize_into(summary, doc)
    return summary
