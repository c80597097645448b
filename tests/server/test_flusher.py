"""The ``queued`` flusher on real socket pairs: what one round of a room's
lines gives each member, and in how many sends, while people join and leave
between the lines (churn).  The round is held open by taking the flusher's
round lock, so every line below lands in the same round."""

from __future__ import annotations

import os
import select
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.fanout import outboxes, queued, runs
from server.fanout.outboxes import QueuedOutbox
from server.fanout.queued import Flusher
from server.rooms import Members, Room, Snapshot

if TYPE_CHECKING:
    from server.fanout.base import Outbox
    from server.session import Session

#: Seconds a test waits for a member's bytes.
READ_TIMEOUT_S = 5.0
LIMIT_BYTES = 1 << 20


@dataclass(eq=False)
class Member:
    """One client: the server's outbox and the client's end of the pair."""

    name: str
    outbox: QueuedOutbox
    client: socket.socket
    expected: list[bytes] = field(default_factory=list)

    def read_all(self) -> bytes:
        """Everything expected, read with a deadline."""
        want = sum(map(len, self.expected))
        got = b""
        while len(got) < want:
            ready, _, _ = select.select([self.client], [], [], READ_TIMEOUT_S)
            assert ready, f"{self.name} got {got!r}, expected {b''.join(self.expected)!r}"
            got += self.client.recv(65536)
        ready, _, _ = select.select([self.client], [], [], 0.05)
        if ready:
            got += self.client.recv(65536)
        return got


class Chat:
    """A flusher, one or more rooms and their members, on socket pairs."""

    def __init__(self) -> None:
        self.flusher = Flusher()
        self.pairs: list[socket.socket] = []

    def member(self, name: str) -> Member:
        server_end, client_end = socket.socketpair()
        self.pairs += [server_end, client_end]
        outbox = QueuedOutbox(server_end, LIMIT_BYTES, lambda: None, name, self.flusher)
        return Member(name, outbox, client_end)

    def close(self) -> None:
        self.flusher.stop()
        for sock in self.pairs:
            sock.close()


@pytest.fixture
def chat() -> Iterator[Chat]:
    made = Chat()
    yield made
    made.close()


def _count_writes(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """The flusher's sends, per descriptor: the fan-out's writes and a flush's sends."""
    writes: Counter[int] = Counter()
    send_nowait = outboxes.send_nowait

    def counting(fd: int, data: bytes) -> int:
        writes[fd] += 1
        return os.write(fd, data)

    def counting_send(sock: socket.socket, data: bytes) -> int | OSError:
        writes[sock.fileno()] += 1
        return send_nowait(sock, data)

    monkeypatch.setattr(outboxes, "write_fd", counting)
    monkeypatch.setattr(outboxes, "send_nowait", counting_send)
    return writes


def _add(room: Room, *members: Member) -> None:
    """``members`` join ``room`` (the hub's sessions are opaque to the flusher)."""
    for m in members:
        member = cast("Session", m)
        room.members[member] = (member, m.outbox)


def _present(room: Room) -> list[Member]:
    return [cast(Member, m) for m in room.members]


def _remove(room: Room, member: Member, said: bool = True) -> None:
    """``member`` parts ``room``; its snapshot says so unless not ``said``."""
    session = cast("Session", member)
    if said:
        room.remove(session)
    else:
        del room.members[session]
        room.publish()


def _publish_join(room: Room, member: Member, said: bool = True) -> Callable[[], None]:
    """What the hub hands ``admit`` for ``member``'s join (after ``_add``): the
    publish whose snapshot says who came, or (not ``said``) one that does not."""
    return room.add(cast("Session", member)) if said else room.publish


def _say(chat: Chat, room: Room, line: bytes, sender: Member | None, snapshot: Members | None = None) -> None:
    """``line`` to the room (or to an older ``snapshot`` of it, as a thread
    that took the snapshot before a join or part broadcasts after it)."""
    targets = room.targets if snapshot is None else snapshot
    for member in (cast(Member, m) for m, _ in targets):  # first: a step taken during the broadcast comes after
        if member is not sender:
            member.expected.append(line)
    chat.flusher.broadcast(targets, line, sender)


def test_a_rounds_lines_reach_each_steady_member_in_one_send_while_people_come_and_go(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = _count_writes(monkeypatch)
    room = Room("#lobby")
    a, b, c, d, e = (chat.member(n) for n in "abcde")
    _add(room, a, b, c, d, e)
    room.publish()
    joiner = chat.member("f")
    with chat.flusher._round:  # one round: the flusher waits for the lock
        _say(chat, room, b"a: one\n", a)
        _add(room, joiner)
        joiner.outbox.admit(b"welcome f\n", _publish_join(room, joiner))
        joiner.expected.append(b"welcome f\n")
        _say(chat, room, b"* f joined\n", joiner)
        _remove(room, b)
        _say(chat, room, b"* b left\n", None)
        _say(chat, room, b"c: two\n", c)
    for m in (a, b, c, d, e, joiner):
        assert m.read_all() == b"".join(m.expected), m.name
    assert d.expected == [b"a: one\n", b"* f joined\n", b"* b left\n", b"c: two\n"]
    assert joiner.expected == [b"welcome f\n", b"* b left\n", b"c: two\n"]
    # Members of every snapshot who sent nothing: the round's four lines in one send each.
    assert writes[d.outbox.fd] == 1
    assert writes[e.outbox.fd] == 1


def test_lines_of_two_rooms_are_never_joined_across_rooms(chat: Chat) -> None:
    one, two = Room("#one"), Room("#two")
    a, b, c = (chat.member(n) for n in "abc")
    _add(one, a, b)
    _add(two, b, c)
    one.publish()
    two.publish()
    with chat.flusher._round:
        _say(chat, one, b"#one a: x\n", a)
        _say(chat, two, b"#two c: y\n", c)
        _add(one, c)
        one.publish()
        _say(chat, one, b"#one b: z\n", b)
    assert a.read_all() == b"#one b: z\n"
    assert b.read_all() == b"#one a: x\n#two c: y\n"
    assert c.read_all() == b"#one b: z\n"


#: One step of a round: someone joins, leaves, says a line (index into the
#: members present, or -1 for a notice from nobody), or a line goes to an
#: older snapshot of the room (index into the snapshots so far).
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.just(0)),
        st.tuples(st.just("rejoin"), st.integers(0, 20)),
        st.tuples(st.just("leave"), st.integers(0, 20)),
        st.tuples(st.just("say"), st.integers(-1, 20)),
        st.tuples(st.just("stale"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=12,
)


class Script:
    """A room and its members driven by STEPS, with the brute-force model's
    expectations: a line goes to every member present when it was said but
    its sender, in the order said; a joiner's welcome first."""

    def __init__(self, chat: Chat, start: int, said: bool) -> None:
        self.chat = chat
        self.said = said
        self.room = Room("#lobby")
        self.everyone = [chat.member(f"m{i}") for i in range(start)]
        _add(self.room, *self.everyone)
        self.room.publish()
        self.history: list[Members] = [self.room.targets]
        self.count = 0

    def step(self, step: str, pick: int) -> None:
        """One step, as the hub's threads do it (any thread)."""
        chat, room, said = self.chat, self.room, self.said
        n = self.count
        self.count += 1
        present = _present(room)
        if room.targets is not self.history[-1]:
            self.history.append(room.targets)
        away = [m for m in self.everyone if m not in present]
        if step == "join" or (step == "rejoin" and away):
            new = chat.member(f"j{n}") if step == "join" else away[pick % len(away)]
            if step == "join":
                self.everyone.append(new)
            _add(room, new)
            new.outbox.admit(f"welcome {n}\n".encode(), _publish_join(room, new, said))
            new.expected.append(f"welcome {n}\n".encode())
            if said:  # as the hub does: a notice with the snapshot the join made
                _say(chat, room, f"* {new.name} joined\n".encode(), new)
        elif step == "leave" and present:
            gone = present[pick % len(present)]
            _remove(room, gone, said)
            if said:
                _say(chat, room, f"* {gone.name} left\n".encode(), None)
        elif step == "say":
            sender = present[pick % len(present)] if pick >= 0 and present else None
            _say(chat, room, f"line {n}\n".encode(), sender)
        elif step == "stale" and (not said or pick % 4 == 0):  # said: mostly in order
            _say(chat, room, f"stale {n}\n".encode(), None, self.history[pick % len(self.history)])

    def check(self) -> None:
        for m in self.everyone:
            assert m.read_all() == b"".join(m.expected), m.name


@settings(max_examples=60, deadline=None)
@given(steps=STEPS, start=st.integers(1, 4), said=st.booleans())
def test_every_member_gets_exactly_the_lines_of_the_snapshots_it_was_in(
    steps: list[tuple[str, int]], start: int, said: bool
) -> None:
    """Against a brute-force model (:class:`Script`), all in one round.  The
    snapshots say who came and went (``said``: the flusher reads the
    changes from them) or not (it compares the snapshots); someone who left
    may come back."""
    chat = Chat()
    try:
        script = Script(chat, start, said)
        with chat.flusher._round:
            for step, pick in steps:
                script.step(step, pick)
        script.check()
    finally:
        chat.close()


@settings(max_examples=60, deadline=None)
@given(steps=STEPS, during=STEPS, start=st.integers(1, 6), said=st.booleans())
def test_lines_said_while_a_round_is_under_way_cut_in_and_every_member_still_gets_its_lines_once_in_order(
    steps: list[tuple[str, int]], during: list[tuple[str, int]], start: int, said: bool
) -> None:
    """The same model with rounds cut (CUT_IN): fan-outs and flushes yield
    every two members here, and each yield takes the next of ``during``, so
    lines, joins and parts land between a round's chunks and the round
    sends them at once to the members it has served."""
    chat = Chat()
    script = Script(chat, start, said)
    later = list(during)
    real_yield = os.sched_yield

    def yielding() -> None:
        if later:
            script.step(*later.pop(0))
        real_yield()

    try:
        with patch.object(queued, "YIELD_EVERY", 2), patch.object(os, "sched_yield", yielding):
            with chat.flusher._round:
                for step, pick in steps:
                    script.step(step, pick)
            assert chat.flusher.drain(READ_TIMEOUT_S)
            while later:  # what no yield took: said after the round (its yields may take some)
                script.step(*later.pop(0))
            assert chat.flusher.drain(READ_TIMEOUT_S)
            script.check()
    finally:
        chat.close()


def test_a_new_snapshot_reuses_the_pairs_of_the_members_that_stayed(chat: Chat) -> None:
    """Each join and part makes a snapshot; the (member, outbox) pairs in it
    are made once per member, not once per snapshot (under churn that was
    a million tuples a second for the garbage collector)."""
    room = Room("#lobby")
    a, b, c = (chat.member(n) for n in "abc")
    _add(room, a, b)
    room.publish()
    before = room.targets
    _add(room, c)
    room.publish()
    _remove(room, a)
    after = room.targets
    assert [cast(Member, m).name for m, _ in after] == ["b", "c"]
    assert after[0] is before[1]


def _snapshot(room: Room, *members: object) -> Snapshot:
    snapshot = Snapshot(cast(Any, [(m, f"outbox of {m}") for m in members]))
    snapshot.origin = room
    return snapshot


def test_runs_join_one_rooms_snapshots_and_name_who_gets_only_some_lines() -> None:
    """The sans-IO part alone: a round of one room with a join and a part
    between its lines is one mixed run, another room's line is a run of its
    own, and only the joiner, the leaver and the senders are special."""
    lobby, other = Room("#lobby"), Room("#other")
    items: list[runs.Item] = [
        (_snapshot(lobby, "a", "b"), b"a: 1\n", "a"),
        (_snapshot(lobby, "a", "b", "c"), b"* c joined\n", "c"),
        (_snapshot(lobby, "a", "c"), b"* b left\n", None),
        (_snapshot(other, "d"), b"#other d: 2\n", "d"),
    ]
    assert list(runs.split_runs(items)) == [(0, 3, True), (3, 4, False)]
    who = runs.mixed_audience(items[:3], 10)
    assert sorted(str(m) for m, _ in who.union) == ["a", "b", "c"]
    assert who.special == {"a", "b", "c"}
    assert who.lines_of["a"] == [(11, b"* c joined\n"), (12, b"* b left\n")]
    assert who.lines_of["b"] == [(10, b"a: 1\n"), (11, b"* c joined\n")]
    assert who.lines_of["c"] == [(12, b"* b left\n")]


def test_the_snapshots_say_who_came_and_went_and_the_flusher_takes_their_word() -> None:
    """A room's snapshots one version apart carry their join or part: the
    same audience as comparing the snapshots, read without copying them
    (``_changes_found`` is not called); a snapshot missing from the run
    falls back to comparing."""
    room = Room("#lobby")
    members = {n: cast("Session", n) for n in "abcd"}
    pairs = {n: (members[n], cast("Outbox", f"outbox of {n}")) for n in "abcd"}
    for n in "abc":
        room.members[members[n]] = pairs[n]
    room.publish()
    items: list[runs.Item] = [(room.targets, b"a: 1\n", members["a"])]
    room.members[members["d"]] = pairs["d"]
    room.publish((members["d"], pairs["d"]))
    items.append((room.targets, b"* d joined\n", members["d"]))
    del room.members[members["b"]]
    room.publish((members["b"], None))
    items.append((room.targets, b"* b left\n", None))
    plain: list[runs.Item] = [(_snapshot(room, *(m for m, _ in t)), d, x) for t, d, x in items]
    found = runs.mixed_audience(plain, 10)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runs, "_changes_found", None)  # called: a TypeError
        said = runs.mixed_audience(items, 10)
    assert said.special == found.special == {"a", "b", "d"}
    assert said.lines_of == found.lines_of
    assert said.lines_of["d"] == [(12, b"* b left\n")]
    assert said.lines_of["b"] == [(10, b"a: 1\n"), (11, b"* d joined\n")]
    assert sorted(map(str, said.union)) == sorted(map(str, found.union)) == [str(pairs[n]) for n in "abcd"]
    assert runs._changes_said([(items[0][0], 0), (items[2][0], 1)]) is None  # d's join is not in the run


def _eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + READ_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_the_fast_path_is_left_while_anything_stands_in_the_way_and_taken_again_after_a_flush(chat: Chat) -> None:
    """``fast_fd``: the hot loop's one check.  An own line queued, a socket
    that took only part of a block and a close each turn it off at once; a
    flush that leaves nothing behind turns it back on; a closed outbox stays off."""
    alice, bob = chat.member("alice"), chat.member("bob")
    room = Room("#fast")
    _add(room, alice, bob)
    room.publish()
    box = bob.outbox
    assert box.fast_fd == box.write_fd >= 0
    with chat.flusher._round:  # no round can flush bob meanwhile
        box.send(b"own line\n")
        assert box.fast_fd == -1
        _say(chat, room, b"alice: after it\n", alice)
    bob.expected.insert(0, b"own line\n")
    assert bob.read_all() == b"".join(bob.expected)
    assert _eventually(lambda: box.fast_fd == box.write_fd)

    # bob stops reading: a block the socket takes only part of leaves a backlog
    bob.client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = b"alice: " + b"x" * 60_000 + b"\n"
    bob.expected.clear()
    for _ in range(20):
        _say(chat, room, big, alice)
        if box.fast_fd == -1:
            break
    assert box.fast_fd == -1 and box._backlog
    assert bob.read_all() == b"".join(bob.expected)  # reading makes it writable: the backlog goes out
    assert _eventually(lambda: box.fast_fd == box.write_fd)

    box.close()
    assert box.fast_fd == -1
    time.sleep(0.05)
    assert box.fast_fd == -1


def test_a_big_rooms_fan_out_yields_between_chunks_and_still_reaches_everyone_once_in_order(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past YIELD_EVERY members a fan-out lets waiting threads run between
    chunks (``os.sched_yield``); every member still gets every line once, in
    order, and a small room never yields."""
    yields: list[int] = []
    real_yield = os.sched_yield

    def counting() -> None:
        yields.append(1)
        real_yield()

    monkeypatch.setattr(os, "sched_yield", counting)
    room = Room("#big")
    members = [chat.member(f"m{i}") for i in range(2 * queued.YIELD_EVERY + 5)]
    _add(room, *members)
    room.publish()
    for n in range(3):
        _say(chat, room, f"m0: line {n}\n".encode(), members[0])
    lines = [b"m0: line 0\n", b"m0: line 1\n", b"m0: line 2\n"]
    for m in members[1:]:  # what each expects, then nothing more (no 50 ms wait for each of 261)
        m.client.settimeout(READ_TIMEOUT_S)
        got = b""
        while len(got) < len(b"".join(lines)):
            got += m.client.recv(65536)
        assert got == b"".join(lines), m.name
    chat.flusher.drain(READ_TIMEOUT_S)
    for m in members:
        m.client.setblocking(False)
        with pytest.raises(BlockingIOError):
            m.client.recv(1)  # the sender gets none of its own lines, nobody a line twice
        m.client.setblocking(True)
        m.expected.clear()
    assert 2 <= len(yields) <= 6  # two between a fan-out's three chunks (one round, or one per line)

    small = Room("#small")
    _add(small, *members[:3])
    small.publish()
    before = len(yields)
    _say(chat, small, b"m1: hi\n", members[1])
    assert members[2].read_all() == b"m1: hi\n"
    assert len(yields) == before


def test_a_line_said_during_a_big_fan_out_goes_at_once_to_the_members_already_served(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line said while a fan-out serves a big room does not wait for the
    whole fan-out: the members the fan-out has served get it in a send of
    its own, the others get both lines in one send, and everyone gets both
    lines once, in order."""
    writes = _count_writes(monkeypatch)
    room = Room("#big")
    members = [chat.member(f"m{i}") for i in range(2 * queued.YIELD_EVERY + 5)]
    _add(room, *members)
    room.publish()
    real_yield = os.sched_yield
    said: list[int] = []

    def saying() -> None:  # the first chunk boundary: another reader thread says a line
        if not said:
            said.append(1)
            _say(chat, room, b"m1: two\n", members[1])
        real_yield()

    monkeypatch.setattr(os, "sched_yield", saying)
    chat.flusher.broadcast(room.targets, b"m0: one\n", members[0])
    assert chat.flusher.drain(READ_TIMEOUT_S)
    served = members[1 : queued.YIELD_EVERY]  # the first chunk, but the sender of "one"
    for m in members[1:]:
        m.client.settimeout(READ_TIMEOUT_S)
        want = b"m0: one\n" if m is members[1] else b"m0: one\nm1: two\n"
        got = b""
        while len(got) < len(want):
            got += m.client.recv(65536)
        assert got == want, m.name
    assert members[0].read_all() == b"m1: two\n"
    assert all(writes[m.outbox.fd] == 2 for m in served[1:]), "served first: each line in a send of its own"
    assert all(writes[m.outbox.fd] == 1 for m in members[queued.YIELD_EVERY :]), "the rest: both in one send"
