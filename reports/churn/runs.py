"""The churn note's runs at 1,000 clients x 30 msg/s (30k deliveries/s; 100 msg/s saturates this
2-core machine's load generator): churn 0 and 500/s, and a 50% reset storm with immediate reconnects."""
import json, sys
from pathlib import Path
sys.path.insert(0, "/work/wt/core/tools")
import churnmatrix as m
from bench.results.store import write_json
from bench.swarm import SwarmConfig
from bench.workload.membership import Churn


def main() -> None:
    out = Path(sys.argv[1]); (out / "runs").mkdir(parents=True, exist_ok=True)
    base = {**m.BASE, "rate": 30.0}
    results = {}
    for rate in (0.0, 500.0):
        for target in m.TARGETS:
            m.one(out, f"{target}-churn{rate:g}", SwarmConfig(target=target, churn=Churn(rate=rate), **base), results)
            write_json(out / "summary.json", results)
    for target in m.TARGETS:
        storm = Churn(storm_percent=50, storm_at_s=5.0, mode="reset", reconnect="immediate")
        m.one(out, f"{target}-storm50-immediate", SwarmConfig(target=target, churn=storm, **{**base, "interval_s": 0.25}), results)
        write_json(out / "summary.json", results)


if __name__ == "__main__":
    main()
