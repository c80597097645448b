"""The plan states the audience: expected deliveries and labels come from it alone.

Checked against a brute-force count over every (message, receiver) pair, on
small random plans (hypothesis), and the labels' expected counts add up to
the plan's expected total.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.results.store import upgrade_run
from bench.workload import Client, Plan, Room, Stream, labels, one_room


def _brute_force(plan: Plan, counts: dict[int, int], present: set[int]) -> tuple[int, Counter[str]]:
    """Every message of every stream, every client: is it owed, and under which label?"""
    total, by_label = 0, Counter[str]()
    for sid, count in counts.items():
        stream = plan.streams[sid]
        for cid, client in plan.clients.items():
            in_room = cid in plan.rooms[stream.room].members
            owed = client.receives and in_room and cid in present and (plan.hears_self or cid != stream.sender)
            if owed:
                total += count
                node_of = {c.cid: c.node for c in plan.clients.values()}
                parts = []
                if plan.nodes > 1:
                    parts.append("path=same" if node_of[cid] == node_of[stream.sender] else "path=cross")
                if len(plan.rooms) > 1:
                    parts.append("room_size=" + labels.size_bucket(len(plan.rooms[stream.room].members)))
                by_label[",".join(parts)] += count
    return total, by_label


@st.composite
def plans(draw: st.DrawFn) -> tuple[Plan, dict[int, int], set[int]]:
    n = draw(st.integers(1, 12))
    nodes = draw(st.integers(1, 3))
    clients = [Client(cid, f"c{cid}", draw(st.booleans()), draw(st.integers(0, nodes - 1))) for cid in range(n)]
    rooms = tuple(
        Room(f"#r{r}", tuple(sorted(draw(st.sets(st.sampled_from(range(n))))))) for r in range(draw(st.integers(1, 3)))
    )
    streams: dict[int, Stream] = {}
    for slot, sender in enumerate(draw(st.lists(st.integers(0, n - 1), max_size=6))):
        sid = 100 + slot
        streams[sid] = Stream(sid=sid, sender=sender, room=draw(st.integers(0, len(rooms) - 1)), slot=slot)
    plan = Plan({c.cid: c for c in clients}, rooms, streams, hears_self=draw(st.booleans()), nodes=nodes)
    counts = {sid: draw(st.integers(0, 5)) for sid in streams}
    present = draw(st.sets(st.sampled_from(range(n))))
    return plan, counts, present


@given(plans())
@settings(max_examples=300, deadline=None)
def test_expected_deliveries_and_labels_are_the_brute_force_count(case: tuple[Plan, dict[int, int], set[int]]) -> None:
    plan, counts, present = case
    # Rooms hold receiving members only (one_room and the swarm build them so).
    plan = Plan(
        plan.clients,
        tuple(Room(r.name, tuple(c for c in r.members if plan.clients[c].receives)) for r in plan.rooms),
        plan.streams,
        plan.hears_self,
        plan.nodes,
    )
    total, by_label = _brute_force(plan, counts, present)
    assert plan.expected(counts, present) == total
    assert labels.expected_by_label(plan, counts, present) == {k: v for k, v in by_label.items() if v}
    for cid in plan.clients:
        heard = set(plan.heard_by(cid))
        assert heard == {sid for sid in plan.streams if cid in plan.audience(sid)}
        assert plan.sent_to(cid, counts) == {sid: counts[sid] for sid in heard}


def test_one_room_is_everyone_but_the_sender() -> None:
    clients = [Client(0, "a", True), Client(1, "b", True), Client(2, "c", True), Client(3, "pub", False)]
    plan = one_room(clients, {0: 0, 3: 1})
    assert plan.audience(0) == [1, 2] and plan.audience(3) == [0, 1, 2]
    assert plan.audience_sizes({0, 1}) == {0: 1, 3: 2}
    assert plan.sender_names() == {0: "a", 3: "pub"}
    assert labels.routes(plan, [0, 1, 2]) == ([""], {})  # one node: no dimension applies


def test_routes_name_each_receivers_streams_by_label() -> None:
    clients = [Client(cid, f"c{cid}", True, node=cid % 2) for cid in range(4)]
    plan = one_room(clients, {0: 0, 1: 1}, nodes=2)
    keys, routes = labels.routes(plan, [2, 3])
    assert sorted(keys) == ["path=cross", "path=same"]
    assert {sid: keys[i] for sid, i in routes[2].items()} == {0: "path=same", 1: "path=cross"}
    assert {sid: keys[i] for sid, i in routes[3].items()} == {0: "path=cross", 1: "path=same"}
    assert labels.label_values("path=cross,room=big") == {"path": "cross", "room": "big"}


def test_a_version_1_cluster_run_loads_with_its_paths_as_labels() -> None:
    latency = {"count": 7, "p50_us": 100, "p99_us": 200, "p99_9_us": 210, "max_us": 220}
    old = {
        "schema_version": 1,
        "deliveries": {"expected": 10, "delivered": 10, "expected_same_node": 3, "expected_cross_node": 7},
        "latency_same_node_us": {**latency, "count": 3},
        "latency_cross_node_us": latency,
    }
    doc = upgrade_run(old)
    assert doc["schema_version"] == 2
    assert [(s["label"], s["expected"], s["delivered"]) for s in doc["labels"]] == [
        ("path=same", 3, 3),
        ("path=cross", 7, 7),
    ]
    assert "expected_same_node" not in doc["deliveries"] and "latency_same_node_us" not in doc
    assert upgrade_run({"schema_version": 1, "deliveries": {}})["labels"] == []
