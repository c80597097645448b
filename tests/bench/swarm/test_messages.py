"""The swarm's process messages: picklable, and every command has a handler."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import typing

from bench.measure.integrity import IntegrityCounts
from bench.measure.labelled import EncodedHistogram
from bench.swarm import messages
from bench.swarm.config import SwarmConfig
from bench.swarm.plan import ClientSpec, Schedule, WorkerPlan, make_plans, plan_of
from bench.swarm.worker import Worker
from bench.workload import labels


def _examples() -> list[object]:
    schedule = Schedule(t0_ns=1, rate=10.0, total=5, senders=1, warmup=1, audience={0: 2})
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
            labels={
                "path=same": messages.LabelResult(EncodedHistogram("HISTFAAAAB", 1), IntegrityCounts(lost=1)),
                "path=cross": messages.LabelResult(EncodedHistogram(), IntegrityCounts()),
            },
            send_lag=EncodedHistogram(),
            receive_lag=EncodedHistogram(),
            rx_clock="read",
            unstamped_reads=0,
            delivered_all=1,
            delivered_measured=1,
            last_measured_recv_ns=9,
            integrity=IntegrityCounts(lost=1),
            echoes=0,
            lines=1,
            bytes_in=10,
            by_pair={(1, 0): IntegrityCounts(lost=1)},
            strays=2,
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
        workload=plan_of([ClientSpec(0, "a", receives=True, slot=0)]),
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


def test_plans_put_client_i_on_node_i_mod_n_when_the_target_has_several() -> None:
    config = SwarmConfig(clients=7, senders=3, stalled_clients=2, workers=2)
    nodes = [("127.0.0.1", 7001), ("127.0.0.1", 7002), ("127.0.0.1", 7003)]
    plans = make_plans(config, "127.0.0.1", 7001, "t", None, nodes)
    specs = [c for p in plans for c in (*p.clients, *p.stalled)]
    assert sorted(c.cid for c in specs) == list(range(9))
    assert all(c.node == c.cid % 3 for c in specs)
    for plan in plans:
        assert plan.addresses == tuple(nodes)
        # the plan knows every client's node (to tell each delivery's path)
        workload = plan.workload
        assert workload.nodes == 3
        assert {cid: c.node for cid, c in workload.clients.items()} == {
            c.cid: c.node for c in specs if c.receives or c.slot is not None
        }
        assert labels.label_key(workload, 0, 3) == "path=same" and labels.label_key(workload, 1, 3) == "path=cross"
    # One address (or none): nothing changes, and no label dimension applies.
    for one in (None, nodes[:1]):
        plain = make_plans(config, "127.0.0.1", 7001, "t", None, one)
        assert plain == make_plans(config, "127.0.0.1", 7001, "t")
        assert all(p.addresses == () and p.workload.nodes == 1 for p in plain)
        assert all(c.node == 0 for p in plain for c in p.clients)
        assert labels.routes(plain[0].workload, range(7)) == ([""], {})
