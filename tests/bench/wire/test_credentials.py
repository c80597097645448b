"""Logins (:mod:`bench.wire.credentials`) and what each protocol's registration
puts on the wire with them: our password prompt, IRC's PASS, MQTT's CONNECT
user name and password, Redis's AUTH, NATS's CONNECT fields, each also with a
workload's rooms; the credentials file; the rules a protocol's login imposes;
a password never shown."""

from __future__ import annotations

import json

import pytest

from bench import wire
from bench.wire import mqtt_adapter, redis_adapter
from bench.wire.broker import READY
from bench.wire.credentials import Credentials, CredentialsError, Logins, parse_credentials, single
from bench.wire.mqtt_adapter import CONNECT, FLAG_PASSWORD, FLAG_USER, read_varint
from server import protocol

LOGIN = Credentials("bench", "pa:ss word")


def test_the_credentials_file_is_user_colon_password_lines() -> None:
    logins = parse_credentials("# accounts\nann:one\n\nbob:two:with:colons\n", "creds.txt")
    assert [(a.user, a.password) for a in logins.accounts] == [("ann", "one"), ("bob", "two:with:colons")]
    assert logins.for_client(0).user == "ann" and logins.for_client(3).user == "bob"  # client i: line i mod N
    assert logins.describe() == "2 users (creds.txt (2 lines))"
    with pytest.raises(CredentialsError, match=r"creds\.txt line 2: expected USER:PASSWORD"):
        parse_credentials("ann:one\njust-a-password\n", "creds.txt")
    with pytest.raises(CredentialsError, match="no USER:PASSWORD line"):
        parse_credentials("# nothing\n", "creds.txt")


def test_a_password_is_never_shown() -> None:
    logins = single("bench", "hunter2")
    assert "hunter2" not in repr(logins) and "hunter2" not in logins.describe()
    with pytest.raises(CredentialsError, match="line break"):
        single(None, "two\nlines")


@pytest.mark.parametrize(
    ("protocol", "logins", "clients", "said"),
    [
        ("shootout", single(None, "x"), 2, "has no login"),
        ("irc", single("u", "x"), 2, "server password only"),
        ("mqtt", single(None, "x"), 2, "give --user too"),
        ("chat", single("u", "x"), 2, "give --password alone"),
        ("chat", parse_credentials("a:1\nb:2\n", "f"), 3, "names 2 distinct clients, the run needs 3"),
    ],
)
def test_what_a_protocol_cannot_use_is_refused(protocol: str, logins: Logins, clients: int, said: str) -> None:
    with pytest.raises(CredentialsError, match=said):
        logins.check(protocol, wire.get(protocol).login, clients)


def test_what_a_protocol_can_use_passes() -> None:
    for name, logins in [
        ("chat", single(None, "x")),
        ("ws", parse_credentials("a:1\nb:2\n", "f")),
        ("irc", single(None, "x")),
        ("redis", single("u", "x")),
        ("nats", parse_credentials("a:1\nb:2\n", "f")),
    ]:
        logins.check(name, wire.get(name).login, 2)


def test_chat_answers_the_password_prompt_after_the_name() -> None:
    reg = wire.get("chat").registration("alice", LOGIN)
    assert reg.line(protocol.encode_prompt().rstrip(b"\n")).send == b"alice\n"
    assert reg.line(protocol.encode_password_prompt().rstrip(b"\n")).send == b"pa:ss word\n"
    assert reg.line(protocol.encode_welcome("alice", ["alice"]).rstrip(b"\n")).done
    refused = wire.get("chat").registration("bob", LOGIN)
    refused.line(protocol.encode_prompt().rstrip(b"\n"))
    refused.line(protocol.encode_password_prompt().rstrip(b"\n"))
    step = refused.line(protocol.encode_error("Login failed: unknown name or wrong password").rstrip(b"\n"))
    assert step.error == "refused: Login failed: unknown name or wrong password"


def test_chat_without_a_login_answers_a_password_prompt_as_a_guest() -> None:
    reg = wire.get("chat").registration("guest")
    reg.line(protocol.encode_prompt().rstrip(b"\n"))
    assert reg.line(protocol.encode_password_prompt().rstrip(b"\n")).send == b"\n"


def test_irc_sends_pass_first() -> None:
    first = wire.get("irc").registration("nick", Credentials(None, "pw")).connected()
    assert first.startswith(b"PASS pw\r\nNICK nick\r\nUSER ")
    assert not wire.get("irc").registration("nick").connected().startswith(b"PASS")


def test_mqtt_connect_carries_user_name_and_password() -> None:
    packet = wire.get("mqtt").registration("client-1", LOGIN).connected()
    assert packet[0] >> 4 == CONNECT
    got = read_varint(packet, 1)
    assert got is not None
    size, start = got
    body = packet[start : start + size]
    assert body[:6] == b"\x00\x04MQTT" and body[6] == 5
    flags = body[7]
    assert flags & FLAG_USER and flags & FLAG_PASSWORD
    payload = body[11:]  # after keep-alive (2 bytes) and the empty properties (1 byte)
    fields = []
    while payload:
        n = int.from_bytes(payload[:2], "big")
        fields.append(payload[2 : 2 + n])
        payload = payload[2 + n :]
    assert fields == [b"client-1", b"bench", b"pa:ss word"]


def test_redis_authenticates_before_subscribing_or_pinging() -> None:
    adapter = wire.get("redis")
    subscribe = adapter.registration("r", LOGIN).connected()
    assert subscribe.startswith(b"*3\r\n$4\r\nAUTH\r\n$5\r\nbench\r\n$10\r\npa:ss word\r\n*2\r\n$9\r\nSUBSCRIBE")
    assert adapter.sender_registration("s", LOGIN).connected().endswith(b"*1\r\n$4\r\nPING\r\n")
    step = adapter.registration("r").line(b"* error WRONGPASS invalid username-password pair")
    assert step.error is not None and "WRONGPASS" in step.error


def test_nats_connect_carries_user_and_pass() -> None:
    first = wire.get("nats").registration("n", LOGIN).connected()
    options = json.loads(first.split(b"\r\n")[0][len(b"CONNECT ") :])
    assert options["user"] == "bench" and options["pass"] == "pa:ss word"
    assert wire.get("nats").tls_greeting_first  # TLS after the server's INFO


def test_a_login_and_a_workloads_rooms_go_together_on_every_protocol() -> None:
    rooms = ("r1", "r2")
    chat = wire.get("chat", rooms=True).registration("alice", LOGIN, rooms)
    assert chat.line(protocol.encode_prompt().rstrip(b"\n")).send == b"alice\n"
    assert chat.line(protocol.encode_password_prompt().rstrip(b"\n")).send == b"pa:ss word\n"
    joined = chat.line(protocol.encode_welcome("alice", ["alice"]).rstrip(b"\n"))
    assert joined.send == b"/join #r1\n/join #r2\n/part #lobby\n" and not joined.done
    irc = wire.get("irc", rooms=True).registration("nick", Credentials(None, "pw"), rooms)
    assert irc.connected().startswith(b"PASS pw\r\nNICK nick\r\n")
    assert irc.line(b":srv 001 nick :Welcome").send == b"JOIN #r1,#r2\r\n"
    mqtt = wire.get("mqtt", rooms=True).registration("client-1", LOGIN, rooms)
    assert b"bench" in mqtt.connected() and b"pa:ss word" in mqtt.connected()
    subscribe = mqtt.line(mqtt_adapter.CONNECTED).send
    assert b"chatbench/r1" in subscribe and b"chatbench/r2" in subscribe
    redis = wire.get("redis", rooms=True).registration("r", LOGIN, rooms)
    assert redis.connected() == redis_adapter.command(b"AUTH", b"bench", b"pa:ss word") + redis_adapter.command(
        b"SUBSCRIBE", b"chatbench.r1", b"chatbench.r2"
    )
    assert not redis.line(READY).done and redis.line(READY).done  # one confirmation per channel
    hello = wire.get("nats", rooms=True).registration("n", LOGIN, rooms).connected()
    options = json.loads(hello.split(b"\r\n")[0][len(b"CONNECT ") :])
    assert options["user"] == "bench" and b"SUB chatbench.r1 1\r\nSUB chatbench.r2 2\r\n" in hello
