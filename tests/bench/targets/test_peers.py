"""The swarm over IRC, end to end: a tiny in-test IRC server (``HOST:PORT
--protocol irc``, with PINGs to answer), miniircd, and ngircd.  The peer
tests skip, saying why, when the peer is not installed (``make peers``)."""

from __future__ import annotations

import collections
import selectors
import socket
import threading
from typing import Any

import psutil
import pytest

from bench.swarm import SwarmConfig, SwarmError, run_swarm
from bench.targets import TargetError, find_ngircd, make_target, miniircd_installed
from bench.wire import irc

SMALL = {"clients": 6, "rate": 150.0, "duration_s": 0.8, "warmup_s": 0.2, "progress": False, "drain_timeout_s": 15}

needs_miniircd = pytest.mark.skipif(
    not miniircd_installed(), reason="miniircd is not installed in this Python (run `make peers`: pip install miniircd)"
)
needs_ngircd = pytest.mark.skipif(
    find_ngircd() is None, reason="ngircd is not installed (run `make peers`: apt-get install ngircd)"
)


def _assert_complete(doc: dict[str, Any]) -> None:
    d = doc["deliveries"]
    assert doc["connections"]["failed"] == 0, doc["connections"]["failures"]
    assert d["delivered_ratio"] == 1.0, (d, doc["notes"])
    assert doc["integrity"]["faults"] == 0, doc["integrity"]
    assert doc["messages"]["sent"] == doc["messages"]["scheduled"]
    assert doc["parameters"]["protocol"] == "irc"


def _gone(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- a minimal IRC server, to test the adapter against a server we control ---------------------


class FakeIrcd:
    """Registers clients (with a PING before the welcome), relays channel
    PRIVMSGs to the other members, and sends every member a PING right after
    its end of NAMES; counts the PONGs by token."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.clients: dict[socket.socket, dict[str, Any]] = {}
        self.members: list[socket.socket] = []
        self.pongs: collections.Counter[str] = collections.Counter()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeIrcd:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)
        for sock in list(self.clients):
            sock.close()
        self.listener.close()
        self.sel.close()

    def _send(self, sock: socket.socket, data: bytes) -> None:
        try:
            sock.sendall(data)
        except OSError:
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        if sock in self.clients:
            self.sel.unregister(sock)
            del self.clients[sock]
            if sock in self.members:
                self.members.remove(sock)
            sock.close()

    def _run(self) -> None:
        while not self.stopping.is_set():
            for key, _ in self.sel.select(0.05):
                if key.data is None:
                    try:
                        sock, _ = self.listener.accept()
                    except BlockingIOError:
                        continue
                    sock.settimeout(5)
                    self.clients[sock] = {"split": irc.LineSplitter(), "nick": ""}
                    self.sel.register(sock, selectors.EVENT_READ, "client")
                    continue
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._drop(sock)
                    continue
                for line in self.clients[sock]["split"].feed(data):
                    self._line(sock, irc.parse(line))

    def _line(self, sock: socket.socket, msg: irc.Message) -> None:
        state = self.clients.get(sock)
        if state is None:
            return
        if msg.command == "NICK":
            state["nick"] = msg.params[0]
        elif msg.command == "USER":
            self._send(sock, b"PING :reg\r\n:fake 001 %s :Welcome\r\n" % state["nick"].encode())
        elif msg.command == "PONG":
            self.pongs[msg.param(-1)] += 1
        elif msg.command == "JOIN":
            self.members.append(sock)
            nick = state["nick"].encode()
            self._send(sock, b":%s!~u@127.0.0.1 JOIN :%s\r\n" % (nick, msg.params[0].encode()))
            self._send(sock, b":fake 353 %s = #chatbench :%s\r\n:fake 366 %s #chatbench :End\r\n" % (nick, nick, nick))
            self._send(sock, b"PING :traffic\r\n")
        elif msg.command == "PRIVMSG":
            line = b":%s!~u@127.0.0.1 " % state["nick"].encode() + irc.encode("PRIVMSG", *msg.params)
            for other in list(self.members):
                if other is not sock:
                    self._send(other, line)


def test_irc_adapter_against_a_server_that_pings_host_port_target() -> None:
    with FakeIrcd() as server:
        doc = run_swarm(SwarmConfig(target=f"127.0.0.1:{server.port}", protocol="irc", **SMALL))  # type: ignore[arg-type]
    _assert_complete(doc)
    assert doc["target"]["protocol"] == "irc"
    # every client answered the PING before the welcome and the one during traffic,
    # and the PONGs were not counted as messages (sent == scheduled above)
    assert server.pongs == {"reg": SMALL["clients"], "traffic": SMALL["clients"]}


def test_protocol_choice_is_checked() -> None:
    with pytest.raises(TargetError, match="speaks irc"):
        make_target("miniircd", protocol="chat")
    with pytest.raises(ValueError, match="too big for the irc protocol"):
        SwarmConfig(target="127.0.0.1:6667", protocol="irc", payload_bytes=400)
    SwarmConfig(target="127.0.0.1:6667", protocol="chat", payload_bytes=400)  # fits our 4 KiB lines


# -- the peers ----------------------------------------------------------------------------


@needs_miniircd
def test_miniircd_run_delivers_everything() -> None:
    doc = run_swarm(SwarmConfig(target="miniircd", **SMALL))  # type: ignore[arg-type]
    _assert_complete(doc)
    assert doc["target"]["kind"] == "miniircd"
    assert doc["target"]["flood_control"].startswith("none")
    assert doc["resources"]["server"] is not None  # the server process was sampled
    assert _gone(doc["target"]["pid"])


@needs_miniircd
def test_miniircd_connection_limit_is_refused_up_front() -> None:
    with pytest.raises(SwarmError, match="cannot hold 1100 connections"):
        run_swarm(SwarmConfig(target="miniircd", clients=1100, progress=False))


@needs_ngircd
def test_ngircd_run_delivers_everything_with_the_flood_penalty_off() -> None:
    # One sender at 60 msg/s: with ngircd's penalty on it would manage ~1-3/s
    # and most deliveries would miss the drain; with MaxPenaltyTime = 0 all arrive promptly.
    doc = run_swarm(SwarmConfig(target="ngircd", senders=1, **{**SMALL, "rate": 60.0}))  # type: ignore[arg-type]
    _assert_complete(doc)
    target = doc["target"]
    assert target["kind"] == "ngircd"
    assert target["flood_control"].startswith("MaxPenaltyTime = 0"), target["flood_control"]
    assert "MaxPenaltyTime = 0" in target["config"]
    assert doc["latency_us"]["p99_us"] < 1_000_000
    assert _gone(target["pid"])
