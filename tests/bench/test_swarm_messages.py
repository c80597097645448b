"""The swarm's process messages: picklable, and every command has a handler."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import typing

from bench.measure.integrity import IntegrityCounts
from bench.swarm import messages
from bench.swarm.plan import ClientSpec, Schedule, WorkerPlan
from bench.swarm.worker import Worker


def _examples() -> list[object]:
    schedule = Schedule(t0_ns=1, rate=10.0, total=5, senders=1, warmup=1, receivers_present=2)
    return [
        messages.Stall(),
        messages.Start(schedule),
        messages.Release(),
        messages.StopSending(),
        messages.Finish({1: 3}),
        messages.Exit(),
        messages.Progress(t_ns=5, delivered=2, expected=3, sent=1, pending=0, disconnects=0),
        messages.Ready([0, 1], {"connect: ECONNREFUSED": 1}),
        messages.Stalled(2, {}),
        messages.Sent({0: 4}, {0: 3}, 0),
        messages.Result(
            worker=0,
            histogram="",
            clamped=0,
            send_lag_histogram="",
            send_lag_clamped=0,
            receive_lag_histogram="",
            receive_lag_clamped=0,
            rx_clock="read",
            unstamped_reads=0,
            delivered_all=1,
            delivered_measured=1,
            last_measured_recv_ns=9,
            integrity=IntegrityCounts(lost=1),
            echoes=0,
            lines=1,
            bytes_in=10,
        ),
        messages.Failed(0, "Traceback ..."),
    ]


def test_every_message_survives_the_pipe() -> None:
    for msg in _examples():
        assert pickle.loads(pickle.dumps(msg)) == msg


def test_the_worker_handles_every_command_type() -> None:
    plan = WorkerPlan(
        index=0,
        host="127.0.0.1",
        port=9,
        clients=(ClientSpec(0, "a", receives=True, slot=0),),
        stalled=(),
        sender_names={0: "a"},
        payload_bytes=8,
    )
    parent, child = mp.Pipe()
    try:
        worker = Worker(plan, child)
        assert set(worker.commands) == set(typing.get_args(messages.Command))
        worker.sockets.close_all([])
    finally:
        parent.close()
        child.close()
