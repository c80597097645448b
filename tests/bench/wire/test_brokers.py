"""The broker adapters' codecs in memory (MQTT 5, Redis RESP2, NATS core):
byte streams a broker sends, split at every byte, give the same lines; bad
frames give a clear :class:`FrameError`; registrations step through the
broker's answers; a sender's payload is the chat line the recorder reads."""

from __future__ import annotations

import time

import pytest

from bench import wire
from bench.measure import probe
from bench.wire.broker import ERROR, MAX_FRAME_BYTES, PING, PONG, READY, FrameError
from bench.wire.mqtt_adapter import CONNECTED, MqttDecoder, varint
from bench.wire.nats_adapter import NatsDecoder
from bench.wire.redis_adapter import RedisDecoder, command

PAYLOAD = b"cbx-3: " + probe.encode_probe(3, 7, time.monotonic_ns(), "abc").encode()


def _mqtt_publish(payload: bytes, topic: bytes = b"chatbench", props: bytes = b"\x00") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + props + payload
    return b"\x30" + varint(len(body)) + body


MQTT_STREAM = (
    b"\x20\x03\x00\x00\x00"  # CONNACK success, no properties
    + b"\x90\x04\x00\x01\x00\x00"  # SUBACK packet 1, granted QoS 0
    + _mqtt_publish(PAYLOAD)
    + b"\xd0\x00"  # PINGRESP
    + _mqtt_publish(PAYLOAD, props=b"\x02\x01\x00")  # a payload-format property
    + b"\xe0\x01\x8b"  # DISCONNECT: server shutting down
)
MQTT_LINES = [CONNECTED, READY, PAYLOAD, PONG, PAYLOAD, ERROR + b"DISCONNECT reason 0x8b (server shutting down)"]

REDIS_STREAM = (
    b"*3\r\n$9\r\nsubscribe\r\n$9\r\nchatbench\r\n:1\r\n"
    + b"*3\r\n$7\r\nmessage\r\n$9\r\nchatbench\r\n$%d\r\n%s\r\n" % (len(PAYLOAD), PAYLOAD)
    + b":20\r\n+PONG\r\n-ERR max clients reached\r\n"
)
REDIS_LINES = [READY, PAYLOAD, PONG, ERROR + b"ERR max clients reached"]

NATS_STREAM = (
    b'INFO {"server_id":"x","max_payload":1048576}\r\n+OK\r\nPING\r\nPONG\r\n'
    + b"MSG chatbench 1 %d\r\n%s\r\n" % (len(PAYLOAD), PAYLOAD)
    + b"MSG chatbench 1 _INBOX.x %d\r\n%s\r\n" % (len(PAYLOAD), PAYLOAD)
    + b"MSG chatbench 1 0\r\n\r\n"
    + b"-ERR 'Slow Consumer Detected'\r\n"
)
NATS_LINES = [PING, PONG, PAYLOAD, PAYLOAD, b"", ERROR + b"Slow Consumer Detected"]

CASES = [
    (MqttDecoder, MQTT_STREAM, MQTT_LINES),
    (RedisDecoder, REDIS_STREAM, REDIS_LINES),
    (NatsDecoder, NATS_STREAM, NATS_LINES),
]


@pytest.mark.parametrize(("decoder", "stream", "lines"), CASES, ids=["mqtt", "redis", "nats"])
def test_decoder_whole_and_split_at_every_byte(decoder: type, stream: bytes, lines: list[bytes]) -> None:
    assert decoder().feed(stream) == lines
    for cut in range(1, len(stream)):
        d = decoder()
        assert d.feed(stream[:cut]) + d.feed(stream[cut:]) == lines, cut
    d = decoder()
    assert [line for i in range(len(stream)) for line in d.feed(stream[i : i + 1])] == lines


@pytest.mark.parametrize(
    ("decoder", "bad", "words"),
    [
        (MqttDecoder, b"\x30\xff\xff\xff\xff\x01", "variable byte integer"),
        (MqttDecoder, b"\x30" + varint(MAX_FRAME_BYTES + 1), "over the"),
        (MqttDecoder, b"\x10\x00", "never sent by a broker"),
        (MqttDecoder, b"\x36\x03\x00\x01a", "QoS 3"),
        (MqttDecoder, b"\x30\x04\x00\x09ab", "properties past the packet"),
        (RedisDecoder, b"?what\r\n", "bad RESP reply"),
        (RedisDecoder, b"$%d\r\n" % (2 * MAX_FRAME_BYTES) + b"x" * (MAX_FRAME_BYTES + 10), "over"),
        (NatsDecoder, b"HELLO there\r\n", "unknown NATS operation"),
        (NatsDecoder, b"MSG chatbench 1 x\r\n", "bad NATS MSG line"),
        (NatsDecoder, b"MSG chatbench 1 3\r\nabcdef\r\n", "wrong byte count"),
        (NatsDecoder, b"MSG chatbench 1 %d\r\n" % (MAX_FRAME_BYTES + 1), "over the"),
        (NatsDecoder, b"x" * (MAX_FRAME_BYTES + 1), "over"),
    ],
)
def test_bad_frames_raise_a_clear_frame_error(decoder: type, bad: bytes, words: str) -> None:
    with pytest.raises(FrameError, match=words):
        decoder().feed(bad)


@pytest.mark.parametrize("name", ["mqtt", "redis", "nats"])
def test_a_sender_publishes_the_chat_line_and_a_block_of_deliveries_passes_whole(name: str) -> None:
    adapter = wire.get(name)
    text = PAYLOAD.split(b": ", 1)[1].decode()
    sent = adapter.encode_message("cbx-3", text)
    assert PAYLOAD in sent
    assert adapter.check_text(text) is None
    assert adapter.check_text("a\nb") is not None
    block = PAYLOAD + b"\n" + PAYLOAD + b"\n"
    whole = adapter.deliveries(block)
    assert whole.lines is block and not whole.pairs and not whole.reply and whole.ended is None
    mixed = PAYLOAD + b"\n" + PING + b"\n" + ERROR + b"bye\n"
    got = adapter.deliveries(mixed)
    assert got.lines == PAYLOAD + b"\n"
    assert got.ended == f"{name}: bye"
    assert got.reply == (b"PONG\r\n" if name == "nats" else b"")


def test_what_each_protocol_sends_is_what_its_broker_reads() -> None:
    assert wire.get("redis").encode_message("a", "hi") == command(b"PUBLISH", b"chatbench", b"a: hi")
    assert command(b"PUBLISH", b"t", b"x") == b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$1\r\nx\r\n"
    assert wire.get("nats").encode_message("a", "hi") == b"PUB chatbench 5\r\na: hi\r\n"
    mqtt = wire.get("mqtt").encode_message("a", "hi")
    assert MqttDecoder().feed(mqtt) == [b"a: hi"]  # a PUBLISH the decoder reads back
    assert varint(0) == b"\x00" and varint(127) == b"\x7f" and varint(128) == b"\x80\x01"
    assert varint(268_435_455) == b"\xff\xff\xff\x7f"


def test_mqtt_registration_connects_subscribes_with_no_local_and_is_done_on_suback() -> None:
    reg = wire.get("mqtt").registration("cbx-1")
    hello = reg.connected()
    assert hello[0] == 0x10 and b"MQTT\x05" in hello and hello.endswith(b"cbx-1")
    step = reg.line(CONNECTED)
    assert step.send[0] == 0x82 and step.send.endswith(b"chatbench\x04")  # QoS 0 + no-local
    assert reg.line(READY).done
    refused = wire.get("mqtt").registration("x").line(ERROR + b"CONNACK reason 0x87 (not authorized)")
    assert refused.error is not None and "not authorized" in refused.error


def test_redis_subscribers_subscribe_and_senders_only_ping() -> None:
    adapter = wire.get("redis")
    assert not adapter.senders_receive
    sub = adapter.registration("cbx-1")
    assert sub.connected() == command(b"SUBSCRIBE", b"chatbench")
    assert sub.line(READY).done
    pub = adapter.sender_registration("cbx-9")
    assert pub.connected() == command(b"PING")
    assert pub.line(PONG).done
    assert RedisDecoder().feed(b":17\r\n:3\r\n") == []  # PUBLISH replies give no line
    assert sub.line(ERROR + b"ERR max number of clients reached").error == "refused: ERR max number of clients reached"


def test_nats_registration_turns_echo_and_verbose_off_and_answers_ping() -> None:
    reg = wire.get("nats").registration("cbx-1")
    hello = reg.connected()
    assert b'"echo": false' in hello and b'"verbose": false' in hello
    assert b"\r\nSUB chatbench 1\r\nPING\r\n" in hello
    assert reg.line(PING).send == b"PONG\r\n"
    assert reg.line(PONG).done
    assert reg.line(ERROR + b"Authorization Violation").error == "refused: Authorization Violation"
