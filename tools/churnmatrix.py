"""The churn note's measurements (reports/churn/churn.md): churn 0, 100 and
500 connections/s at 1,000 clients x 100 msg/s against our server, ngircd and
mosquitto, interleaved; then a 50% reconnect storm at 1,000 clients against
each (immediate, and jittered backoff).  Writes every run's JSON and chart
under OUT and one summary JSON (``summary.json``)::

    .venv/bin/python tools/churnmatrix.py reports/churn
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.report.timeline import timeline_chart
from bench.results.store import write_json
from bench.swarm import SwarmConfig, SwarmError, run_swarm
from bench.workload.membership import Churn

TARGETS = ("embedded", "ngircd", "mosquitto")
CHURN_RATES = (0.0, 100.0, 500.0)
BASE: dict[str, Any] = {
    "clients": 1000,
    "rate": 100.0,
    "duration_s": 10.0,
    "warmup_s": 1.0,
    "interval_s": 0.5,
    "progress": False,
    "quickack": True,  # as compare: ngircd leaves Nagle on; ACK every read at once for every target
}


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What the note's tables show of one run."""
    steady = [s for s in doc["labels"] if s["values"].get("membership") == "steady"]
    steady_p99 = steady[0]["latency_us"]["p99_us"] if steady else doc["latency_us"]["p99_us"]
    connects = doc.get("connects", {})
    churn = doc.get("churn") or {}
    out = {
        "delivered_ratio": doc["deliveries"]["delivered_ratio"],
        "lost": doc["integrity"]["lost"],
        "faults": doc["integrity"]["faults"],
        "p99_us": doc["latency_us"]["p99_us"],
        "steady_p99_us": steady_p99,
        "registration_p99_us": {k: v["total_us"]["p99_us"] for k, v in connects.items()},
        "churned": sum(churn.get("leaves", {}).values()),
        "skipped": churn.get("skipped"),
        "failed": churn.get("failed"),
        "notices": churn.get("notices"),
        "server_cpu_percent": doc["resources"]["server"]["summary"].get("cpu_percent_window")
        if doc["resources"]["server"]
        else None,
        "harness_cpu_percent": doc["resources"]["harness_cpu_percent_window"],
        "saturated": doc["load_generator_saturated"],
        "send_lag_p99_us": doc["send_lag_us"]["p99_us"],
        "load_average": doc["environment"]["load_average"],
        "notes": doc["notes"],
    }
    storm = doc.get("storm")
    if storm is not None:
        out["storm"] = {k: v for k, v in storm.items() if k != "time_to_register_us"} | {
            "time_to_register_p99_us": storm["time_to_register_us"]["p99_us"]
        }
    return out


def one(out: Path, name: str, config: SwarmConfig, results: dict[str, Any]) -> None:
    print(f"{name} ...", flush=True)
    try:
        doc = run_swarm(config)
    except (SwarmError, ValueError) as exc:
        results[name] = {"error": str(exc)}
        print(f"{name}: failed: {exc}", flush=True)
        return
    write_json(out / "runs" / f"{name}.json", doc)
    timeline_chart(doc, out / "runs" / f"{name}-time.png", name)
    results[name] = summary(doc)  # type: ignore[arg-type]
    print(f"{name}: {json.dumps(results[name])[:400]}", flush=True)


def main() -> int:
    out = Path(sys.argv[1])
    which = sys.argv[2] if len(sys.argv) > 2 else "all"
    (out / "runs").mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if which in ("all", "churn"):
        for rate in CHURN_RATES:
            for target in TARGETS:
                config = SwarmConfig(target=target, churn=Churn(rate=rate), **BASE)
                one(out, f"{target}-churn{rate:g}", config, results)
                write_json(path, results)
    if which in ("all", "storm"):
        for policy in ("immediate", "backoff"):
            for target in TARGETS:
                storm = Churn(storm_percent=50, storm_at_s=5.0, mode="reset", reconnect=policy)
                config = SwarmConfig(target=target, churn=storm, **{**BASE, "interval_s": 0.25})
                one(out, f"{target}-storm50-{policy}", config, results)
                write_json(path, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
