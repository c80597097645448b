"""The worker pool: real worker processes, their reports gathered, and a
worker that dies or never answers named in one clear error."""

from __future__ import annotations

import dataclasses

import pytest

from bench.swarm.config import SwarmError
from bench.swarm.messages import Quiet, Ready, Settle
from bench.swarm.plan import ClientSpec, WorkerPlan
from bench.swarm.pool import WorkerPool
from tests.bench.swarm.parts import worker_plan

pytestmark = pytest.mark.timeout(60)


def _plan(index: int) -> WorkerPlan:
    plan = worker_plan([ClientSpec(index, f"w{index}", receives=True, slot=0)], port=1)  # nothing listens on port 1
    return dataclasses.replace(plan, index=index)


def test_reports_are_gathered_from_every_worker_and_the_workers_exit() -> None:
    pool = WorkerPool(lambda status: None)
    try:
        pool.spawn([_plan(0), _plan(1)])
        ready = pool.gather(Ready, 30, "connecting")
        assert sorted(ready) == [0, 1]
        assert all(r.registered == [] and r.failures == {"connect: ECONNREFUSED": 1} for r in ready.values())
        pool.broadcast(Settle())
        quiet = pool.gather(Quiet, 30, "settling")
        assert all(q.last_rx_ns == 0 and q.bytes_in == 0 for q in quiet.values())
    finally:
        pool.shutdown()
    assert all(not h.proc.is_alive() for h in pool.workers)


def test_a_worker_that_dies_is_named_and_one_that_is_silent_times_out() -> None:
    pool = WorkerPool(lambda status: None)
    try:
        pool.spawn([_plan(0), _plan(1)])
        pool.gather(Ready, 30, "connecting")
        with pytest.raises(SwarmError, match=r"timed out after 1s waiting for workers \[0, 1\] \(quiet\)"):
            pool.gather(Quiet, 1, "settling")  # nobody asked them: no answer comes
        pool.workers[1].proc.kill()
        pool.workers[1].proc.join(10)
        pool.workers[0].conn.send(Settle())
        with pytest.raises(SwarmError, match="worker 1"):
            pool.gather(Quiet, 10, "settling")
    finally:
        pool.shutdown()
