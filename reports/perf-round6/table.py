"""Print a round-6 cost file (cost/*.json) as its table: medians of 3 with (min-max).

    python reports/perf-round6/table.py reports/perf-round6/cost/3-final-100x300.json
"""

import json
import statistics as st
import sys

for path in sys.argv[1:]:
    with open(path) as f:
        doc = json.load(f)
    print(path)
    for target, rows in doc["latency_by_run"].items():
        cpu = doc["medians"][target]["cpu_us_per_delivery"]
        switches = doc["medians"][target]["switches_per_delivery"]
        p99 = [r["latency_p99_us"] / 1000 for r in rows]
        p50 = st.median(r["latency_p50_us"] / 1000 for r in rows)
        lag50 = st.median(r["send_lag_p50_us"] / 1000 for r in rows)
        lag99 = st.median(r["send_lag_p99_us"] / 1000 for r in rows)
        print(
            f"| {target} | {cpu[0]:.2f} ({cpu[1]:.2f}-{cpu[2]:.2f}) "
            f"| {st.median(p99):.2f} ({min(p99):.2f}-{max(p99):.2f}) "
            f"| {p50:.2f} | {lag50:.2f} / {lag99:.2f} | {switches[0]:.4f} |"
        )
