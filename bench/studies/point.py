"""``python -m bench run``: one point (or a list of client counts) for one
fan-out strategy, with every swarm option -- what ``python -m bench.swarm``
used to do.  Same output as ``sweep`` (one series, report, latest link).

Roles: the first S of the N clients also send; our server does not echo a
message to its sender, so each message is expected at N-1 receivers (N with
--dedicated-senders, where the senders are S extra connections).  Stalled
clients register and never read; they are closed once the last message is due.
"""

from __future__ import annotations

import argparse

from bench.progname import PROG
from bench.studies import sweep

#: The point ``run`` measures when no --clients is given.
DEFAULT_CLIENTS = (100,)
#: The strategy ``run`` measures without --fanout: the server's default.
DEFAULT_FANOUTS = sweep.DEFAULT_FANOUTS[:1]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "One point (same output as sweep, one series). Default: 100 clients, queued fan-out; "
        "a comma-separated --clients runs each count."
    )
    parser.epilog = (
        f"Examples: `{PROG} run --clients 100 --rate 1000 --duration 5`; "
        f"`{PROG} run --rate 0 --messages 200 --clients 20 --fanout direct --stalled-clients 1`; "
        f"`{PROG} run --target 127.0.0.1:8000 --server-pid PID`. "
        f"Fan-out strategy without --fanout: {DEFAULT_FANOUTS[0]}."
    )
    sweep.add_sweep_options(parser, DEFAULT_CLIENTS, "client count (a list runs each)")


def run(args: argparse.Namespace) -> int:
    return sweep.execute(args, DEFAULT_FANOUTS, "chatbench fan-out report")
