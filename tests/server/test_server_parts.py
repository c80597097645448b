"""The server's parts in memory: the fan-out factory, the hub's ownership of
names, the command table and the open-file limit."""

from __future__ import annotations

import resource
import typing
from collections.abc import Callable
from typing import Any

import pytest

from server import app, fanout, handlers, limits
from server import protocol as p
from server.config import FANOUT_STRATEGIES
from server.hub import Hub, NameTaken

# -- fan-out factory -------------------------------------------------------------


def test_every_configurable_strategy_has_a_factory() -> None:
    assert set(fanout.STRATEGIES) == set(FANOUT_STRATEGIES)


@pytest.mark.parametrize(
    ("strategy", "cls", "hands_over"),
    [
        ("queued", fanout.QueuedFanout, True),
        ("threads", fanout.ThreadsFanout, False),
        ("direct", fanout.DirectFanout, False),
    ],
)
def test_make_fanout_builds_the_named_strategy(strategy: str, cls: type, hands_over: bool) -> None:
    built = fanout.make_fanout(strategy, 1 << 20)
    try:
        assert isinstance(built, cls)
        assert (built.fan_out is not None) == hands_over
        assert built.drain(1.0)
    finally:
        built.stop()


def test_make_fanout_refuses_an_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown fan-out strategy 'bogus'"):
        fanout.make_fanout("bogus", 1 << 20)


# -- hub: names are the hub's ---------------------------------------------------


class _Outbox:
    failure: OSError | None = None

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.lines.append(data)

    def admit(self, first_line: bytes, publish: Callable[[], None]) -> None:
        publish()
        self.send(first_line)


class _Member:
    def __init__(self) -> None:
        self.outbox = _Outbox()
        self.name: str | None = None


def _join(hub: Hub, name: str) -> Any:
    member = _Member()
    hub.join(member, name)  # type: ignore[arg-type]
    return member


def test_hub_join_and_rename_leave_the_session_alone_and_keep_the_names() -> None:
    hub = Hub()
    alice, bob = _join(hub, "alice"), _join(hub, "Bob")
    assert alice.name is None and bob.name is None  # the session names itself
    assert hub.names() == ["alice", "Bob"]
    assert hub.name_of(bob) == "Bob"
    assert bob.outbox.lines[0] == p.encode_welcome("Bob", ["alice", "Bob"], 2)
    with pytest.raises(NameTaken):
        hub.join(_Member(), "BOB")  # type: ignore[arg-type]
    assert hub.rename(bob, "carol") == "Bob"
    assert hub.find("carol") is bob and hub.find("bob") is None
    assert alice.outbox.lines[-1] == p.encode_renamed("Bob", "carol")
    assert hub.leave(bob, "quit") and not hub.leave(bob, "quit")
    assert hub.names() == ["alice"] and hub.name_of(bob) is None
    assert alice.outbox.lines[-1] == p.encode_left("carol", "quit")
    assert not hub.leave(_Member(), "never joined")  # type: ignore[arg-type]


# -- command table ---------------------------------------------------------------


def test_the_command_table_has_a_row_per_slash_command_and_none_for_chat() -> None:
    assert set(handlers.COMMANDS) == set(typing.get_args(p.SlashCommand))
    assert {p.Who, p.Help, p.PrivateMessage, p.Me, p.Nick, p.Quit, p.Join, p.Part, p.Rooms} <= set(handlers.COMMANDS)
    assert p.Say not in handlers.COMMANDS and p.SayTo not in handlers.COMMANDS


# -- open-file limit ---------------------------------------------------------------

INF = resource.RLIM_INFINITY


@pytest.mark.parametrize(
    ("soft", "hard", "expected", "set_to"),
    [
        (1024, 4096, 4096, (4096, 4096)),
        (4096, 4096, 4096, None),
        (1024, INF, limits.UNLIMITED_NOFILE_TARGET, (limits.UNLIMITED_NOFILE_TARGET, INF)),
        (4 << 20, INF, 4 << 20, None),  # never lowered
        (INF, INF, INF, None),  # already unlimited
    ],
)
def test_raise_open_file_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, expected: int, set_to: tuple[int, int] | None
) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda which: (soft, hard))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits_: calls.append(limits_))
    assert limits.raise_open_file_limit() == expected
    assert calls == ([set_to] if set_to else [])


def test_raise_open_file_limit_keeps_the_soft_limit_when_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(which: int, limits_: tuple[int, int]) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert limits.raise_open_file_limit() == 1024


def test_the_open_file_limit_is_still_reachable_from_the_app() -> None:
    assert app.raise_open_file_limit is limits.raise_open_file_limit
