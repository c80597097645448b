"""A workload laid out for a run: rooms of the sizes asked for, memberships
spread evenly, senders where they may send, shares that add up; the plan
built from it owes exactly what a brute-force count over every (message,
client) pair owes; the timetable's draws follow the workload; the same seed
gives the same run.  Small random workloads (hypothesis)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.swarm import SwarmConfig
from bench.swarm.plan import client_specs, plan_of
from bench.workload import Workload, build, labels, locust, model
from bench.workload.traffic import traffic


@st.composite
def workloads(draw: st.DrawFn) -> tuple[Workload, int, int]:
    """(workload, receivers, dedicated senders)."""
    n = draw(st.integers(2, 40))
    kind = draw(st.sampled_from(["fixed", "fixed:M", "uniform", "zipf"]))
    rooms = draw(st.integers(2, 12))
    per_client = draw(st.none() | st.integers(1, rooms))
    if kind == "fixed:M":
        sizes = model.RoomSizes("fixed", draw(st.integers(1, 15)))
    elif kind == "uniform":
        low = draw(st.integers(1, 10))
        sizes = model.RoomSizes("uniform", low, low + draw(st.integers(0, 10)))
    elif kind == "zipf":
        sizes = model.RoomSizes("zipf", s=draw(st.floats(0.3, 2.5)))
    else:
        sizes = model.RoomSizes("fixed")
    absolute = kind in ("fixed:M", "uniform")
    given_rooms: int | None = rooms
    if absolute and per_client is not None:
        given_rooms = None if draw(st.booleans()) else rooms
        per_client = None if given_rooms is not None else per_client
    workload = Workload(
        rooms=given_rooms,
        sizes=sizes,
        per_client=per_client,
        personal=draw(st.booleans()),
        senders_per_room=draw(st.none() | st.integers(1, 3)),
        publisher_skew=draw(st.sampled_from([0.0, 1.0])),
        rate_mode=draw(st.sampled_from(["total", "per-room"])),
        seed=draw(st.integers(0, 5)),
    )
    dedicated = draw(st.sampled_from([0, 0, 3]))
    return workload, n, dedicated


@given(workloads())
@settings(max_examples=250, deadline=None)
def test_the_layout_has_the_sizes_the_spread_and_the_senders(case: tuple[Workload, int, int]) -> None:
    workload, n, dedicated = case
    lay = build.layout(workload, n, dedicated, 0)
    groups = [members for name, members in lay.rooms if name.startswith("r")]
    sizes = build.room_sizes(workload, n, random.Random(f"chatbench:{workload.seed}:rooms"))
    assert [len(m) for m in groups] == sizes  # every room exactly its size
    for members in groups:
        assert len(set(members)) == len(members) and all(0 <= c < n for c in members)
    counts = Counter(c for members in groups for c in members)
    total = sum(sizes)
    assert {counts.get(c, 0) for c in range(n)} <= {total // n, -(-total // n)}  # spread evenly
    if workload.sizes.kind == "zipf" or (workload.sizes.kind == "fixed" and not workload.sizes.low):
        assert total == min(n * (workload.per_client or 1), n * len(sizes))
    per_room = workload.senders_per_room or 1
    for sender, r in lay.streams:
        name, members = lay.rooms[r]
        if dedicated:
            assert n <= sender < n + dedicated
        else:
            assert sender in members  # a member sends (a personal room's sender joined it)
    by_room = Counter(r for _, r in lay.streams)
    for r, (name, members) in enumerate(lay.rooms):
        if name.startswith("p"):  # a personal room: its owner, and the one other client that sends to it
            owner = int(name[1:])
            assert owner in members and len(members) == (1 if dedicated else 2)
            assert by_room[r] == 1 and all(sender != owner for sender, room in lay.streams if room == r)
        else:
            assert by_room[r] == (per_room if dedicated else min(per_room, len(members)))
    assert workload.personal == any(name.startswith("p") for name, _ in lay.rooms)
    if lay.weights is not None:
        assert abs(sum(lay.weights) - 1) < 1e-9 and len(lay.weights) == len(lay.streams)
    assert build.layout(workload, n, dedicated, 0) == lay  # deterministic from the seed


def _brute_force(lay: build.Layout, counts: dict[int, int], present: set[int]) -> tuple[int, Counter[str]]:
    """Every message of every slot, every client of the run: is it owed, and under which room size?"""
    total, by_label = 0, Counter[str]()
    many = len(lay.rooms) > 1  # room_size labels runs of more than one room only
    for slot, (sender, r) in enumerate(lay.streams):
        members = lay.rooms[r][1]
        for cid in present:
            if cid in members and cid != sender:
                total += counts[slot]
                by_label[f"room_size={labels.size_bucket(len(members))}" if many else ""] += counts[slot]
    return total, by_label


@given(workloads(), st.data())
@settings(max_examples=150, deadline=None)
def test_the_plans_expected_deliveries_are_the_brute_force_count(
    case: tuple[Workload, int, int], data: st.DataObject
) -> None:
    workload, n, dedicated = case
    config = SwarmConfig(
        clients=n, workload=workload, dedicated_senders=bool(dedicated), senders=dedicated or None, progress=False
    )
    specs, stalled = client_specs(config, "t")
    first = len(specs) + len(stalled)
    plan = plan_of(specs, 1, config.layout, first)
    counts_by_slot = {slot: data.draw(st.integers(0, 4)) for slot in range(len(config.layout.streams))}
    counts = {first + slot: c for slot, c in counts_by_slot.items()}
    present = data.draw(st.sets(st.sampled_from(range(n)))) if n else set()
    total, by_label = _brute_force(config.layout, counts_by_slot, present)
    assert plan.expected(counts, present) == total
    assert labels.expected_by_label(plan, counts, present) == {k: v for k, v in by_label.items() if v}
    assert min(plan.streams) > max(c.cid for c in specs)  # no stream id is a client's
    names = plan.sender_names()
    for sid, stream in plan.streams.items():
        room = plan.rooms[stream.room].name
        assert names[sid] == f"#{room} {plan.clients[stream.sender].name}"
    for spec in specs:  # each client joins what it is in and what it sends to
        mine = {plan.rooms[r].name for r in config.layout.rooms_of.get(spec.cid, ())}
        assert set(spec.rooms) == mine


def test_one_room_is_the_run_without_options() -> None:
    config = SwarmConfig(clients=6, senders=2, progress=False)
    specs, _ = client_specs(config, "t")
    assert [(s.cid, s.slot, s.rooms) for s in specs] == [(i, i if i < 2 else None, ("",)) for i in range(6)]
    plan = plan_of(specs, 1, config.layout, 6)
    assert list(plan.streams) == [0, 1] and plan.one_room and plan.sender_names() == {0: "cbt-0", 1: "cbt-1"}
    assert config.layout.weights is None and config.parameters().get("workload") is None


def test_traffic_draws_follow_the_workload() -> None:
    w = Workload(rooms=3, arrivals="poisson", payload=model.payload_sizes("64:3,1024:1"), seed=9)
    shares = (0.5, 0.3, 0.2)
    t = traffic(w, shares, 3, 20_000, 1000.0)
    freq = np.bincount(t.slot_of, minlength=3) / 20_000
    assert np.allclose(freq, shares, atol=0.02)
    gaps = np.diff(t.offset_ns)
    assert (gaps >= 0).all() and t.offset_ns[0] == 0 and abs(gaps.mean() - 1e6) < 0.05e6
    assert set(np.unique(t.size_of).tolist()) == {64, 1024} and abs((t.size_of == 1024).mean() - 0.25) < 0.02
    by_slot = t.slot_messages(3, 20_000)
    assert sorted(m for ms in by_slot for m in ms) == list(range(20_000))
    assert all(list(ms) == sorted(ms) and all(t.slot_of[m] == s for m in ms) for s, ms in enumerate(by_slot))
    again = traffic(w, shares, 3, 20_000, 1000.0)
    assert (again.slot_of == t.slot_of).all() and (again.offset_ns == t.offset_ns).all()
    plain = traffic(Workload(), None, 3, 10, 100.0)
    assert not plain.drawn and [list(m) for m in plain.slot_messages(3, 10)] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_a_publisher_skew_and_a_rate_per_room_set_the_shares() -> None:
    skewed = build.layout(Workload(rooms=4, publisher_skew=1.0), 20, 0, 0)
    assert skewed.weights is not None and sorted(skewed.weights)[-1] / sorted(skewed.weights)[0] > 3.9
    # per room: every room the same share, split over its (up to 3) senders
    lay = build.layout(
        Workload(rooms=3, sizes=model.room_sizes("zipf:1"), senders_per_room=3, rate_mode="per-room"), 4, 0, 0
    )
    per_room = Counter[int]()
    for (_, r), w in zip(lay.streams, lay.weights or [1 / len(lay.streams)] * len(lay.streams), strict=True):
        per_room[r] += w
    assert all(abs(v - 1 / 3) < 1e-9 for v in per_room.values())


def test_chat_app_at_two_thousand_clients_is_a_power_law() -> None:
    lay = build.layout(Workload(rooms=500, sizes=model.room_sizes("zipf:1.0"), per_client=3), 2000, 0, 0)
    sizes = sorted((len(m) for _, m in lay.rooms), reverse=True)
    assert sum(sizes) == 6000 and sizes[0] > 800 and sizes[-1] >= 1 and len(sizes) == 500
    assert Counter(c for _, m in lay.rooms for c in m) == Counter({c: 3 for c in range(2000)})


def test_a_locust_user_gets_the_swarms_rooms_and_streams() -> None:
    w = Workload(rooms=6, per_client=2, senders_per_room=2, personal=True, seed=4)
    users = 12
    lay = build.layout(w, users, 0, 0)
    plans = [locust.user_plan(w, i, users) for i in range(users)]
    assert sorted(s.stream for p in plans for s in p.sends) == [users + slot for slot in range(len(lay.streams))]
    assert abs(sum(s.rate_share for p in plans for s in p.sends) - 1) < 1e-9
    for p in plans:
        assert set(p.rooms) == {lay.rooms[r][0] for r in lay.rooms_of.get(p.index, ())}
        assert all(s.room in p.rooms for s in p.sends)
    names = locust.stream_names(w, users, lambda i: f"u{i}")
    first = plans[lay.streams[0][0]].sends[0]
    assert names[first.stream] == f"#{first.room} u{lay.streams[0][0]}"
    one = locust.user_plan(Workload(), 3, users)
    assert one.rooms == ("",) and one.sends == (locust.UserSend("", 3, 0.1),)
    rng = random.Random(1)
    draws = {locust.payload_size(model.payload_sizes("64:1,128:1"), 10, rng) for _ in range(100)}
    assert draws == {64, 128} and locust.payload_size(None, 10, rng) == 10
