"""Locust-side pieces that need gevent, each run in a subprocess (importing
Locust monkey-patches the process): a block of deliveries added to Locust's
statistics at once changes them as Locust's own ``StatsEntry.log`` would,
value by value (bench/loadtest/locuststats.py); the pacer sends each probe at
its time (bench/loadtest/pacer.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.bench.loadtest.test_run import REPO

CHECK = r"""
import json, random
from locust.stats import RequestStats, StatsEntry
from bench.loadtest.locuststats import FanoutRows, log_many

random.seed(7)
blocks = [[random.choice([0.05, 0.4, 0.999, 1.5, 12.5, 99.6, 150.0, 1234.0, 45678.0]) for _ in range(n)]
          for n in (1, 3, 1, 7, 2, 50)]

def state(e):
    return {"n": e.num_requests, "none": e.num_none_requests, "total": round(e.total_response_time, 6),
            "min": e.min_response_time, "max": e.max_response_time, "times": dict(e.response_times),
            "per_s": dict(e.num_reqs_per_sec), "bytes": e.total_content_length}

stats = RequestStats()
one = StatsEntry(stats, "a", "X", use_response_times_cache=True)
batch = StatsEntry(stats, "b", "X", use_response_times_cache=True)
for block in blocks:
    for v in block:
        one.log(v, 90)
    log_many(batch, block, len(block), 90)
for _ in range(3):
    one.log(None, 90)
log_many(batch, None, 3, 90)
log_many(batch, [], 0, 90)  # nothing: no change
a, b = state(one), state(batch)
assert a == b, (a, b)

rows_stats = RequestStats()
rows = FanoutRows(rows_stats)
rows.delivered([1500, 250, 99_000], 80)
rows.unmeasured(2, 80)
fan = rows_stats.get("broadcast", "FANOUT")
unmeasured = rows_stats.get("broadcast (clock unmeasured)", "FANOUT")
assert (fan.num_requests, fan.max_response_time, dict(fan.response_times)) == (3, 99.0, {2: 1, 0: 1, 99: 1}), state(fan)
assert (unmeasured.num_requests, unmeasured.num_none_requests) == (2, 2)
assert rows_stats.total.num_requests == 5
print("ok")
"""


def test_log_many_changes_locust_stats_as_entry_log_does() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:] + done.stdout


PACER = r"""
import gevent.monkey; gevent.monkey.patch_all()
import socket, time, gevent
from bench.loadtest.pacer import pacer

p = pacer()
assert p._fd >= 0, "no timerfd"
a, b = socket.socketpair()
sent = []

def user(name, delay_ms):
    due = time.monotonic_ns() + int(delay_ms * 1e6)
    done, rest, error = p.send_at(due, a, name.encode())
    assert error is None and rest == b"", (rest, error)
    sent.append((name, done - due))

greenlets = [gevent.spawn(user, n, d) for n, d in (("c", 30), ("a", 10), ("X", 15), ("b", 20))]
gevent.sleep(0.005)
greenlets[2].kill()  # a user stopped while it waited: its probe never goes out, the others are undisturbed
gevent.joinall(greenlets, timeout=5)
assert [name for name, _ in sent] == ["a", "b", "c"], sent
assert all(late >= 0 for _, late in sent), sent  # never early
b.settimeout(2)
assert b.recv(100) == b"abc"
p.emit_due(time.monotonic_ns())  # nothing left
# Due between two reads: the receive loop's call sends it before the timer would.
job = gevent.spawn(p.send_at, time.monotonic_ns() + 50_000_000, a, b"d")
gevent.sleep(0)
p.emit_due(time.monotonic_ns() + 60_000_000)
assert job.get(timeout=1)[1:] == (b"", None) and b.recv(100) == b"d"
a.close()
assert isinstance(p.send_at(0, a, b"e")[2], OSError)  # a closed connection: the error, nothing written
print("ok")
"""


def test_the_pacer_sends_each_probe_at_its_time_in_order_never_early() -> None:
    done = subprocess.run([sys.executable, "-c", PACER], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:] + done.stdout
