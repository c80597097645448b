"""Rooms over real loopback sockets: joins, parts, notices to the members only,
the current room, ``/who #ROOM``, ``/rooms``, the limits and every bad input
(one error line each, and the session goes on), a room-aware burst under each
fan-out strategy, and rooms over WebSocket."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server import protocol as p
from server.app import ChatServer
from server.config import FANOUT_STRATEGIES
from tests.conftest import ChatTestClient
from tests.server.wsclient import WsTestClient

Connect = Callable[..., ChatTestClient]
LOBBY = p.DEFAULT_ROOM


def joined(client: ChatTestClient, room: str) -> p.Talking:
    """``client`` joins ``room``; the line that says who is there."""
    client.send_line(f"/join {room}")
    talking = client.expect(p.Talking, skip=(p.Joined, p.Left))
    assert talking.room == room.lower()
    return talking


def own_part(name: str) -> Callable[[p.ServerEvent], bool]:
    """Matches the notice of ``name``'s own part of the lobby."""
    return lambda e: e == p.Left(name, "part", LOBBY)


def quiet(*clients: ChatTestClient) -> None:
    """Everything in flight has arrived (and is dropped)."""
    for c in clients:
        c.drain(0.2)


def test_join_say_and_part_reach_the_room_members_only(connect: Connect) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    quiet(alice, bob)
    assert joined(alice, "#rust") == p.Talking("#rust", ("alice",))
    assert joined(bob, "#Rust") == p.Talking("#rust", ("alice", "bob"))  # one spelling per room
    assert alice.expect(p.Joined) == p.Joined("bob", "#rust")
    alice.say("hello rust")  # plain text goes to the room joined last
    assert bob.expect(p.Message) == p.Message("alice", "hello rust", "#rust")
    alice.send_line("/me waves")
    assert bob.expect(p.Action) == p.Action("alice", "waves", "#rust")
    bob.send_line("/say #lobby hello lobby")  # the lobby's lines look as they always did
    assert alice.expect(p.Message) == p.Message("bob", "hello lobby")
    assert carol.expect(p.Message) == p.Message("bob", "hello lobby")
    assert carol.raw_lines[-1] == b"bob: hello lobby"
    bob.send_line("/part #rust gone fishing")
    assert bob.expect(p.Left) == p.Left("bob", "part: gone fishing", "#rust")
    assert bob.expect(p.Talking) == p.Talking(LOBBY, ("alice", "bob", "carol"))  # its current room now
    assert alice.expect(p.Left) == p.Left("bob", "part: gone fishing", "#rust")
    assert carol.drain() == []  # never in #rust: heard nothing of it
    bob.say("back in the lobby")
    assert alice.expect(p.Message) == p.Message("bob", "back in the lobby")
    assert carol.expect(p.Message) == p.Message("bob", "back in the lobby")


def test_the_current_room_is_the_last_joined_and_a_part_falls_back(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    quiet(alice)
    for room in ("#a", "#b", "#c"):
        joined(alice, room)
        joined(bob, room)
        alice.expect(p.Joined)
    assert joined(alice, "#a") == p.Talking("#a", ("alice", "bob"))  # joining again only switches
    alice.say("to a")
    assert bob.expect(p.Message) == p.Message("alice", "to a", "#a")
    alice.send_line("/part #b")  # not the current room: nothing else changes
    assert alice.expect(p.Left) == p.Left("alice", "part", "#b")
    alice.send_line("/part #a")  # the current one: back to the one joined before (#c)
    assert alice.expect(p.Left) == p.Left("alice", "part", "#a")
    assert alice.expect(p.Talking) == p.Talking("#c", ("alice", "bob"))
    alice.say("to c")
    assert bob.wait_for(lambda e: isinstance(e, p.Message)) == p.Message("alice", "to c", "#c")
    alice.send_line("/part #c")
    assert alice.expect(p.Left) == p.Left("alice", "part", "#c")
    assert alice.expect(p.Talking).room == LOBBY  # #c parted: the lobby
    alice.send_line(f"/part {LOBBY}")
    assert alice.expect(p.Left) == p.Left("alice", "part", LOBBY)
    assert alice.expect(p.Notice).text == p.NO_ROOM  # the lobby parted too: no room
    alice.say("anyone?")
    assert alice.expect(p.Error) == p.Error("You are in no room; /join #ROOM to talk")
    alice.send_line("/me shrugs")
    assert alice.expect(p.Error) == p.Error("You are in no room; /join #ROOM to talk")
    assert joined(alice, LOBBY).room == LOBBY  # rejoining the lobby is a room join like any other
    assert bob.wait_for(lambda e: isinstance(e, p.Joined)) == p.Joined("alice", LOBBY)


def test_who_and_rooms_list_members_and_counts(connect: Connect) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    joined(alice, "#big")
    joined(bob, "#big")
    joined(carol, "#big")
    joined(carol, "#small")
    carol.send_line("/who #big")
    assert carol.expect(p.Online) == p.Online(("alice", "bob", "carol"), 3, "#big")
    carol.send_line("/who #small")
    assert carol.expect(p.Online) == p.Online(("carol",), 1, "#small")
    carol.send_line("/who")  # everyone online, as always
    assert carol.expect(p.Online) == p.Online(("alice", "bob", "carol"))
    carol.send_line("/rooms")
    assert carol.expect(p.RoomList) == p.RoomList((("#big", 3), (LOBBY, 3), ("#small", 1)))  # biggest first
    carol.send_line("/part #small")
    carol.expect(p.Left)
    carol.send_line("/rooms")  # an empty room is gone
    assert carol.wait_for(lambda e: isinstance(e, p.RoomList)) == p.RoomList((("#big", 3), (LOBBY, 3)))
    carol.send_line("/who #small")
    assert carol.expect(p.Error) == p.Error("No such room: #small")
    for name, c in (("alice", alice), ("bob", bob), ("carol", carol)):
        c.send_line(f"/part {LOBBY}")
        c.wait_for(own_part(name))  # done before /rooms
    carol.send_line("/rooms")  # the lobby stays, empty
    assert carol.wait_for(lambda e: isinstance(e, p.RoomList)) == p.RoomList((("#big", 3), (LOBBY, 0)))


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/join rust", "Invalid room name 'rust': a room name starts with '#'"),
        ("/join #", "Invalid room name '#': it needs a name after '#'"),
        (
            "/join #r\u00fcst",
            "Invalid room name '#r\u00fcst': only letters a-z, digits, '-', '_' and '.' (not '\u00fc')",
        ),
        ("/join #" + "x" * 33, "Invalid room name: longer than 32 characters after '#'"),
        ("/join #a #b", "usage: /join #ROOM"),
        ("/join", "usage: /join #ROOM"),
        ("/part #nowhere", "You are not in #nowhere"),
        ("/part", "usage: /part #ROOM [REASON]"),
        ("/say #nowhere hi", "You are not in #nowhere; /join #nowhere first"),
        ("/say #lobby", "usage: /say #ROOM TEXT"),
        ("/say hi there", "Invalid room name 'hi': a room name starts with '#'"),
        ("/who #nowhere", "No such room: #nowhere"),
        ("/who bob", "Invalid room name 'bob': a room name starts with '#'"),
    ],
)
def test_bad_room_input_gets_one_error_and_the_session_goes_on(connect: Connect, line: str, error: str) -> None:
    alice, bob = connect("alice"), connect("bob")
    quiet(alice)
    alice.send_line(line)
    assert alice.expect(p.Error) == p.Error(error)
    alice.say("still here")
    assert bob.expect(p.Message) == p.Message("alice", "still here")
    assert alice.drain() == [] and bob.drain() == []  # one line, to the one who erred


def test_room_limits_per_client_and_in_total(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(max_rooms_per_client=3, max_rooms=4)
    alice, bob = ChatTestClient(server.address), ChatTestClient(server.address)
    try:
        alice.register("alice")
        bob.register("bob")
        joined(alice, "#one")
        joined(alice, "#two")  # with the lobby: 3 rooms
        alice.send_line("/join #three")
        message = "Cannot join #three: you are in 3 rooms, the most one client may be in; /part one first"
        assert alice.expect(p.Error) == p.Error(message)
        joined(bob, "#three")  # the 4th room of the server
        bob.send_line("/join #four")
        assert bob.expect(p.Error) == p.Error("Cannot join #four: the server has 4 rooms, its limit")
        joined(bob, "#one")  # an existing room is no new room
        alice.send_line("/part #two")
        assert alice.wait_for(lambda e: isinstance(e, p.Talking)).room == "#one"  # the current room again
        joined(alice, "#three")  # room again under both limits
        alice.say("made it")
        assert bob.wait_for(lambda e: isinstance(e, p.Message)) == p.Message("alice", "made it", "#three")
    finally:
        alice.close()
        bob.close()


def test_a_leaving_client_is_announced_once_to_everyone_sharing_a_room(connect: Connect) -> None:
    """alice shares the lobby and #x with bob, only #x with carol (who parted
    the lobby), nothing with dave (who parted it too): bob and carol each get
    ONE 'left the chat', dave none."""
    alice, bob, carol, dave = connect("alice"), connect("bob"), connect("carol"), connect("dave")
    for c in (alice, bob, carol):
        joined(c, "#x")
    joined(dave, "#y")
    for name, c in (("carol", carol), ("dave", dave)):
        c.send_line(f"/part {LOBBY}")
        c.wait_for(own_part(name))
    quiet(alice, bob, carol, dave)
    alice.send_line("/nick alicia")  # a rename too reaches each once, and the renamed
    for c in (alice, bob, carol):
        assert c.expect(p.Renamed) == p.Renamed("alice", "alicia")
    alice.send_line("/quit bye all")
    assert alice.read_until_closed()[-1] == p.Disconnected("bye")
    for c in (bob, carol):
        assert c.expect(p.Left) == p.Left("alicia", "quit: bye all")
        assert c.drain() == []
    assert dave.drain() == []


def test_join_and_part_notices_follow_the_announce_limit_per_room(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(announce_limit=2)
    clients = [ChatTestClient(server.address) for _ in range(4)]
    try:
        for i, c in enumerate(clients):
            c.register(f"u{i}")
        quiet(*clients)
        a, b, c, _ = clients
        joined(a, "#r")
        joined(b, "#r")  # 2 members: announced
        assert a.expect(p.Joined) == p.Joined("u1", "#r")
        joined(c, "#r")  # 3 > 2: not announced
        b.send_line("/part #r")  # 3 members before: not announced (to the others)
        assert b.expect(p.Left) == p.Left("u1", "part", "#r")  # the one who parts is told
        a.send_line("/part #r")  # 2 before: announced
        assert c.wait_for(lambda e: isinstance(e, p.Left)) == p.Left("u0", "part", "#r")
        assert a.drain(0.3) == [p.Left("u0", "part", "#r"), p.Talking(LOBBY, ("u0", "u1", "u2", "u3"))]
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("fanout", FANOUT_STRATEGIES)
def test_a_burst_to_rooms_reaches_exactly_their_members_once_in_order(
    make_server: Callable[..., ChatServer], fanout: str
) -> None:
    """Three rooms of overlapping members, two senders bursting 500 lines to
    each of two rooms (plain text to the current room and /say interleaved):
    every member gets each (sender, room) stream once and in order; nobody
    gets a line of a room it is not in."""
    server = make_server(fanout=fanout, rate_limit=0)
    rooms = {"#a": ["s1", "s2", "r1", "r2"], "#b": ["s1", "s2", "r2", "r3"], "#c": ["r3", "r4"]}
    names = sorted({n for members in rooms.values() for n in members})
    clients = {n: ChatTestClient(server.address) for n in names}
    try:
        for name, c in clients.items():
            c.register(name)
            for room, members in rooms.items():
                if name in members:
                    joined(c, room)
            c.send_line(f"/part {LOBBY}")
        quiet(*clients.values())
        count = 500
        for sender in ("s1", "s2"):  # current room: #b (joined last)
            lines = [f"/say #a {sender}-a-{i // 2}" if i % 2 else f"{sender}-b-{i // 2}" for i in range(2 * count)]
            clients[sender].send_raw(b"".join(p.encode_line(t) for t in lines))
        for name, c in clients.items():
            expected = {(s, r): count for s in ("s1", "s2") for r in ("#a", "#b") if name in rooms[r] and s != name}
            got: dict[tuple[str, str], list[int]] = {key: [] for key in expected}
            while sum(map(len, got.values())) < sum(expected.values()):
                message = c.expect(p.Message, skip=(p.Joined, p.Left))
                sender, room, seq = message.text.split("-")
                assert message.room == f"#{room}" and message.sender == sender, message
                got[(sender, f"#{room}")].append(int(seq))
            assert all(seqs == list(range(count)) for seqs in got.values()), name
            assert [e for e in c.drain(0.3) if isinstance(e, p.Message)] == []  # nothing twice, nothing else
    finally:
        for client in clients.values():
            client.close()


def ws_lines(client: WsTestClient, quiet_s: float = 0.3) -> list[p.ServerEvent]:
    """Every line that arrives until none has for ``quiet_s``."""
    events = []
    while True:
        try:
            events.append(p.parse_server_line(client.line(quiet_s)))
        except TimeoutError:
            return events


def test_rooms_over_websocket(make_server: Callable[..., ChatServer]) -> None:
    """Two WebSocket users in different rooms and a TCP user in one of them:
    each sees exactly its rooms' lines."""
    server = make_server(ws_port=0)
    assert server.ws_address is not None
    ann, bea = WsTestClient(server.ws_address), WsTestClient(server.ws_address)
    tom = ChatTestClient(server.address)
    try:
        ann.register("ann")
        bea.register("bea")
        tom.register("tom")
        ann.send_line("/join #web")
        assert ann.expect(p.Talking) == p.Talking("#web", ("ann",))
        bea.send_line("/join #other")
        assert bea.expect(p.Talking) == p.Talking("#other", ("bea",))
        joined(tom, "#web")
        assert ws_lines(ann) == [p.Joined("tom", "#web")]
        ann.send_line("over the web")
        assert tom.expect(p.Message) == p.Message("ann", "over the web", "#web")
        tom.say("over tcp")
        assert ann.expect(p.Message) == p.Message("tom", "over tcp", "#web")
        bea.send_line("elsewhere")
        tom.send_line("/say #lobby to the lobby")
        assert ws_lines(bea) == [p.Message("tom", "to the lobby")]
        assert ws_lines(ann) == [p.Message("tom", "to the lobby")]
        assert tom.drain() == []
    finally:
        ann.shut()
        bea.shut()
        tom.close()
