"""The swarm over TLS with logins, end to end, against real servers the
harness starts secured: our server (TLS port, accounts required), over
WebSocket (wss), and redis-server, nats-server, mosquitto and ngircd, each
with a certificate the harness generates and a password.  Exact counts: every
message delivered once, in order, intact, every connection's handshake timed.
And the failures a user must understand: a wrong password, a certificate
nobody trusts, a target that cannot be started with TLS, logins a protocol
cannot use.  Each peer's test skips, naming its Debian package, when it is
not installed (``make peers`` installs them)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trustme

from bench.net.tls import TlsOptions
from bench.swarm import SwarmConfig, SwarmError, run_swarm
from bench.targets import EmbeddedTarget, RedisTarget, Security, TargetError, certs, make_target
from bench.targets.packages import find_binary
from bench.wire.credentials import Logins, parse_credentials, single
from bench.workload import Workload

PASSWORD = "s3cret-pw"
#: A short run: 12 clients, 4 senders, 100 msg/s for 1 s (+0.3 s warm-up).
RUN: dict[str, Any] = {
    "clients": 12,
    "senders": 4,
    "rate": 100.0,
    "duration_s": 1.0,
    "warmup_s": 0.3,
    "progress": False,
    "workers": 1,
    "drain_timeout_s": 10.0,
}

#: target -> (binary and Debian package, protocol, login user: None for a password alone)
SECURED = {
    "embedded": (None, "chat", None),
    "embedded-ws": (None, "ws", None),
    "redis": ("redis-server", "redis", "bench"),
    "nats": ("nats-server", "nats", "bench"),
    "mosquitto": ("mosquitto", "mqtt", "bench"),
    "ngircd": ("ngircd", "irc", None),
}


def skip_unless_installed(binary: str | None) -> None:
    if binary is not None and find_binary(binary) is None:
        pytest.skip(f"{binary} is not installed (run `make peers`: apt-get install {binary})")


def secured(target: str, tls: TlsOptions | None = None, login: bool = True) -> SwarmConfig:
    """The short run against ``target`` started with TLS (and a login)."""
    binary, _, user = SECURED[target]
    skip_unless_installed(binary)
    logins = single(user, PASSWORD) if login else None
    return SwarmConfig(target=target, tls=tls or TlsOptions(), logins=logins, **RUN)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", list(SECURED))
def test_each_server_over_tls_with_a_login_delivers_everything_once(target: str) -> None:
    doc = run_swarm(secured(target))
    conns, deliveries = doc["connections"], doc["deliveries"]
    assert conns["failed"] == 0, conns["failures"]
    assert deliveries["delivered"] == deliveries["expected"] > 0, (deliveries, doc["notes"])
    assert doc["integrity"]["faults"] == 0, doc["integrity"]
    assert doc["messages"]["sent"] == doc["messages"]["scheduled"]
    # every connection's handshake is timed, all of them full ones (no --tls-resume)
    setup = doc["setup"]
    assert setup["tls_full_us"] is not None and setup["tls_full_us"]["count"] == conns["registered"]
    assert setup["tls_resumed_us"] is not None and setup["tls_resumed_us"]["count"] == 0
    assert setup["register_us"]["count"] == conns["registered"]
    assert sum(setup["tls"].values()) == conns["registered"]
    assert all(name.startswith("TLSv1.") for name in setup["tls"])
    # the deliveries carry the transport label, and the run says how it was secured
    assert [s["label"] for s in doc["labels"]] == ["transport=tls"]
    assert doc["labels"][0]["delivered"] == deliveries["delivered"]
    assert doc["parameters"]["transport"] == "tls"
    assert doc["target"]["security"].startswith("tls, ")
    assert doc["rx_clock"] == "kernel"
    assert PASSWORD not in json.dumps(doc)  # never a password in a result


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", ["embedded", "redis"])
def test_a_workload_of_rooms_over_tls_with_logins_delivers_everything_once(target: str) -> None:
    """Rooms (issue 23) and TLS with logins (issue 25) together: each client
    logs in, then joins its rooms; the deliveries are labelled by room size
    and transport, and counted by interval."""
    binary, _, user = SECURED[target]
    skip_unless_installed(binary)
    run = {k: v for k, v in RUN.items() if k != "senders"}  # a workload of rooms has its senders per room
    workload = Workload(rooms=3, per_client=2, seed=3)
    doc = run_swarm(
        SwarmConfig(target=target, tls=TlsOptions(), logins=single(user, PASSWORD), workload=workload, **run)
    )
    conns, deliveries = doc["connections"], doc["deliveries"]
    assert conns["failed"] == 0, conns["failures"]
    assert deliveries["delivered"] == deliveries["expected"] > 0, (deliveries, doc["notes"])
    assert doc["integrity"]["faults"] == 0 and deliveries["strays"] == 0, doc["integrity"]
    assert doc["rooms"]["rooms"] == 3 and doc["rooms"]["memberships"] == 2 * RUN["clients"]
    assert doc["labels"] and all(s["values"].get("transport") == "tls" for s in doc["labels"])
    assert all(s["label"].startswith("room_size=") for s in doc["labels"])
    assert sum(s["delivered"] for s in doc["labels"]) == deliveries["delivered"]
    assert doc["setup"]["register_us"]["count"] == conns["registered"]
    # the time axis (issue 26) over TLS: every measured delivery in some interval
    assert sum(i["delivered"] for i in doc["intervals"]["intervals"]) == deliveries["delivered"]
    assert PASSWORD not in json.dumps(doc)


@pytest.mark.timeout(120)
def test_resumed_handshakes_are_timed_apart() -> None:
    # a slow ramp: a session is offered once an earlier connection registered (its ticket came by then)
    doc = run_swarm(replace(secured("embedded", TlsOptions(resume=True), login=False), ramp_per_s=30.0))
    setup = doc["setup"]
    assert setup["tls_full_us"] is not None and setup["tls_resumed_us"] is not None
    total = setup["tls_full_us"]["count"] + setup["tls_resumed_us"]["count"]
    assert total == doc["connections"]["registered"]
    assert setup["tls_resumed_us"]["count"] >= 1  # the server resumed the sessions offered


@pytest.mark.timeout(120)
def test_a_wrong_password_fails_the_run_saying_why() -> None:
    """A Redis started with the right login; the harness's clients given a wrong one."""
    skip_unless_installed("redis-server")
    with RedisTarget(security=Security(tls=True, logins=single("bench", PASSWORD))) as broker:
        host, port = broker.host, broker.port
        tls = TlsOptions(ca_file=certs.ca_file())
        with pytest.raises(SwarmError) as failed:
            run_swarm(SwarmConfig(target=f"redis://{host}:{port}", tls=tls, logins=single("bench", "not-it"), **RUN))
    why = str(failed.value)
    assert "WRONGPASS" in why and "not-it" not in why, why


@pytest.mark.timeout(120)
def test_our_server_with_accounts_takes_named_logins_and_refuses_wrong_passwords() -> None:
    """``--credentials FILE`` for our protocol: the clients are the file's
    names; on a server whose accounts they are, the right passwords log in
    and wrong ones fail, saying so."""
    names = [f"user{i}" for i in range(RUN["clients"])]
    with EmbeddedTarget(security=Security(tls=True, logins=single(None, PASSWORD))) as server:
        server.enroll([(name, PASSWORD) for name in names])
        host, port = server.host, server.port
        tls = TlsOptions(ca_file=certs.ca_file())
        right = parse_credentials("".join(f"{n}:{PASSWORD}\n" for n in names), "good.txt")
        doc = run_swarm(SwarmConfig(target=f"{host}:{port}", tls=tls, logins=right, **RUN))
        assert doc["connections"]["failed"] == 0, doc["connections"]["failures"]
        assert doc["deliveries"]["delivered"] == doc["deliveries"]["expected"] > 0
        assert doc["integrity"]["faults"] == 0
        wrong = parse_credentials("".join(f"{n}:not-it\n" for n in names), "bad.txt")
        with pytest.raises(SwarmError) as failed:
            run_swarm(SwarmConfig(target=f"{host}:{port}", tls=tls, logins=wrong, **RUN))
    why = str(failed.value)
    assert "Login failed: unknown name or wrong password" in why and "not-it" not in why, why


@pytest.mark.timeout(120)
def test_an_untrusted_certificate_fails_the_run_saying_why(tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(SwarmError) as failed:
        run_swarm(SwarmConfig(target="embedded", tls=TlsOptions(ca_file=str(other)), **RUN))
    assert "certificate is not trusted" in str(failed.value), failed.value
    assert "--ca FILE" in str(failed.value)


@pytest.mark.timeout(60)
def test_tls_to_a_plaintext_server_fails_saying_it_does_not_speak_tls() -> None:
    with EmbeddedTarget() as server:  # plaintext
        host, port = server.host, server.port
        with pytest.raises(SwarmError) as failed:
            run_swarm(SwarmConfig(target=f"{host}:{port}", tls=TlsOptions(insecure=True), **RUN))
    assert "does not speak TLS" in str(failed.value), failed.value


@pytest.mark.parametrize(
    ("target", "security", "said"),
    [
        ("miniircd", Security(tls=True), "cannot be started with TLS"),
        ("cluster:2", Security(tls=True), "cannot be started with TLS"),
        ("faultrelay", Security(logins=single(None, "x")), "cannot be started with logins"),
    ],
)
def test_a_target_that_cannot_be_secured_is_refused_in_one_line(target: str, security: Security, said: str) -> None:
    with pytest.raises(TargetError) as refused:
        make_target(target, security=security)
    assert said in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("target", "logins", "said"),
    [
        ("embedded", single("alice", "pw"), "give --password alone"),
        ("ngircd", single("bob", "pw"), "server password only"),
        ("redis", single(None, "pw"), "give --user too"),
    ],
)
def test_logins_a_protocol_cannot_use_are_refused(target: str, logins: Logins, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        SwarmConfig(target=target, logins=logins, **RUN)


def test_the_command_line_refuses_tls_on_the_cluster_in_one_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--target", "cluster:2", "--tls", "--clients", "4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "cannot be started with TLS" in out.stderr and "Traceback" not in out.stderr
