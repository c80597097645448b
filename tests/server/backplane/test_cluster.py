"""A chat cluster over a real ``redis-server``: nodes in-process (and one as a
process, to be SIGKILLed), clients on each, every read with a timeout.  Rooms
at the end: one channel per room, subscribed by a node only while the room
has members there (checked with Redis' own ``PUBSUB NUMSUB`` and ``PUBSUB
CHANNELS``); a room spread over three nodes; joins and parts racing a node's
SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from bench.cli import main as bench_main
from bench.swarm import SwarmConfig
from bench.swarm.plan import client_specs, node_of
from bench.targets import ClusterTarget, CommandTarget, RedisServer, find_redis_server
from bench.targets.base import free_port
from bench.targets.cluster import node_command
from server import protocol
from server.app import ChatServer
from server.backplane.leases import LEASE_MS, PREFIX, RENEW_INTERVAL_S, room_channel
from tests.conftest import ChatTestClient, wait_until
from tests.server.test_rooms import joined

pytestmark = pytest.mark.skipif(
    find_redis_server() is None, reason="redis-server is not installed (apt-get install redis-server)"
)

#: Seconds a crashed node's users take to be announced as gone: its lease, one
#: renewal round of a survivor, and slack for a loaded CI machine.
REAP_WAIT_S = LEASE_MS / 1000 + RENEW_INTERVAL_S + 5


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


Node = Callable[[], ChatServer]


@pytest.fixture
def node(redis_server: RedisServer, make_server: Callable[..., ChatServer]) -> Node:
    """Start an in-process node of the cluster (all are shut down at the end)."""
    return lambda: make_server(backplane=redis_server.url, rate_limit=0)


@pytest.fixture
def client() -> Iterator[Callable[[ChatServer | tuple[str, int], str], ChatTestClient]]:
    clients: list[ChatTestClient] = []

    def open_client(where: ChatServer | tuple[str, int], name: str) -> ChatTestClient:
        c = ChatTestClient(where.address if isinstance(where, ChatServer) else where)
        clients.append(c)
        c.register(name)
        return c

    try:
        yield open_client
    finally:
        for c in clients:
            c.close()


def roster(server: ChatServer) -> list[str]:
    return server.hub.names()


def wait_roster(servers: list[ChatServer], names: set[str]) -> None:
    for server in servers:
        assert wait_until(lambda s=server: set(roster(s)) == names), (roster(server), names)


def try_taken_name(address: tuple[str, int], name: str) -> ChatTestClient:
    """A new connection that asks for ``name`` and must be told it is taken
    (left open: the caller may try another name, and closes it)."""
    late = ChatTestClient(address)
    try:
        late.expect(protocol.Prompt)
        late.send_line(name)
        assert "Name taken" in late.expect(protocol.Error).message
    except BaseException:
        late.close()
        raise
    return late


def test_chat_names_who_and_msg_across_three_nodes(node: Node, client: Callable[..., ChatTestClient]) -> None:
    a, b, c = node(), node(), node()
    alice, bob, carol = client(a, "alice"), client(b, "bob"), client(c, "carol")
    wait_roster([a, b, c], {"alice", "bob", "carol"})
    for peer in (alice, bob, carol):
        peer.drain(0.3)

    alice.say("hello cluster")
    for peer in (bob, carol):
        assert peer.expect(protocol.Message) == protocol.Message("alice", "hello cluster")

    # Names are unique across nodes, case-insensitively.
    late = try_taken_name(c.address, "ALICE")
    try:
        # ... and the welcome lists the whole cluster.
        late.send_line("dave")
        welcome = late.expect(protocol.Welcome, skip=(protocol.Prompt,))
        assert set(welcome.online) == {"alice", "bob", "carol", "dave"} and welcome.count == 4
        # The join notice reaches every node exactly once.
        for peer in (alice, bob, carol):
            events = peer.drain(0.5)
            assert events.count(protocol.Joined("dave")) == 1, events
        carol.send_line("/who")
        assert set(carol.expect(protocol.Online).names) == {"alice", "bob", "carol", "dave"}

        carol.send_line("/msg ALICE psst")
        assert alice.expect(protocol.Private) == protocol.Private("carol", "psst")
        assert carol.expect(protocol.PrivateEcho) == protocol.PrivateEcho("alice", "psst")
        assert bob.drain(0.3) == []  # a private line reaches nobody else
        carol.send_line("/msg nobody hi")
        assert "No such user" in carol.expect(protocol.Error).message

        bob.send_line("/nick robert")  # a rename frees the old name cluster-wide
        for peer in (alice, bob, carol):
            assert peer.expect(protocol.Renamed) == protocol.Renamed("bob", "robert")
        wait_roster([a, b, c], {"alice", "robert", "carol", "dave"})
        alice.send_line("/msg robert hi")
        assert bob.expect(protocol.Private) == protocol.Private("alice", "hi")

        late.send_line("/quit")
        for peer in (alice, bob, carol):
            events = peer.drain(0.5)
            assert sum(isinstance(e, protocol.Left) and e.name == "dave" for e in events) == 1, events
    finally:
        late.close()
    wait_roster([a, b, c], {"alice", "robert", "carol"})
    client(a, "bob")


def test_burst_reaches_every_receiver_once_in_order(node: Node, client: Callable[..., ChatTestClient]) -> None:
    """2,000 lines from a sender on node A and 1,000 from one on node C, at
    once: every other client, on every node, gets each sender's lines once,
    in the order sent (the two senders' lines may interleave)."""
    nodes = [node(), node(), node()]
    clients = {f"u{i}{j}": client(n, f"u{i}{j}") for i, n in enumerate(nodes) for j in range(2)}
    wait_roster(nodes, set(clients))
    for c in clients.values():
        c.drain(0.3)
    sent = {"u00": 2000, "u21": 1000}
    for name, count in sent.items():
        clients[name].send_raw(b"".join(protocol.encode_say(f"{name}-{i}") for i in range(count)))
    for name, c in clients.items():
        expected = {s: n for s, n in sent.items() if s != name}
        got: dict[str, list[int]] = {s: [] for s in expected}
        while sum(map(len, got.values())) < sum(expected.values()):
            message = c.expect(protocol.Message)
            sender, _, seq = message.text.partition("-")
            got[sender].append(int(seq))
        for sender, count in expected.items():
            assert got[sender] == list(range(count)), f"{name} from {sender}"
        assert c.drain(0.3) == []  # and nothing twice


def test_redis_restart_partitions_then_rejoins(
    redis_server: RedisServer, node: Node, client: Callable[..., ChatTestClient]
) -> None:
    a, b = node(), node()
    alice, alice2, bob = client(a, "alice"), client(a, "alice2"), client(b, "bob")
    wait_roster([a, b], {"alice", "alice2", "bob"})
    for c in (alice, alice2, bob):
        c.drain(0.3)

    port = redis_server.port
    redis_server.stop()
    for c in (alice, alice2, bob):
        assert "link lost" in c.expect(protocol.Notice).text
    alice.say("local only")  # the node keeps serving its own clients
    assert alice2.expect(protocol.Message) == protocol.Message("alice", "local only")

    again = RedisServer(port=port)
    again.start()
    try:
        for c in (alice, alice2, bob):
            assert "restored" in c.expect(protocol.Notice, timeout=15).text
            assert not any("link" in getattr(e, "text", "") for e in c.drain(0.5))  # told once each way
        wait_roster([a, b], {"alice", "alice2", "bob"})
        bob.say("back")
        for c in (alice, alice2):
            assert c.expect(protocol.Message) == protocol.Message("bob", "back")
        # The names were claimed again in the new (empty) Redis.
        try_taken_name(b.address, "alice").close()
    finally:
        again.stop()


def test_killed_node_users_leave_everywhere_once(
    redis_server: RedisServer, node: Node, client: Callable[..., ChatTestClient]
) -> None:
    a, c = node(), node()
    victim = CommandTarget(node_command(redis_server.url, 0, ["--log-level", "INFO"]), "doomed node")
    address = victim.start()
    try:
        alice, carol = client(a, "alice"), client(c, "carol")
        client(address, "bob")
        client(address, "bob2")
        wait_roster([a, c], {"alice", "carol", "bob", "bob2"})
        for peer in (alice, carol):
            peer.drain(0.3)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)

        deadline = time.monotonic() + REAP_WAIT_S
        for peer in (alice, carol):
            left: list[protocol.Left] = []
            while len(left) < 2:
                left.append(peer.expect(protocol.Left, timeout=max(0.1, deadline - time.monotonic())))
            assert sorted(e.name for e in left) == ["bob", "bob2"]
            assert all(e.reason == "server lost" for e in left)
            assert not [e for e in peer.drain(1.5) if isinstance(e, protocol.Left)]  # exactly once
        wait_roster([a, c], {"alice", "carol"})
        alice.say("still here")
        assert carol.expect(protocol.Message) == protocol.Message("alice", "still here")
        # bob's lease ran out with the node: the name is free again.
        client(c, "bob")
    finally:
        victim.stop()


def test_unreachable_redis_is_a_clear_error() -> None:
    url = f"redis://127.0.0.1:{free_port('127.0.0.1')}/0"
    cmd = [sys.executable, "-m", "server", "--port", "0", "--backplane", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0
    assert f"cannot join the cluster: cannot reach Redis at {url}" in done.stderr
    assert "Traceback" not in done.stderr


def test_backplane_must_be_a_redis_url() -> None:
    cmd = [sys.executable, "-m", "server", "--port", "0", "--backplane", "http://127.0.0.1:6379"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "backplane must be a redis:// URL" in done.stderr


def test_cluster_target_shares_one_port() -> None:
    """cluster:3: three node processes on one port (SO_REUSEPORT) over one Redis;
    clients spread by the kernel all hear each other."""
    target = ClusterTarget(3)
    address = target.start()
    peers: list[ChatTestClient] = []
    try:
        for i in range(6):
            peer = ChatTestClient(address)
            peers.append(peer)
            peer.register(f"p{i}")
        assert len(target.describe()["nodes"]) == 3
        time.sleep(0.5)
        for peer in peers:
            peer.drain(0.2)
        peers[0].say("to all")
        for peer in peers[1:]:
            assert peer.expect(protocol.Message) == protocol.Message("p0", "to all")
    finally:
        for peer in peers:
            peer.close()
        target.stop()


def test_cluster_scaling_study_writes_the_curve(tmp_path: Path) -> None:
    """`bench cluster-scaling` at a tiny load: one run per node count, every
    message delivered, the JSON, chart and report written."""
    out = tmp_path / "scaling"
    argv = ["cluster-scaling", "--nodes", "1,2", "--clients", "6", "--rate", "10", "--duration", "1"]
    argv += ["--warmup", "0", "--rate-per-node", "--out", str(out), "--quiet"]
    assert bench_main(argv) == 0
    doc = json.loads((out / "scaling.json").read_text())
    assert [p["nodes"] for p in doc["points"]] == [1, 2]
    assert [p["rate"] for p in doc["points"]] == [10, 20]
    for p in doc["points"]:
        assert p["error"] is None and p["faults"] == 0 and p["deliveries_per_s"] > 0
    assert (out / "scaling.png").stat().st_size > 0
    assert "| 2 | 6 | 20 |" in (out / "scaling.md").read_text()
    assert "| cluster:2 | 6 | cross |" in (out / "scaling.md").read_text()  # the paths of the 2-node run


def test_cluster_paths_study_records_both_paths(capsys: pytest.CaptureFixture[str]) -> None:
    """`bench cluster-paths`: every delivery recorded by its path, each receiver got the one line."""
    argv = ["cluster-paths", "--nodes", "2", "--receivers", "3", "--rounds", "4", "--json"]
    assert bench_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    # 4 rounds x 6 receivers: each round 3 on the sender's node, 3 on the other.
    assert result["same"]["count"] == 12 and result["across"]["count"] == 12
    assert result["same"]["p50_us"] > 0 and result["across"]["p50_us"] > 0


def test_cluster_run_records_every_deliverys_path(tmp_path: Path) -> None:
    """`run --target cluster:2`: client i on node i mod 2, every delivery
    recorded by its path; both distributions in the document and the report."""
    out = tmp_path / "run"
    argv = ["run", "--target", "cluster:2", "--clients", "20", "--rate", "0", "--messages", "200"]
    assert bench_main([*argv, "--workers", "2", "--out", str(out), "--quiet"]) == 0
    (path,) = out.glob("*/run-*.json")
    doc = json.loads(path.read_text())
    assert len(doc["target"]["addresses"]) == 2 and len(set(doc["target"]["addresses"])) == 2
    d = doc["deliveries"]
    by_label = {section["label"]: section for section in doc["labels"]}
    assert set(by_label) == {"path=same", "path=cross"}
    same, across = by_label["path=same"]["latency_us"], by_label["path=cross"]["latency_us"]
    assert doc["completed"] and doc["integrity"]["faults"] == 0
    assert same["count"] + across["count"] == d["delivered"] == doc["latency_us"]["count"]
    assert all(section["integrity"]["faults"] == 0 and section["histogram"]["data"] for section in doc["labels"])
    # The plan says who is where: per message of sender s, the receivers on s's
    # node but s, and the receivers on the other node (10 and 10 of the 20 here).
    config = SwarmConfig(clients=20, rate=0, messages=200)
    specs, _ = client_specs(config, "x", 2)
    per_sender = config.measured_messages // config.sender_count
    senders = [s for s in specs if s.slot is not None]
    expected_same = sum(per_sender * sum(r.node == s.node and r != s for r in specs) for s in senders)
    expected_across = sum(per_sender * sum(r.node != s.node for r in specs) for s in senders)
    assert all(s.node == node_of(s.cid, 2) for s in specs)
    assert (same["count"], across["count"]) == (expected_same, expected_across)  # nothing lost: all delivered
    assert (by_label["path=same"]["expected"], by_label["path=cross"]["expected"]) == (expected_same, expected_across)
    assert (by_label["path=same"]["delivered"], by_label["path=cross"]["delivered"]) == (expected_same, expected_across)
    assert 0.45 < across["count"] / d["delivered"] < 0.55  # (N-1)/N = 1/2, but a sender skips itself: 10/19
    assert 0 < same["p50_us"] <= same["max_us"] and 0 < across["p50_us"] <= across["max_us"]
    report = (out / "report.md").read_text()
    assert "### By path" in report
    assert f"| cluster:2 | 20 | cross | {across['count']:,} |" in report


# -- rooms ---------------------------------------------------------------------------

Client = Callable[[ChatServer | tuple[str, int], str], ChatTestClient]
LOBBY = protocol.DEFAULT_ROOM


def subscribers(server: RedisServer, room: str) -> int:
    """How many connections Redis says are subscribed to ``room``'s channel."""
    with redis.Redis.from_url(server.url) as r:
        ((_, count),) = r.pubsub_numsub(room_channel(room))
        return int(count)


def room_channels(server: RedisServer) -> set[str]:
    with redis.Redis.from_url(server.url) as r:
        return {c.decode() for c in r.pubsub_channels(room_channel("*"))}


def wait_members(nodes: list[ChatServer], room: str, count: int) -> None:
    """Every node sees ``count`` members in ``room`` (the cluster converged)."""
    for n in nodes:
        assert wait_until(lambda n=n: (n.hub.room_members(room) or ([], 0))[1] == count), (room, count)


def test_a_room_spread_over_three_nodes_gets_every_line_once_in_order(
    redis_server: RedisServer, node: Node, client: Client
) -> None:
    nodes = [node(), node(), node()]
    members = {f"m{i}{j}": client(n, f"m{i}{j}") for i, n in enumerate(nodes) for j in range(2)}
    outsiders = [client(n, f"o{i}") for i, n in enumerate(nodes)]
    for c in members.values():
        joined(c, "#spread")
    wait_members(nodes, "#spread", 6)
    assert subscribers(redis_server, "#spread") == 3
    for c in [*members.values(), *outsiders]:
        c.drain(0.3)
    sent = {"m00": 1000, "m21": 500}
    members["m00"].send_raw(b"".join(protocol.encode_say(f"m00-{i}") for i in range(sent["m00"])))  # its current room
    members["m21"].send_raw(b"".join(protocol.encode_line(f"/say #spread m21-{i}") for i in range(sent["m21"])))
    for name, c in members.items():
        expected = {s: n for s, n in sent.items() if s != name}
        got: dict[str, list[int]] = {s: [] for s in expected}
        while sum(map(len, got.values())) < sum(expected.values()):
            message = c.expect(protocol.Message)
            assert message.room == "#spread", message
            sender, _, seq = message.text.partition("-")
            got[sender].append(int(seq))
        assert all(got[s] == list(range(n)) for s, n in expected.items()), name
        assert c.drain(0.3) == []  # and nothing twice
    for c in outsiders:
        assert c.drain(0.3) == []


def test_a_room_on_one_node_is_subscribed_by_that_node_only(
    redis_server: RedisServer, node: Node, client: Client
) -> None:
    a, b, c = node(), node(), node()
    a1, a2, b1, c1 = client(a, "a1"), client(a, "a2"), client(b, "b1"), client(c, "c1")
    assert room_channels(redis_server) == {room_channel(LOBBY)}
    assert subscribers(redis_server, LOBBY) == 3
    joined(a1, "#local")
    joined(a2, "#local")
    wait_members([a, b, c], "#local", 2)
    assert subscribers(redis_server, "#local") == 1  # node A only: B and C never hear its lines
    assert room_channels(redis_server) == {room_channel(LOBBY), room_channel("#local")}
    for peer in (a1, a2, b1, c1):
        peer.drain(0.3)
    a1.say("just us")
    assert a2.expect(protocol.Message) == protocol.Message("a1", "just us", "#local")
    b1.send_line("/who #local")  # B knows the room without hearing it
    assert b1.expect(protocol.Online) == protocol.Online(("a1", "a2"), 2, "#local")
    c1.send_line("/rooms")
    assert c1.expect(protocol.RoomList) == protocol.RoomList(((LOBBY, 4), ("#local", 2)))

    assert joined(b1, "#local") == protocol.Talking("#local", ("a1", "a2", "b1"))  # B subscribes with its first member
    assert subscribers(redis_server, "#local") == 2
    assert a1.expect(protocol.Joined) == protocol.Joined("b1", "#local")
    a2.say("hello b")
    assert b1.expect(protocol.Message) == protocol.Message("a2", "hello b", "#local")
    b1.send_line("/part #local")
    assert (
        b1.expect(protocol.Left)
        == a1.expect(protocol.Left, skip=(protocol.Message,))
        == protocol.Left("b1", "part", "#local")
    )
    assert wait_until(lambda: subscribers(redis_server, "#local") == 1)  # ... and leaves with its last
    for peer in (a1, a2):
        peer.send_line("/part #local")
    assert wait_until(lambda: room_channels(redis_server) == {room_channel(LOBBY)})
    wait_members([a, b, c], "#local", 0)
    assert b1.drain(0.3) == [protocol.Talking(LOBBY, ("a1", "a2", "b1", "c1"))] and c1.drain() == []


def doomed_churn(user: str, cycles: int) -> bytes:
    """A burst of joins and parts: #r0 #r1 #r2 #r3 #r0 ..., parting the room
    joined two steps before, so the user is in one to three rooms at a time."""
    lines = []
    for i in range(cycles):
        lines += [f"/join #r{i % 4}", f"/part #r{(i - 2) % 4}"]
    return b"".join(protocol.encode_line(t) for t in lines)


def shared_with(events: list[protocol.ServerEvent], user: str, rooms: set[str]) -> bool:
    """From what one watcher was told: is ``user`` in one of ``rooms`` now?"""
    now: set[str] = set()
    for e in events:
        if isinstance(e, protocol.Joined) and e.name == user and e.room is not None:
            now.add(e.room)
        elif isinstance(e, protocol.Left) and e.name == user and e.room is not None:
            now.discard(e.room)
    return bool(now & rooms)


def test_joins_and_parts_racing_a_nodes_death_leave_nothing_stale(
    redis_server: RedisServer, node: Node, client: Client
) -> None:
    """Two users on a node churn through rooms #r0-#r3 until the node is
    SIGKILLed.  Watchers on the two other nodes: every one that shares a room
    with a dead user (as its own notices say) is told ONCE that it left; no
    node lists a dead user in any room afterwards; no Redis state is left."""
    a, c = node(), node()
    victim = CommandTarget(node_command(redis_server.url, 0, ["--log-level", "WARNING"]), "doomed node")
    address = victim.start()
    try:
        everywhere, lobby_only, two_rooms = client(a, "everywhere"), client(c, "lobby_only"), client(c, "two_rooms")
        for room in ("#r0", "#r1", "#r2", "#r3"):
            joined(everywhere, room)
        one_room = client(a, "one_room")
        for room in ("#r0", "#r1"):
            joined(two_rooms, room)
        joined(one_room, "#r2")
        for watcher in (two_rooms, one_room):
            watcher.send_line(f"/part {LOBBY}")
        doomed = {name: client(address, name) for name in ("d0", "d1")}
        wait_members([a, c], LOBBY, 4)
        # The first two share the lobby with the dead (they never part it), so
        # they hear of the reaping for sure; the others only if in a dead
        # user's room then, which the churn's timing decides.
        watchers = {
            "everywhere": (everywhere, {LOBBY, "#r0", "#r1", "#r2", "#r3"}),
            "lobby_only": (lobby_only, {LOBBY}),
        }
        watchers |= {"two_rooms": (two_rooms, {"#r0", "#r1"}), "one_room": (one_room, {"#r2"})}
        seen: dict[str, list[protocol.ServerEvent]] = {name: w.drain(0.3) for name, (w, _) in watchers.items()}
        for name, d in doomed.items():
            d.send_raw(doomed_churn(name, 3000))
        while sum(isinstance(e, protocol.Joined) and e.room is not None for e in seen["everywhere"]) < 50:  # churning
            seen["everywhere"].append(everywhere.next_event())
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)

        deadline = time.monotonic() + REAP_WAIT_S
        for name, (watcher, rooms) in watchers.items():
            while True:  # until every dead user it shares a room with is gone
                lost = {e.name for e in seen[name] if isinstance(e, protocol.Left) and e.reason == "server lost"}
                expected = {d for d in doomed if LOBBY in rooms or shared_with(seen[name], d, rooms)}
                if lost >= expected:
                    break
                seen[name].append(watcher.next_event(max(0.1, deadline - time.monotonic())))
        for name, (watcher, rooms) in watchers.items():
            seen[name] += watcher.drain(1.5)  # exactly once: no second notice comes
            lefts = [e.name for e in seen[name] if isinstance(e, protocol.Left) and e.room is None]
            assert sorted(lefts) == sorted(d for d in doomed if LOBBY in rooms or shared_with(seen[name], d, rooms))

        for server in (a, c):  # no stale membership anywhere
            assert sorted(server.hub.names()) == ["everywhere", "lobby_only", "one_room", "two_rooms"]
            rooms = dict(server.hub.room_list())
            assert rooms == {LOBBY: 2, "#r0": 2, "#r1": 2, "#r2": 2, "#r3": 1}, rooms
        assert subscribers(redis_server, "#r0") == 2 and subscribers(redis_server, "#r3") == 1
        with redis.Redis.from_url(redis_server.url) as r:
            nodes = {n.decode() for n in r.smembers(PREFIX + "nodes")}  # type: ignore[union-attr]
            assert nodes == {a.cluster.link.node.decode(), c.cluster.link.node.decode()}  # type: ignore[union-attr]
            assert sorted(k.decode() for k in r.keys(PREFIX + "names:*")) == sorted(  # type: ignore[union-attr]
                f"{PREFIX}names:{n}" for n in nodes
            )
    finally:
        victim.stop()
