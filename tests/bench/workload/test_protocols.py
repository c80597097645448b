"""Rooms on every protocol: each adapter joins a client's rooms, sends to one
and names every delivery by the room it arrived in (unit tests of the
sans-IO parts); then a room-aware burst through the swarm against every
target -- our server over TCP and WebSocket, a cluster, ngircd, miniircd,
mosquitto, redis-server, nats-server, each started on a free loopback port --
delivered once, in order, to exactly the members of each room.  A target's
test skips, naming its package, when it is not installed (``make peers``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench import wire
from bench.swarm import SwarmConfig, run_swarm
from bench.targets import find_ngircd, miniircd_installed
from bench.targets.packages import find_binary
from bench.wire import irc, irc_adapter, mqtt_adapter, nats_adapter, redis_adapter
from bench.wire.broker import READY
from bench.wire.chat import ChatRegistration
from bench.workload import Workload
from server import protocol

# -- registration and framing, sans-IO ----------------------------------------------------


def test_our_chat_joins_the_rooms_parts_the_lobby_and_waits_for_each() -> None:
    reg = ChatRegistration("cb-1", ("r1", "r2"))
    assert reg.line(protocol.encode_prompt().rstrip(b"\n")).send == b"cb-1\n"
    step = reg.line(protocol.encode_welcome("cb-1", ["cb-1"]).rstrip(b"\n"))
    assert step.send == b"/join #r1\n/join #r2\n/part #lobby\n" and not step.done
    assert not reg.line(protocol.encode_talking("#r1", ["cb-1"]).rstrip(b"\n")).done
    assert not reg.line(protocol.encode_room_joined("cb-2", "#r1").rstrip(b"\n")).done  # someone else's
    assert not reg.line(protocol.encode_room_left("cb-2", "#lobby", "parted").rstrip(b"\n")).done
    assert not reg.line(protocol.encode_talking("#r2", ["cb-1"]).rstrip(b"\n")).done
    assert reg.line(protocol.encode_room_left("cb-1", "#lobby", "parted").rstrip(b"\n")).done
    refused = ChatRegistration("cb-1", ("r1",))
    refused.line(protocol.encode_prompt().rstrip(b"\n"))
    refused.line(protocol.encode_welcome("cb-1", []).rstrip(b"\n"))
    assert refused.line(protocol.encode_error("Cannot join #r1: limit").rstrip(b"\n")).error == (
        "room refused: Cannot join #r1: limit"
    )
    lobby = ChatRegistration("cb-1", ("", "r1"))
    lobby.line(protocol.encode_prompt().rstrip(b"\n"))
    assert lobby.line(protocol.encode_welcome("cb-1", []).rstrip(b"\n")).send == b"/join #r1\n"
    plain = ChatRegistration("cb-1")
    plain.line(protocol.encode_prompt().rstrip(b"\n"))
    assert plain.line(protocol.encode_welcome("cb-1", []).rstrip(b"\n")) == wire.Step(done=True)
    chat = wire.get("chat", rooms=True)
    assert chat.encode_message("cb-1", "hi", "r7") == b"/say #r7 hi\n" and chat.encode_message("x", "hi") == b"hi\n"


def test_irc_joins_every_channel_in_lines_of_at_most_512_bytes_and_waits_for_each_names() -> None:
    channels = [f"#room-with-a-long-name-{i}" for i in range(40)]
    lines = irc_adapter.join_lines(channels).split(b"\r\n")[:-1]
    assert len(lines) > 1 and all(len(line) + 2 <= irc.MAX_LINE_BYTES for line in lines)
    assert [c for line in lines for c in line[5:].decode().split(",")] == channels
    reg = irc_adapter.IrcRegistration("cb-1", ("#r1", "#r2"))
    assert reg.line(b":srv 001 cb-1 :Welcome").send == b"JOIN #r1,#r2\r\n"
    assert not reg.line(b":srv 366 cb-1 #R1 :End of NAMES list").done
    assert reg.line(b":srv 366 cb-1 #r2 :End of NAMES list").done
    adapter = wire.get("irc", rooms=True)
    assert adapter.encode_message("cb-1", "hi", "r3") == b"PRIVMSG #r3 :hi\r\n"
    got = adapter.deliveries(b":a!u@h PRIVMSG #r3 :one\r\n:b!u@h PRIVMSG #R4 :two\r\n")
    assert got.pairs == [(b"#r3 a", b"one"), (b"#r4 b", b"two")]
    mixed = adapter.deliveries(b"PING :x\r\n:a!u@h PRIVMSG #r3 :one\r\n")
    assert mixed.pairs == [(b"#r3 a", b"one")] and mixed.reply == b"PONG x\r\n"
    one = wire.get("irc")  # one room: the nick alone, other channels ignored
    assert one.deliveries(b":a!u@h PRIVMSG #chatbench :one\r\n:b!u@h PRIVMSG #r4 :two\r\n").pairs == [(b"a", b"one")]


def test_mqtt_subscribes_to_every_rooms_topic_and_names_a_delivery_by_its_topic() -> None:
    adapter = wire.get("mqtt", rooms=True)
    reg = adapter.registration("cb-1", rooms=("r1", "r2"))
    reg.connected()
    sub = reg.line(mqtt_adapter.CONNECTED).send
    assert b"chatbench/r1" in sub and b"chatbench/r2" in sub
    ok = mqtt_adapter.packet(mqtt_adapter.SUBACK << 4, b"\x00\x01\x00\x00\x00")
    dec = mqtt_adapter.MqttDecoder()
    assert dec.feed(ok) == [READY]
    refused = mqtt_adapter.packet(mqtt_adapter.SUBACK << 4, b"\x00\x01\x00\x00\x87")
    assert dec.feed(refused)[0].startswith(b"* error SUBACK reason 0x87")
    decoder = adapter.decoder()
    out = decoder.feed(
        adapter.encode_message("a", "one", "r1") + adapter.encode_message("b", "two") + wire.get("mqtt").publish(b"x")
    )
    assert out == [b"#r1 a: one", b"b: two", b"x"]
    other = mqtt_adapter.MqttAdapter("elsewhere").publish(b"y")
    assert decoder.feed(other) == [b"#?elsewhere y"]  # a topic not of this run: no stream's name


def test_redis_and_nats_subscribe_to_every_room_and_name_by_channel() -> None:
    redis = wire.get("redis", rooms=True)
    reg = redis.registration("cb-1", rooms=("r1", "r2"))
    assert reg.connected() == redis_adapter.command(b"SUBSCRIBE", b"chatbench.r1", b"chatbench.r2")
    assert not reg.line(READY).done and reg.line(READY).done  # one confirmation per channel
    decoder = redis.decoder()
    push = b"*3\r\n$7\r\nmessage\r\n$12\r\nchatbench.r1\r\n$6\r\na: one\r\n"
    assert decoder.feed(push) == [b"#r1 a: one"]
    assert redis.publish(b"p", "r9") == redis_adapter.command(b"PUBLISH", b"chatbench.r9", b"p")
    nats = wire.get("nats", rooms=True)
    hello = nats.registration("cb-1", rooms=("r1", "r2")).connected()
    assert b"SUB chatbench.r1 1\r\nSUB chatbench.r2 2\r\nPING\r\n" in hello
    dec = nats.decoder()
    assert dec.feed(b"MSG chatbench.r2 2 6\r\na: one\r\nMSG chatbench 1 6\r\nb: two\r\n") == [b"#r2 a: one", b"b: two"]
    assert nats.encode_message("a", "one", "r2") == b"PUB chatbench.r2 6\r\na: one\r\n"
    assert nats_adapter.NatsDecoder().feed(b"MSG chatbench.r2 2 6\r\na: one\r\n") == [b"a: one"]  # one room


def test_the_shootout_protocol_refuses_rooms() -> None:
    with pytest.raises(ValueError, match="no rooms"):
        wire.get("shootout", rooms=True)


# -- a room-aware burst on every target ---------------------------------------------------------

#: 14 clients in 5 rooms, 2 each, 2 senders per room: rooms of different sizes
#: that overlap, so a line in the wrong room would be seen.
WORKLOAD = Workload(rooms=5, per_client=2, senders_per_room=2, seed=3)
BURST: dict[str, Any] = {
    "clients": 14,
    "rate": 0.0,
    "messages": 600,
    "progress": False,
    "drain_timeout_s": 20.0,
    "workers": 1,
    "workload": WORKLOAD,
}


def _installed(binary: str) -> Callable[[], bool]:
    return lambda: find_binary(binary) is not None


#: target -> (is it installed, what to install)
TARGETS: dict[str, tuple[Callable[[], bool], str]] = {
    "embedded": (lambda: True, ""),
    "embedded-ws": (lambda: True, ""),
    "cluster:2": (_installed("redis-server"), "apt-get install redis-server"),
    "ngircd": (lambda: find_ngircd() is not None, "apt-get install ngircd"),
    "miniircd": (miniircd_installed, "pip install miniircd"),
    "mosquitto": (_installed("mosquitto"), "apt-get install mosquitto"),
    "redis": (_installed("redis-server"), "apt-get install redis-server"),
    "nats": (_installed("nats-server"), "apt-get install nats-server"),
}


def _owed(config: SwarmConfig, sent: dict[int, int], first: int) -> tuple[int, dict[str, int]]:
    """Brute force from the layout: every stream's messages times its room's members but its sender."""
    total, by_room = 0, {}
    for slot, (sender, r) in enumerate(config.layout.streams):
        name, members = config.layout.rooms[r]
        owed = sent.get(first + slot, 0) * sum(1 for c in members if c != sender)
        total += owed
        by_room[name] = by_room.get(name, 0) + owed
    return total, by_room


@pytest.mark.timeout(180)
@pytest.mark.parametrize("target", list(TARGETS))
def test_a_room_aware_burst_reaches_exactly_each_rooms_members_once_in_order(target: str) -> None:
    installed, how = TARGETS[target]
    if not installed():
        pytest.skip(f"{target} is not installed (`make peers`: {how})")
    config = SwarmConfig(target=target, **BURST)
    doc = run_swarm(config)
    d, i = doc["deliveries"], doc["integrity"]
    assert doc["connections"]["failed"] == 0, doc["connections"]["failures"]
    assert doc["messages"]["sent"] == doc["messages"]["scheduled"] == 600
    assert i["faults"] == 0 and i.get("strays") == 0 and d["strays"] == 0, i
    first = 14 + (config.sender_count if config.dedicated_senders else 0)
    assert len(config.layout.streams) == 10
    # Exactly what a count over the rooms' members owes, all of it delivered.
    sent = {first + slot: 60 for slot in range(10)}  # a burst of 600 over 10 streams, round robin
    total, _ = _owed(config, sent, first)
    assert d["expected"] == d["expected_all"] == total and d["delivered"] == total, (d, doc["notes"])
    assert sum(s["delivered"] for s in doc["labels"]) == total
    assert {s["values"]["room_size"] for s in doc["labels"]} <= {"1-9", "10-99"}
    assert doc["rooms"]["rooms"] == 5 and doc["rooms"]["memberships"] == 28
    assert doc["parameters"]["workload"]["rooms"] == 5


@pytest.mark.timeout(180)
def test_a_scenario_runs_end_to_end_into_its_document_and_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["run", "--scenario", "chat-app", "--rooms", "12", "--clients", "40", "--rate", "300"]
    argv += ["--duration", "1", "--warmup", "0.2", "--out", str(out), "--quiet"]
    done = subprocess.run([sys.executable, "-m", "bench", *argv], capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = (out / "queued").glob("run-*.json")
    doc = json.loads(path.read_text())
    w = doc["parameters"]["workload"]
    assert (w["scenario"], w["seed"], w["rooms"], w["rooms_per_client"], w["arrivals"]) == (
        "chat-app",
        1,
        12,
        3,
        "poisson",
    )
    assert doc["rooms"]["rooms"] == 12 and doc["rooms"]["memberships"] == 120
    assert sum(r["rooms"] for r in doc["rooms"]["sizes"]) == 12
    assert doc["deliveries"]["delivered_ratio"] == 1.0 and doc["integrity"]["faults"] == 0
    assert all("room_size" in s["values"] for s in doc["labels"])
    report = (out / "report.md").read_text()
    assert "## Rooms" in report and "scenario *chat-app*" in report and "| room size |" in report
    assert all((out / f"{name}.png").is_file() for name in ("room-latency", "room-throughput", "room-sizes"))
