"""The ``ws`` wire adapter: its decoder in memory against the server's own
framing, its registration against the real server, and the swarm measuring
the embedded server over WebSocket with every integrity check."""

from __future__ import annotations

import time
from typing import Any

import pytest
from wsproto.frame_protocol import FrameDecoder, Opcode

from bench import wire
from bench.swarm import SwarmConfig, run_swarm
from bench.targets import EmbeddedWsTarget, TargetError, make_target, target_protocol
from bench.wire.client import RegistrationRefused, WireClient
from bench.wire.ws_adapter import WsDecoder, WsProtocolError, mask_text
from server import protocol, websocket
from server.app import ChatServer
from server.config import ServerConfig
from server.wsframes import close_frame, frame_lines

OPEN = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def test_decoder_turns_server_frames_into_chat_lines_in_any_split() -> None:
    lines = [b"a: hi", b"b: " + b"x" * 300, b"c: " + b"y" * 70_000, b"*** d joined the chat"]
    wire_bytes = OPEN + frame_lines(b"".join(line + b"\n" for line in lines))
    for step in (1, 7, 1000, len(wire_bytes)):
        decoder = WsDecoder()
        got: list[bytes] = []
        for i in range(0, len(wire_bytes), step):
            got.extend(decoder.feed(wire_bytes[i : i + step]))
        assert got == lines, step
    assert WsDecoder().feed_block(wire_bytes) == b"".join(line + b"\n" for line in lines)


def test_decoder_reports_a_refused_handshake_a_close_and_broken_frames() -> None:
    refused = WsDecoder().feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert protocol.parse_server_line(refused[0].decode()) == protocol.Disconnected(
        "websocket handshake refused: HTTP/1.1 404 Not Found"
    )
    closed = WsDecoder().feed(OPEN + close_frame(1008, "excess flood"))
    assert protocol.parse_server_line(closed[0].decode()) == protocol.Disconnected("websocket close 1008 excess flood")
    fragmented = WsDecoder().feed(OPEN + b"\x01\x02ab" + b"\x80\x02cd")
    assert fragmented == [b"abcd"]
    with pytest.raises(WsProtocolError, match="masked"):
        WsDecoder().feed(OPEN + mask_text(b"hello\n"))
    with pytest.raises(WsProtocolError, match="limit"):
        WsDecoder(limit=100).feed(OPEN + frame_lines(b"z" * 200))


def test_client_frames_are_masked_text_frames() -> None:
    frame = mask_text(b"/say hello\n")
    assert frame[0] == 0x81 and frame[1] & 0x80  # FIN + text, MASK bit set
    decoder = FrameDecoder(client=False)
    decoder.receive_bytes(frame)
    parsed = decoder.process_buffer()
    assert parsed is not None and parsed.opcode is Opcode.TEXT and parsed.payload == b"/say hello"


def test_registration_over_websocket_against_the_server() -> None:
    with ChatServer(ServerConfig(port=0, ws_port=0)) as server:
        assert server.ws_address is not None
        ann = WireClient.connect(server.ws_address, "ann", protocol="ws", timeout=10)
        bob = WireClient.connect(server.ws_address, "bob", protocol="ws", timeout=10)
        try:
            ann.sock.sendall(wire.get("ws").encode_chat("hello bob"))
            assert bob.next_line(deadline=time.monotonic() + 10) == b"ann: hello bob"
            with pytest.raises(RegistrationRefused, match="refused"):
                WireClient.connect(server.ws_address, "ANN", protocol="ws", timeout=10)
        finally:
            ann.close()
            bob.close()


def test_embedded_target_speaks_ws_when_asked() -> None:
    assert target_protocol("embedded", "ws") == "ws"
    assert isinstance(make_target("embedded", protocol="ws"), EmbeddedWsTarget)
    assert isinstance(make_target("embedded-ws"), EmbeddedWsTarget)  # a name of its own for `make compare`
    assert target_protocol("embedded-ws") == "ws"
    with pytest.raises(TargetError, match="speaks irc"):
        target_protocol("ngircd", "ws")


@pytest.mark.timeout(90)
def test_swarm_measures_the_room_over_websocket_with_every_check() -> None:
    kw: dict[str, Any] = {"progress": False, "workers": 2, "sample_interval_s": 0.2}
    doc = run_swarm(SwarmConfig(target="embedded", protocol="ws", clients=40, rate=200, duration_s=2, **kw))
    d = doc["deliveries"]
    assert doc["completed"] is True and doc["parameters"]["protocol"] == "ws"
    assert d["delivered"] == d["expected"] > 0
    assert doc["integrity"] == {"lost": 0, "duplicated": 0, "reordered": 0, "corrupted": 0, "faults": 0, "pairs": []}
    assert doc["connections"]["failed"] == 0 and doc["connections"]["registered"] == 40
    assert doc["latency_us"]["count"] == d["delivered"]


def test_shootout_broadcasts_become_nameless_deliveries() -> None:
    adapter = wire.get("shootout")
    block = (
        b'{"type": "broadcast", "payload": "~p3 1 2 x"}\n'
        b'{"type":"broadcastResult","payload":"~p3 1 2 x","listenCount":5}\n'
        b'{"type":"broadcast","payload":"~p3 2 3 y"}\n'
        b'{"type":"broadcast","payload":"unknown"}\n'
        b"not json\n"
    )
    got = adapter.deliveries(block)
    assert got.pairs == [(None, b"~p3 1 2 x"), (None, b"~p3 2 3 y"), (None, b"unknown")]
    assert not got.lines and not got.reply
    frame = adapter.encode_chat("~p3 1 2 x")
    decoder = FrameDecoder(client=False)
    decoder.receive_bytes(frame)
    parsed = decoder.process_buffer()
    assert parsed is not None and parsed.payload == b'{"type": "broadcast", "payload": "~p3 1 2 x"}'


def test_shootout_registration_is_an_echo_round_trip_after_the_upgrade() -> None:
    adapter = wire.get("shootout")
    registration = adapter.registration("u1")
    assert registration.connected().startswith(b"GET /ws HTTP/1.1\r\n")
    decoder = adapter.decoder()
    (opened,) = decoder.feed(OPEN)
    step = registration.line(opened)
    assert step.send and not step.done
    assert registration.line(b'{"type": "echo", "payload": "register u1"}').done
    refused = registration.line(WsDecoder().feed(b"HTTP/1.1 404 Not Found\r\n\r\n")[0])
    assert refused.error is not None and "404" in refused.error


def test_ws_url_targets() -> None:
    assert target_protocol("ws://127.0.0.1:9/ws") == "shootout"
    assert target_protocol("ws://127.0.0.1:9/ws", "ws") == "ws"
    with pytest.raises(TargetError, match="ws:// target speaks"):
        target_protocol("ws://127.0.0.1:9/ws", "irc")
    with pytest.raises(TargetError, match="path /ws only"):
        make_target("ws://127.0.0.1:9/other")
    with pytest.raises(TargetError, match="loopback"):
        make_target("ws://192.0.2.1:9/ws")


@pytest.mark.timeout(90)
def test_swarm_measures_the_shootout_protocol_end_to_end() -> None:
    kw: dict[str, Any] = {"progress": False, "workers": 1, "sample_interval_s": 0.2}
    doc = run_swarm(SwarmConfig(target="embedded", protocol="shootout", clients=20, rate=100, duration_s=1, **kw))
    d = doc["deliveries"]
    assert d["delivered"] == d["expected"] > 0
    assert doc["integrity"] == {"lost": 0, "duplicated": 0, "reordered": 0, "corrupted": 0, "faults": 0, "pairs": []}
    assert doc["connections"]["failed"] == 0


def test_the_adapter_answers_server_pings_and_the_server_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(websocket, "PING_IDLE_SECONDS", 0.2)
    monkeypatch.setattr(websocket, "PING_TIMEOUT_SECONDS", 0.5)
    adapter = wire.get("ws")
    with ChatServer(ServerConfig(port=0, ws_port=0)) as server:
        assert server.ws_address is not None
        ann = WireClient.connect(server.ws_address, "ann", protocol="ws", timeout=10)
        try:
            answered = 0
            deadline = time.monotonic() + 4  # the reaper pings about once a second
            while time.monotonic() < deadline:
                incoming = adapter.deliveries(ann.next_line(deadline=deadline + 5) + b"\n")
                assert incoming.lines == b"" and incoming.reply  # only pings come: a masked pong each
                ann.sock.sendall(incoming.reply)
                answered += 1
            assert answered >= 2
            assert server.connection_count == 1  # never dropped for "ping timeout"
        finally:
            ann.close()
