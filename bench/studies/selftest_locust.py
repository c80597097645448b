"""``selftest --locust``: the Locust users, a master and two worker processes
(``locust --processes 2``) on loopback, against the fault-injecting relay.

The relay numbers receivers by registration and senders by their first probe
(``--ids arrival``: Locust names and sender ids carry no index) and records
which name and sender id each number got; the users count integrity per
(receiver, sender), the workers ship the counters to the master with the HDR
deltas, and the master writes them into ``<prefix>_fanout_hdr.json``.  The
check: the merged counters equal the injected drops, duplicates, swaps and
corruptions, pair by pair.  (A Locust user that loses its connection comes
back as a new name, so Locust counts loss as *gaps* inside what each
connection received: a disconnect is not one of its scenarios.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.targets.faultplan import FaultOptions, ScheduleFile
from bench.targets.faultrelay import FaultRelayTarget, option_argv

LOCUSTFILE = Path(__file__).resolve().parents[1] / "locustfile.py"
#: Users, each sending this many probes a second for this many seconds: ~80
#: probes per sender, faults on sequence numbers 10..59 (after every user has
#: registered: Locust spawns them all in well under a second at SPAWN_RATE).
USERS = 6
RATE = 10.0
SECONDS = 8
SPAWN_RATE = 100
#: A hung Locust run is killed after this many seconds.
TIMEOUT_S = 90.0


def locust_faults() -> FaultOptions:
    return FaultOptions(
        seed=41, senders=USERS, clients=USERS, seq_lo=10, seq_hi=60, drop=3, duplicate=3, swap=3, corrupt=3,
        ids="arrival",
    )  # fmt: skip


def locust_command(host: str, port: int, hdr: Path) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--processes", "2",
        "--host", f"tcp://{host}:{port}", "-u", str(USERS), "-r", str(SPAWN_RATE), "-t", f"{SECONDS}s",
        "--chat-rate", str(RATE), "--chat-payload", "32", "--chat-hdr-file", str(hdr), "--only-summary",
    ]  # fmt: skip


def run_locust(workdir: Path) -> tuple[dict[str, Any], ScheduleFile]:
    """One Locust run against a fresh relay: the master's fan-out JSON and the
    relay's schedule file.  (Locust exits 1: the corrupted deliveries are failures.)"""
    schedule, hdr, log = workdir / "schedule-locust.json", workdir / "locust_fanout_hdr.json", workdir / "locust.out"
    relay = FaultRelayTarget(option_argv(locust_faults(), str(schedule)))
    host, port = relay.start()
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                locust_command(host, port, hdr), cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
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
    output = log.read_text(errors="replace")
    if not hdr.exists():
        raise RuntimeError(f"Locust wrote no {hdr.name} (exit {proc.returncode}):\n{output[-2000:]}")
    return json.loads(hdr.read_text()), json.loads(schedule.read_text())


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
