"""The chat server over real loopback sockets."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from server import protocol as p
from server.app import ChatServer
from server.fanout import queued
from server.session import reset_by_peer
from tests.conftest import ChatTestClient, wait_until

Connect = Callable[..., ChatTestClient]


def test_two_clients_chat_with_usernames_and_join_notice(connect: Connect) -> None:
    alice = connect()
    assert alice.expect(p.Prompt).text == p.NAME_PROMPT
    alice.send_line("  alice  ")
    assert alice.expect(p.Welcome) == p.Welcome("alice", ("alice",))
    bob = connect()
    assert bob.register("bob") == p.Welcome("bob", ("alice", "bob"))
    assert alice.expect(p.Joined) == p.Joined("bob")
    alice.say("hello bob")
    assert bob.expect(p.Message) == p.Message("alice", "hello bob")
    bob.say("hi alice: how are you?")
    assert alice.expect(p.Message) == p.Message("bob", "hi alice: how are you?")
    # Nobody hears their own messages back.
    assert alice.drain() == [] and bob.drain() == []


def test_leave_notices_are_sent_exactly_once_for_quit_eof_and_reset(connect: Connect) -> None:
    watcher = connect("watcher")
    quitter, closer, resetter = connect("quitter"), connect("closer"), connect("resetter")
    quitter.send_line("/quit gotta go")
    assert quitter.read_until_closed()[-1] == p.Disconnected("bye")
    closer.sock.shutdown(socket.SHUT_WR)
    resetter.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    resetter.sock.close()
    events = watcher.drain(quiet=0.5)
    lefts = [e for e in events if isinstance(e, p.Left)]
    assert sorted(lefts, key=lambda e: e.name) == [
        p.Left("closer", "connection closed"),
        p.Left("quitter", "quit: gotta go"),
        p.Left("resetter", "connection reset"),
    ]


def test_a_reset_is_told_from_a_close_by_the_sockets_state_once_its_error_is_gone() -> None:
    """A reader can see end-of-file after a reset when another thread's send
    took the reset's error first; the socket's TCP state still tells them apart."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        resetter = socket.create_connection(listener.getsockname(), timeout=5)
        reset_side, _ = listener.accept()
        closer = socket.create_connection(listener.getsockname(), timeout=5)
        closed_side, _ = listener.accept()
    with reset_side, closed_side, closer:
        resetter.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        resetter.close()
        closer.shutdown(socket.SHUT_WR)
        assert wait_until(lambda: reset_by_peer(reset_side), timeout=5)
        with pytest.raises(ConnectionResetError):
            reset_side.send(b"x")  # the send takes the error ...
        reset_side.settimeout(5)
        assert reset_side.recv(10) == b""  # ... and the reader sees only end-of-file
        assert reset_by_peer(reset_side)
        closed_side.settimeout(5)
        assert closed_side.recv(10) == b""
        assert not reset_by_peer(closed_side)


def test_private_messages_reach_only_the_recipient(connect: Connect) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    alice.drain()
    bob.drain()
    alice.send_line("/msg BOB meet me at noon")
    assert bob.expect(p.Private) == p.Private("alice", "meet me at noon")
    assert alice.expect(p.PrivateEcho) == p.PrivateEcho("bob", "meet me at noon")
    alice.send_line("/msg nobody hello?")
    assert alice.expect(p.Error) == p.Error("No such user: nobody")
    assert carol.drain() == []


def test_nick_renames_everywhere_and_frees_the_old_name(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.expect(p.Joined)
    alice.send_line("/nick al")
    assert alice.expect(p.Renamed) == p.Renamed("alice", "al")
    assert bob.expect(p.Renamed) == p.Renamed("alice", "al")
    alice.say("now as al")
    assert bob.expect(p.Message) == p.Message("al", "now as al")
    bob.send_line("/nick AL")
    assert bob.expect(p.Error) == p.Error("Name taken: AL")
    bob.send_line("/nick bad name")
    assert bob.expect(p.Error).message.startswith("Invalid name:")
    newcomer = connect("alice")  # the old name is free again
    assert newcomer.name == "alice"
    alice.send_line("/nick Al")  # a case-only change of one's own name is allowed
    assert alice.wait_for(lambda e: isinstance(e, p.Renamed)) == p.Renamed("al", "Al")


def test_duplicate_and_invalid_names_get_an_error_and_the_prompt_again(connect: Connect) -> None:
    connect("Alice")
    client = connect()
    client.expect(p.Prompt)
    for bad, message in [
        ("ALICE", "Name taken: ALICE"),
        ("", "Invalid name: name is empty"),
        ("two words", "Invalid name: name must not contain spaces"),
        ("*** admin", "Invalid name: name must not contain spaces"),
        ("***admin", "Invalid name: name must not start with '*'"),
        ("x" * 40, "Invalid name: name is longer than 32 characters"),
        ("evil\x1b[2J", "Invalid name: name must not contain control characters"),
    ]:
        client.send_line(bad)
        assert client.expect(p.Error) == p.Error(message)
        client.expect(p.Prompt)
    client.send_line("alice2")
    assert client.expect(p.Welcome).name == "alice2"


def test_commands_who_help_me_and_unknown(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.expect(p.Joined)
    alice.send_line("/who")
    assert alice.expect(p.Online) == p.Online(("alice", "bob"))
    alice.send_line("/help")
    assert "/msg NAME TEXT" in alice.expect(p.Notice).text
    alice.send_line("/dance")
    assert alice.expect(p.Error) == p.Error("unknown command /dance; try /help")
    alice.send_line("/me waves")
    assert bob.expect(p.Action) == p.Action("alice", "waves")
    alice.send_line("//slashes are fine")
    assert bob.expect(p.Message) == p.Message("alice", "/slashes are fine")


def test_control_characters_are_never_relayed_raw(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.expect(p.Joined)
    alice.send_raw(b"look \x1b[2J\x07\x00 here \xff\n")
    message = bob.expect(p.Message)
    assert message.sender == "alice"
    assert message.text == "look \ufffd[2J\ufffd\ufffd here \ufffd"


def test_oversized_line_is_dropped_with_an_error_and_the_session_goes_on(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server(max_line_bytes=100)
    alice, bob = ChatTestClient(server.address), ChatTestClient(server.address)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect(p.Joined)
        alice.send_raw(b"a" * 500 + b"\nstill here\n")
        assert alice.expect(p.Error) == p.Error("Line too long (limit 100 bytes), dropped")
        assert bob.expect(p.Message) == p.Message("alice", "still here")
        assert bob.drain() == []
    finally:
        alice.close()
        bob.close()


def test_burst_of_2000_lines_reaches_20_receivers_intact_once_and_in_order(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server(rate_limit=0)  # a burst on purpose: flood control off
    receivers = [ChatTestClient(server.address) for _ in range(20)]
    sender = ChatTestClient(server.address)
    try:
        for i, r in enumerate(receivers):
            r.register(f"r{i}")
        sender.register("sender")
        for r in receivers:
            r.wait_for(lambda e: e == p.Joined("sender"))
        lines = [f"line {i:05d} " + "x" * (i % 97) for i in range(2000)]
        sender.send_raw(b"".join(p.encode_say(text) for text in lines))
        for r in receivers:
            got = [r.expect(p.Message, skip=(p.Joined,)) for _ in lines]
            assert [m.sender for m in got] == ["sender"] * len(lines)
            assert [m.text for m in got] == lines
        assert all(r.drain(quiet=0.1) == [] for r in receivers)
    finally:
        for c in [sender, *receivers]:
            c.close()


@pytest.mark.parametrize("fanout", ["queued", "threads", "direct"])
def test_both_fanout_strategies_relay_correctly(make_server: Callable[..., ChatServer], fanout: str) -> None:
    server = make_server(fanout=fanout)
    clients = [ChatTestClient(server.address) for _ in range(5)]
    try:
        for i, c in enumerate(clients):
            c.register(f"c{i}")
        for c in clients:
            c.drain(quiet=0.1)
        clients[0].say("to all")
        for c in clients[1:]:
            assert c.expect(p.Message) == p.Message("c0", "to all")
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize("fanout", ["queued", "threads"])
def test_a_client_that_never_reads_is_cut_off_and_the_others_get_everything(
    make_server: Callable[..., ChatServer], fanout: str
) -> None:
    server = make_server(send_queue_bytes=256 * 1024, rate_limit=0, fanout=fanout)
    stalled = ChatTestClient(server.address, rcvbuf=4096)
    readers = [ChatTestClient(server.address) for _ in range(3)]
    sender = ChatTestClient(server.address)
    try:
        stalled.register("stalled")
        for i, r in enumerate(readers):
            r.register(f"reader{i}")
        sender.register("sender")
        for r in readers:
            r.drain(quiet=0.1)
        # ~4 MB: far more than the stalled client's socket buffers plus its send queue.
        lines = [f"{i:06d} " + "y" * 2000 for i in range(2000)]
        sender.send_raw(b"".join(p.encode_say(text) for text in lines))

        # Healthy readers read concurrently, as real clients do.
        def read_all(reader: ChatTestClient) -> list[p.ServerEvent]:
            events: list[p.ServerEvent] = []
            while sum(isinstance(e, p.Message) for e in events) < len(lines):
                events.append(reader.next_event())
            return events

        with ThreadPoolExecutor(len(readers)) as pool:
            received = list(pool.map(read_all, readers))
        for events in received:
            assert [e.text for e in events if isinstance(e, p.Message)] == lines
        # The stalled client was cut off, with the reason, exactly once.
        for reader, events in zip(readers, received, strict=True):
            lefts = [e for e in events if isinstance(e, p.Left)] + [
                e for e in reader.drain(quiet=0.3) if isinstance(e, p.Left)
            ]
            assert lefts == [p.Left("stalled", "send queue exceeded")]
        assert wait_until(lambda: server.connection_count == 4)
    finally:
        for c in [stalled, sender, *readers]:
            c.close()


def test_silent_client_is_disconnected_after_the_registration_timeout(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server(registration_timeout=0.3)
    silent = ChatTestClient(server.address)
    try:
        events = silent.read_until_closed(timeout=5)
        assert events == [p.Prompt(p.NAME_PROMPT), p.Disconnected("registration timeout")]
        assert wait_until(lambda: server.connection_count == 0)
    finally:
        silent.close()


def test_server_full_gets_a_clear_line(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(max_clients=2)
    a, b = ChatTestClient(server.address), ChatTestClient(server.address)
    c = ChatTestClient(server.address)
    try:
        a.register("a")
        b.register("b")
        assert c.read_until_closed() == [p.Disconnected("server full")]
        b.close()
        assert wait_until(lambda: server.connection_count == 1)
        d = ChatTestClient(server.address)
        assert d.register("d").name == "d"
        d.close()
    finally:
        for x in (a, b, c):
            x.close()


def test_in_process_shutdown_tells_every_client(make_server: Callable[..., ChatServer]) -> None:
    server = make_server()
    clients = [ChatTestClient(server.address) for _ in range(10)]
    try:
        for i, c in enumerate(clients):
            c.register(f"c{i}")
        started = time.monotonic()
        server.shutdown()
        assert time.monotonic() - started < 2.0
        for c in clients:
            assert c.read_until_closed()[-1] == p.Disconnected("server shutting down")
    finally:
        for c in clients:
            c.close()


def test_a_line_sent_the_moment_a_client_is_welcomed_reaches_it(make_server: Callable[..., ChatServer]) -> None:
    """The welcome line and membership become visible together: a message sent
    as soon as the newcomer has read its welcome is never lost to it."""
    server = make_server(rate_limit=0)
    old = ChatTestClient(server.address)
    try:
        old.register("old")
        for i in range(150):
            new = ChatTestClient(server.address)
            try:
                new.register(f"new{i}")
                old.say(f"hello new{i}")
                # (The previous newcomer's leave notice may arrive first.)
                assert new.expect(p.Message, skip=(p.Left,)) == p.Message("old", f"hello new{i}")
            finally:
                new.close()
    finally:
        old.close()


def test_join_and_leave_notices_stop_above_the_announce_limit(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(announce_limit=2)
    a, b, c = (ChatTestClient(server.address) for _ in range(3))
    try:
        a.register("a")
        b.register("b")
        assert a.expect(p.Joined) == p.Joined("b")  # 2 members: announced
        assert c.register("c").count == 3  # 3 members: quiet, but the count is exact
        c.say("still relayed")
        assert a.expect(p.Message) == p.Message("c", "still relayed")
        c.send_line("/quit")
        c.read_until_closed()
        b.send_line("/quit")  # back to 2 members, then 1: announced again
        assert a.expect(p.Left) == p.Left("b", "quit")
        assert a.drain() == []
    finally:
        for x in (a, b, c):
            x.close()


@pytest.mark.parametrize("fanout", ["queued", "threads", "direct"])
def test_private_and_public_lines_keep_each_senders_order(make_server: Callable[..., ChatServer], fanout: str) -> None:
    """A broadcast and a private line travel different paths through the
    queued strategy (the flusher's log, the recipient's own queue); each
    sender's lines must still reach a recipient in the order it sent them,
    while another client broadcasts at the same time."""
    server = make_server(rate_limit=0, fanout=fanout)
    alice, bob, carol = (ChatTestClient(server.address) for _ in range(3))
    try:
        alice.register("alice")
        bob.register("bob")
        carol.register("carol")
        for c in (alice, bob):
            c.wait_for(lambda e: e == p.Joined("carol"))
        n = 300
        with ThreadPoolExecutor(2) as pool:
            noise = pool.submit(carol.send_raw, b"".join(p.encode_say(f"noise {i}") for i in range(n)))
            burst = b"".join(
                p.encode_say(f"public {i}") + p.encode_line(f"/msg bob private {i}") + p.encode_line(f"/me waves {i}")
                for i in range(n)
            )
            alice.send_raw(burst)
            noise.result(timeout=10)
        wanted = []
        for i in range(n):
            wanted += [
                p.Message("alice", f"public {i}"),
                p.Private("alice", f"private {i}"),
                p.Action("alice", f"waves {i}"),
            ]
        got_alice: list[p.ServerEvent] = []
        got_carol: list[p.ServerEvent] = []
        while len(got_alice) < len(wanted) or len(got_carol) < n:
            event = bob.next_event()
            if isinstance(event, (p.Message, p.Action, p.Private)) and event.sender == "alice":
                got_alice.append(event)
            elif isinstance(event, p.Message) and event.sender == "carol":
                got_carol.append(event)
            else:
                raise AssertionError(f"unexpected {event!r}")
        assert got_alice == wanted
        assert got_carol == [p.Message("carol", f"noise {i}") for i in range(n)]
        assert bob.drain(quiet=0.1) == []
    finally:
        for c in (alice, bob, carol):
            c.close()


def test_lines_broadcast_before_a_kick_arrive_before_the_last_line(make_server: Callable[..., ChatServer]) -> None:
    """The last line of a session ends its stream: what was broadcast before
    it still arrives first, nothing broadcast after it does."""
    server = make_server(rate_limit=0)
    victim, talker = ChatTestClient(server.address), ChatTestClient(server.address)
    try:
        victim.register("victim")
        talker.register("talker")
        victim.wait_for(lambda e: e == p.Joined("talker"))
        talker.send_raw(b"".join(p.encode_say(f"before {i}") for i in range(200)))
        # Wait until the server relayed them all (the talker cannot see that:
        # a second listener can).
        listener = ChatTestClient(server.address)
        listener.register("listener")
        talker.say("marker")
        listener.wait_for(lambda e: e == p.Message("talker", "marker"))
        session = server.hub.find("victim")
        assert session is not None
        session.disconnect("kicked for the test")
        talker.send_raw(b"".join(p.encode_say(f"after {i}") for i in range(50)))
        events = victim.read_until_closed()
        texts = [e.text for e in events if isinstance(e, p.Message)]
        assert texts[:200] == [f"before {i}" for i in range(200)]
        assert not any(t.startswith("after") for t in texts)
        assert isinstance(events[-1], p.Disconnected) and "kicked for the test" in events[-1].reason
        listener.close()
    finally:
        victim.close()
        talker.close()


def test_a_big_room_with_lines_cut_into_its_rounds_keeps_every_line_once_in_its_senders_order(
    make_server: Callable[..., ChatServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three senders burst at once into a room bigger than a fan-out chunk
    (chunks of 8 here, so rounds are cut often: lines said meanwhile go
    first to the members already served, the rest get them behind what was
    queued for them).  Every other member still gets every line once, each
    sender's in order."""
    monkeypatch.setattr(queued, "YIELD_EVERY", 8)
    cuts: list[str] = []
    defer, absorb = queued.Flusher._defer, queued.Flusher._absorb

    def deferring(self: queued.Flusher, *args: Any) -> None:
        cuts.append("a fan-out cut")
        defer(self, *args)

    def absorbing(self: queued.Flusher) -> int:
        if self._log:
            cuts.append("a flush took lines in")
        return absorb(self)

    monkeypatch.setattr(queued.Flusher, "_defer", deferring)
    monkeypatch.setattr(queued.Flusher, "_absorb", absorbing)
    # One core for this thread and every thread it starts (the server's): a
    # fan-out's yield then hands the GIL to the reader threads with lines,
    # as on a server pinned to one core.
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    members: list[ChatTestClient] = []
    try:
        server = make_server(rate_limit=0)
        members.extend(ChatTestClient(server.address) for _ in range(40))
        for i, m in enumerate(members):
            m.register(f"m{i}")
        for m in members[:-1]:
            m.wait_for(lambda e: e == p.Joined("m39"))
        senders = members[:3]

        def say_each(sender: ChatTestClient, said: list[str]) -> None:
            for text in said:  # a send each: most become broadcasts of their own
                sender.send_raw(p.encode_say(text))

        for burst in range(3):  # a cut needs a line said mid-fan-out: a burst has had 4-11
            lines = {f"m{k}": [f"{burst}.{k}:{i:04d} " + "y" * (i % 61) for i in range(600)] for k in range(3)}
            with ThreadPoolExecutor(3) as pool:
                for k, sender in enumerate(senders):
                    pool.submit(say_each, sender, lines[f"m{k}"])
            for i, m in enumerate(members):
                want = {name: said for name, said in lines.items() if name != f"m{i}"}
                got: dict[str, list[str]] = {name: [] for name in want}
                while any(len(got[n]) < len(want[n]) for n in want):
                    event = m.next_event()
                    if isinstance(event, p.Message):
                        got[event.sender].append(event.text)
                assert got == want, f"m{i}: a line lost, doubled or out of its sender's order"
            assert all(m.drain(quiet=0.05) == [] for m in members), "a line came twice"
            if cuts:
                break
        assert cuts, "no round was cut: the test did not exercise what it is for"
    finally:
        for c in members:
            c.close()
        os.sched_setaffinity(0, cores)
