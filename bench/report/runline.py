"""One human line per swarm run (what ``sweep``, ``run``, ``compare`` and
``soak`` print after each point)."""

from __future__ import annotations

from bench.measure import thresholds
from bench.report.fmt import ms
from bench.results.schema import RunDocument, server_summary

#: Which messages each figure covers, named wherever two of them appear together:
#: "100.00% delivered" (the measured messages) beside "lost 2" (warm-up included)
#: or beside fewer deliveries/s than offered (a longer window) is no contradiction.
MEASURED = "measured"
#: deliveries/s divide by the measured window stretched to the last arrival;
#: offered/s by the send window alone, so late arrivals make it the smaller.
RATE_WINDOW = "until the last arrival"
#: The integrity counters cover every message, warm-up included.
ALL_TRAFFIC = "all traffic incl. warm-up"


def _lat(us: float | None) -> str:
    return ms(us, unit="ms")


def summary_line(doc: RunDocument) -> str:
    p = doc["parameters"]
    lat = doc["latency_us"]
    d = doc["deliveries"]
    i = doc["integrity"]
    server = server_summary(doc)
    ratio = d["delivered_ratio"]
    rate = f"{p['rate']:g}/s" if p["rate"] else "burst"
    parts = [
        f"clients={p['clients']} senders={p['senders']} rate={rate} msgs={p['measured_messages']}",
        f"{MEASURED}: delivered {d['delivered']}/{d['expected']} ({100 * ratio:.2f}%)"
        if ratio is not None
        else f"{MEASURED}: no deliveries",
        f"{d['per_s'] or 0:,.0f} deliveries/s {RATE_WINDOW} (offered {d.get('offered_per_s') or 0:,.0f}/s)",
        f"p50 {_lat(lat['p50_us'])} p90 {_lat(lat['p90_us'])} p99 {_lat(lat['p99_us'])} "
        f"p99.9 {_lat(lat['p99_9_us'])} max {_lat(lat['max_us'])}",
        f"{ALL_TRAFFIC}: lost {i['lost']} dup {i['duplicated']} reord {i['reordered']} corrupt {i['corrupted']}"
        + (f" stray {i['strays']}" if "strays" in i else ""),
    ]
    cpu = server.get("cpu_percent_window")
    if cpu is not None:
        parts.append(f"server CPU {cpu:.0f}%")
    rss = server.get("rss_max_bytes")
    if rss is not None:
        parts.append(f"server RSS {rss / 2**20:.0f}MiB threads {server.get('threads_max')}")
    harness = doc["resources"].get("harness_cpu_percent_window")
    if harness is not None:
        parts.append(f"harness CPU {harness:.0f}%")
    rx_lag = doc.get("receive_lag_us")
    if rx_lag:
        parts.append(f"harness read lag p99 {_lat(rx_lag['p99_us'])}")
    if doc["connections"]["failed"]:
        parts.append(f"FAILED CONNECTIONS {doc['connections']['failed']}")
    if doc["load_generator_saturated"]:
        parts.append("LOAD GENERATOR SATURATED")
    return " | ".join(parts)


def threshold_lines(doc: RunDocument) -> list[str]:
    """``  threshold p99<50ms: ok (12.345 ms)``, one per threshold the run was checked against."""
    out = []
    for result in doc.get("thresholds", []):
        shown = thresholds.parse(result["threshold"]).shown(result["value"])
        mark = "ok" if result["ok"] else "FAILED"
        stopped = ", it stopped the run" if result["aborted"] else ""
        out.append(f"  threshold {result['threshold']}: {mark} ({shown}{stopped})")
    return out
