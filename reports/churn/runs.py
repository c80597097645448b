"""The churn note's runs at 1,000 clients x 30 msg/s (30k deliveries/s; 100 msg/s saturates this
2-core machine's load generator): churn 0 and 500/s, and a 50% reset storm with immediate
reconnects (``storm-backoff``: jittered exponential backoff), against each target named (default: ours).  Run from the repository root:

    .venv/bin/python reports/churn/runs.py OUT churn0,churn100,churn500,storm,storm-backoff embedded,ngircd,mosquitto
    .venv/bin/python reports/churn/runs.py OUT churn0,churn500 embedded,ngircd,mosquitto pinned
    .venv/bin/python reports/churn/runs.py OUT churn0,churn100,churn500 embedded,ngircd,mosquitto pinned rate=100
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import churnmatrix as m  # noqa: E402

from bench.results.store import write_json  # noqa: E402
from bench.swarm import SwarmConfig  # noqa: E402
from bench.workload.membership import Churn  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    (out / "runs").mkdir(parents=True, exist_ok=True)
    which = sys.argv[2].split(",") if len(sys.argv) > 2 else ["churn0", "churn500", "storm"]
    targets = sys.argv[3].split(",") if len(sys.argv) > 3 else ["embedded"]
    options = sys.argv[4:]
    rates = [float(o[len("rate=") :]) for o in options if o.startswith("rate=")]
    base = {**m.BASE, "rate": rates[-1] if rates else 30.0}
    if "pinned" in options:  # the server alone on CPU 1, the harness on CPU 0
        base |= {"server_cpus": (1,), "harness_cpus": (0,)}
    results: dict[str, object] = {}
    for target in targets:
        for rate in [float(w[len("churn") :]) for w in which if w.startswith("churn")]:
            config = SwarmConfig(target=target, churn=Churn(rate=rate), **base)
            m.one(out, f"{target}-churn{rate:g}", config, results)
        for policy in [p for p, w in (("immediate", "storm"), ("backoff", "storm-backoff")) if w in which]:
            storm = Churn(storm_percent=50, storm_at_s=5.0, mode="reset", reconnect=policy)
            config = SwarmConfig(target=target, churn=storm, **{**base, "interval_s": 0.25})
            m.one(out, f"{target}-storm50-{policy}", config, results)
        write_json(out / "summary.json", results)


if __name__ == "__main__":
    main()
