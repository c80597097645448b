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
    boundary = d.get("boundary", 0)
    parts = [
        f"clients={p['clients']} senders={p['senders']} rate={rate} msgs={p['measured_messages']}",
        f"{MEASURED}: delivered {d['delivered'] - boundary}/{d['expected']} ({100 * ratio:.2f}%)"
        + (f" +{boundary} at churn boundaries" if boundary else "")
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
    parts += churn_parts(doc)
    if doc["connections"]["failed"]:
        parts.append(f"FAILED CONNECTIONS {doc['connections']['failed']}")
    if doc["load_generator_saturated"]:
        parts.append("LOAD GENERATOR SATURATED")
    return " | ".join(parts)


def churn_parts(doc: RunDocument) -> list[str]:
    """A churn run's and a storm's headline: connections churned, registration p99, the storm's recovery."""
    out = []
    churn = doc.get("churn")
    if churn is not None:
        churned = sum(churn["leaves"].values())
        kinds = doc.get("connects", {})
        reg = [f"{kind} p99 {_lat(kinds[kind]['total_us']['p99_us'])}" for kind in ("churn", "storm") if kind in kinds]
        failed = f", {churn['failed']} attempts failed" if churn["failed"] else ""
        out.append(f"churned {churned} (connect {', '.join(reg) or 'none'}{failed})")
    storm = doc.get("storm")
    if storm is not None:
        back = f"all back in {storm['time_to_all_s']:.3f}s" if storm["time_to_all_s"] is not None else "NOT ALL BACK"
        out.append(f"storm {storm['percent']:g}% at {storm['at_s']:g}s: {storm['back']}/{storm['seats']} {back}")
    return out


def threshold_lines(doc: RunDocument) -> list[str]:
    """``  threshold p99<50ms: ok (12.345 ms)``, one per threshold the run was checked against."""
    out = []
    for result in doc.get("thresholds", []):
        shown = thresholds.parse(result["threshold"]).shown(result["value"])
        mark = "ok" if result["ok"] else "FAILED"
        stopped = ", it stopped the run" if result["aborted"] else ""
        out.append(f"  threshold {result['threshold']}: {mark} ({shown}{stopped})")
    return out
