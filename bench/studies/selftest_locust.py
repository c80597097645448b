"""``selftest --locust``: the Locust users against the fault-injecting relay.

The relay numbers receivers by registration and senders by their first probe
(``--ids arrival``: Locust names and sender ids carry no index) and records
which name and sender id each number got.  The scenarios:

* ``locust-integrity``: a master and two worker processes (``locust
  --processes 2``); seeded drops, duplicates, swaps and corruptions.  The
  users count integrity per (receiver, sender), the workers ship the
  counters to the master with the HDR deltas, and the merged counters must
  equal the injected faults, pair by pair.
* ``locust-light`` and ``locust-heavy``: every delivery held 20 ms by the
  relay, at about 300 and 9,500 deliveries/s.  The users' exact median
  (kernel receive stamps, the swarm's receive path) must lie within
  1% + 0.2 ms of the relay's (the delay plus its measured pass-through),
  however busy the Locust process is.
* ``locust-disconnect``: the relay disconnects one user mid-run.  Locust
  must report it as one ``CONNECT`` failure, the user comes back under a new
  name, and what the disconnected connection received must be exactly what
  the relay delivered to it.  (Loss is counted as gaps inside what each
  connection received: a user's two connections are two receivers.)
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.measure.stats import LatencyHistogram
from bench.targets.base import free_port
from bench.targets.faultplan import FaultOptions, ScheduleFile
from bench.targets.faultrelay import FaultRelayTarget, option_argv

if TYPE_CHECKING:
    from bench.studies.selftest import Outcome

LOCUSTFILE = Path(__file__).resolve().parents[1] / "locustfile.py"
#: Users spawn at this rate: all of them within well under a second.
SPAWN_RATE = 100
#: A hung Locust run is killed after this many seconds.
TIMEOUT_S = 90.0
#: The latency scenarios' constant delay (ms).
DELAY_MS = 20.0


@dataclass(frozen=True)
class LocustScenario:
    name: str
    users: int
    rate: float  #: probes per second per user
    seconds: int
    faults: FaultOptions
    kind: str  #: "integrity", "latency" or "disconnect"
    processes: int = 0  #: ``--processes N`` (0: one process)
    payload: int = 32


def scenarios() -> list[LocustScenario]:
    """The Locust scenarios (the same with and without ``--ci``: only the tolerance differs)."""
    # ~80 probes per sender, faults on sequence numbers 10..59 (after every
    # user has registered: Locust spawns them all in well under a second).
    integrity = FaultOptions(seed=41, seq_lo=10, seq_hi=60, drop=3, duplicate=3, swap=3, corrupt=3)
    # The third user to register is cut after 100 probes (two seconds of the others' 50/s).
    disconnect = FaultOptions(disconnect=2, disconnect_after=100)
    return [
        LocustScenario("locust-integrity", 6, 10.0, 8, integrity, "integrity", processes=2),
        LocustScenario("locust-light", 6, 10.0, 4, FaultOptions(delay_ms=DELAY_MS), "latency"),
        LocustScenario("locust-heavy", 20, 25.0, 4, FaultOptions(delay_ms=DELAY_MS), "latency"),
        LocustScenario("locust-disconnect", 6, 10.0, 5, disconnect, "disconnect"),
    ]


def locust_faults(sc: LocustScenario) -> FaultOptions:
    return replace(sc.faults, senders=sc.users, clients=sc.users, ids="arrival")


def locust_command(sc: LocustScenario, host: str, port: int, prefix: Path) -> list[str]:
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", f"tcp://{host}:{port}", "-u", str(sc.users), "-r", str(SPAWN_RATE), "-t", f"{sc.seconds}s",
        "--chat-rate", str(sc.rate), "--chat-payload", str(sc.payload), "--csv", str(prefix), "--only-summary",
    ]  # fmt: skip
    if sc.processes:
        # The master on a free loopback port, not Locust's fixed 5557 (another run may hold it).
        master = str(free_port("127.0.0.1"))
        command += ["--processes", str(sc.processes), "--master-bind-host", "127.0.0.1"]
        command += ["--master-bind-port", master, "--master-port", master]
    return command


@dataclass
class LocustRun:
    """What one scenario's run left: the fan-out JSON, the relay's schedule, Locust's failures."""

    result: dict[str, Any]
    schedule: ScheduleFile
    failures: list[dict[str, str]]


def run_locust(sc: LocustScenario, workdir: Path) -> LocustRun:
    """One Locust run against a fresh relay.  (Locust exits 1 where requests
    failed: corrupted deliveries, a disconnect.)"""
    schedule, prefix = workdir / f"schedule-{sc.name}.json", workdir / sc.name
    log = workdir / f"{sc.name}.out"
    relay = FaultRelayTarget(option_argv(locust_faults(sc), str(schedule)))
    host, port = relay.start()
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                locust_command(sc, host, port, prefix), cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        try:
            proc.wait(timeout=TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    finally:
        relay.stop()
    hdr = Path(f"{prefix}_fanout_hdr.json")
    if not hdr.exists():
        output = log.read_text(errors="replace")
        raise RuntimeError(f"Locust wrote no {hdr.name} (exit {proc.returncode}):\n{output[-2000:]}")
    failures_csv = Path(f"{prefix}_failures.csv")
    with failures_csv.open(newline="") as f:
        failures = list(csv.DictReader(f))
    return LocustRun(json.loads(hdr.read_text()), json.loads(schedule.read_text()), failures)


Pairs = dict[tuple[str, int], tuple[int, int, int, int]]


def expected_locust_pairs(sched: ScheduleFile) -> Pairs:
    """(receiver name, sender id) -> (lost, duplicated, reordered, corrupted) injected."""
    index = {"drop": 0, "duplicate": 1, "swap": 2, "corrupt": 3}
    names, ids = sched["receiver_names"], sched["sender_ids"]
    counts: dict[tuple[str, int], list[int]] = {}
    for f in sched["faults"]:
        if f["applied"]:
            key = (names[str(f["receiver"])], ids[str(f["sender"])])
            counts.setdefault(key, [0, 0, 0, 0])[index[f["kind"]]] += 1
    return {k: (v[0], v[1], v[2], v[3]) for k, v in counts.items()}


def reported_locust_pairs(result: dict[str, Any]) -> Pairs:
    return {
        (p["receiver"], p["sender"]): (p["lost"], p["duplicated"], p["reordered"], p["corrupted"])
        for p in result["integrity"]["pairs"]
    }


# -- the checks -------------------------------------------------------------------


def check_locust(workdir: Path, out: Outcome, ci: bool) -> None:
    """Every Locust scenario against a fresh relay, its checks into ``out``."""
    for sc in scenarios():
        run = run_locust(sc, workdir)
        if sc.kind == "integrity":
            check_integrity(sc, run, out)
        elif sc.kind == "latency":
            check_latency(sc, run, out, ci)
        else:
            check_disconnect(sc, run, out)


def _faults(result: dict[str, Any]) -> int:
    i = result["integrity"]
    return int(i["lost"] + i["duplicated"] + i["reordered"] + i["corrupted"])


def check_integrity(sc: LocustScenario, run: LocustRun, out: Outcome) -> None:
    from bench.studies.selftest import compare_pairs  # (selftest imports this module)

    merged = run.result["integrity"]
    reported = (merged["lost"], merged["duplicated"], merged["reordered"], merged["corrupted"])
    compare_pairs(sc.name, expected_locust_pairs(run.schedule), reported_locust_pairs(run.result), reported, out)
    workers = run.result.get("per_worker_count", {})
    ok = run.result.get("role") == "master" and len(workers) == sc.processes
    out.add(sc.name, f"master merged {sc.processes} workers", sc.processes, len(workers), ok)


def check_latency(sc: LocustScenario, run: LocustRun, out: Outcome, ci: bool) -> None:
    """The median within 1% + 0.2 ms of the relay's (``ci``: the CI tolerance plus the read lag)."""
    from bench.studies.selftest import CI_TOLERANCE_REL, CI_TOLERANCE_US, TOLERANCE_REL, TOLERANCE_US

    latency = run.schedule["latency"]
    assert latency is not None
    expected = LatencyHistogram.decode(latency["observed"])
    summary = run.result["summary"]
    lag = run.result["read_lag"]["summary"]
    rel, absolute = (CI_TOLERANCE_REL, CI_TOLERANCE_US) if ci else (TOLERANCE_REL, TOLERANCE_US)
    if ci:  # a shared machine: the harness's own stated error bound, its read lag, on top
        absolute += int(lag["p99_us"] or 0)
    out.add(sc.name, "harness read lag p99 ms (info)", "-", f"{(lag['p99_us'] or 0) / 1000:.2f}", True)
    out.add(sc.name, "deliveries measured", f"> {latency['deliveries'] // 2}", summary["count"],
            summary["count"] > latency["deliveries"] // 2)  # fmt: skip
    want, got = expected.percentile(50.0), int(summary["p50_us"] or 0)
    out.add(sc.name, "p50 ms", f"{want / 1000:.2f}", f"{got / 1000:.2f}", abs(got - want) <= rel * want + absolute)
    want99, got99 = expected.percentile(99.0), int(summary["p99_us"] or 0)
    out.add(sc.name, "p99 ms (info)", f"{want99 / 1000:.2f}", f"{got99 / 1000:.2f}", True)
    out.add(sc.name, "integrity faults", 0, _faults(run.result), _faults(run.result) == 0)


def check_disconnect(sc: LocustScenario, run: LocustRun, out: Outcome) -> None:
    """One CONNECT failure; the cut connection received exactly what the relay delivered to it."""
    connects = sum(
        int(row["Occurrences"]) for row in run.failures if (row["Method"], row["Name"]) == ("CONNECT", "register")
    )
    out.add(sc.name, "CONNECT failures", 1, connects, connects == 1)
    cut = run.schedule["disconnect_delivered"]
    index = sc.faults.disconnect
    name = run.schedule["receiver_names"].get(str(index)) if index is not None else None
    want = sum(cut.values()) if cut is not None else None
    got = run.result["integrity"].get("received", {}).get(name) if name is not None else None
    out.add(sc.name, "received by the cut connection", want, got, want is not None and got == want)
    receivers = run.result["integrity"]["receivers"]
    out.add(sc.name, "receivers (the user came back)", sc.users + 1, receivers, receivers == sc.users + 1)
    out.add(sc.name, "integrity faults", 0, _faults(run.result), _faults(run.result) == 0)
