"""The server's own bound on a chat line's latency, for the churn note.

Put this directory on PYTHONPATH and set CHURN_PROBE_OUT to a path prefix; in
our server's process (its command line has ``--fanout``) it then records, for
every harness probe line (``~cb2 SENDER SEQ INTENDED_NS ...``, the intended
send time on the shared monotonic clock), how long after its intended send
time the server (a) got it to broadcast and (b) had handed it to the kernel
for every member (the end of the round or of the inline fan-out that carried
it).  On loopback the receivers' kernel stamps are taken during those sends,
so (b) bounds the true latency from above, whatever the harness reads later.
Since a round can cut in new lines (``CUT_IN``), (b) is the bound for the
members served before the cut (the first chunk of 128, where the steady
receivers are); the rest of a cut round gets its lines in the round's flush.
At exit it writes PREFIX.PID.json with the percentiles (ms).  Measurement
only: it wraps Hub.broadcast and the flusher's two fan-out paths.

    PYTHONPATH=reports/churn/fanout_probe CHURN_PROBE_OUT=/tmp/probe \\
        .venv/bin/python -m bench run --clients 1000 --senders 100 --rate 30 --churn 500 ...
"""

import atexit
import builtins
import json
import os
import sys
import time

_TAG = b"~cb2 "


def _intended(data):
    at = data.find(_TAG)
    if at < 0:
        return None
    try:
        return int(data[at:].split(b" ", 4)[3])
    except (IndexError, ValueError):
        return None


def _percentiles(values):
    values = sorted(values)
    if not values:
        return {}
    pick = lambda q: round(values[min(len(values) - 1, int(q * len(values)))] / 1e6, 3)  # noqa: E731
    return {"count": len(values), "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": pick(1.0)}


def _install():
    from server import hub
    from server.fanout import queued

    to_broadcast, to_sent = [], []
    broadcast = hub.Hub.broadcast
    fan_out = queued.Flusher._fan_out
    fan_out_now = queued.Flusher._fan_out_now

    def probed_broadcast(self, data, exclude=None, room=None):
        intended = _intended(data)
        if intended is not None:
            to_broadcast.append(time.monotonic_ns() - intended)
        return broadcast(self, data, exclude, room)

    def probed_fan_out(self, items, first_seq, *args, **kwargs):
        fan_out(self, items, first_seq, *args, **kwargs)
        now = time.monotonic_ns()
        to_sent.extend(now - i for i in map(_intended, (data for _, data, _ in items)) if i is not None)

    def probed_fan_out_now(self, targets, data, exclude):
        done = fan_out_now(self, targets, data, exclude)
        intended = _intended(data)
        if done and intended is not None:
            to_sent.append(time.monotonic_ns() - intended)
        return done

    hub.Hub.broadcast = probed_broadcast
    queued.Flusher._fan_out = probed_fan_out
    queued.Flusher._fan_out_now = probed_fan_out_now

    def write():
        path = f"{os.environ['CHURN_PROBE_OUT']}.{os.getpid()}.json"
        with open(path, "w") as out:
            json.dump({"to_broadcast_ms": _percentiles(to_broadcast), "to_sent_ms": _percentiles(to_sent)}, out)

    atexit.register(write)


if os.environ.get("CHURN_PROBE_OUT") and "--fanout" in sys.argv:
    _import = builtins.__import__
    _done = []

    def _importing(name, *args, **kwargs):
        module = _import(name, *args, **kwargs)
        if not _done and name == "server.app":
            _done.append(True)
            _install()
        return module

    builtins.__import__ = _importing
