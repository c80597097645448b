"""Targets: the embedded server starts with the given options and stops; remote addresses are refused."""

from __future__ import annotations

import socket
import sys
import time

import psutil
import pytest

from bench.targets import (
    KINDS,
    AlreadyStarted,
    ClusterTarget,
    CommandTarget,
    EmbeddedTarget,
    ExternalTarget,
    Target,
    TargetError,
    make_target,
    parse_target,
)
from bench.targets.relay import relay_target
from bench.wire.client import WireClient
from server import protocol


@pytest.mark.parametrize("spec", ["10.0.0.1:6667", "192.168.1.10:8000", "8.8.8.8:80", "[2001:db8::1]:8000"])
def test_non_loopback_targets_are_refused_with_a_clear_error(spec: str) -> None:
    with pytest.raises(TargetError, match="not a loopback address"):
        make_target(spec)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("127.0.0.1:8000", ("127.0.0.1", 8000)), ("[::1]:9000", ("::1", 9000)), ("localhost:1", ("localhost", 1))],
)
def test_loopback_targets_are_accepted(spec: str, expected: tuple[str, int]) -> None:
    address = parse_target(spec).address
    assert address is not None and (address.host, address.port) == expected
    target = make_target(spec)
    assert isinstance(target, ExternalTarget)


@pytest.mark.parametrize("spec", ["nonsense", "127.0.0.1:", "127.0.0.1:99999", ":80"])
def test_malformed_targets_are_rejected(spec: str) -> None:
    with pytest.raises(TargetError):
        make_target(spec)


def test_server_options_only_apply_to_an_embedded_server() -> None:
    with pytest.raises(TargetError, match="only apply"):
        make_target("127.0.0.1:8000", ["--fanout", "direct"])


def test_external_target_that_is_not_listening_fails_clearly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(TargetError, match="nothing accepts connections"):
            ExternalTarget("127.0.0.1", port).start()


def _prompt(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as s:
        s.settimeout(5)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
        return data


def test_embedded_server_starts_with_options_and_stops() -> None:
    target = EmbeddedTarget(["--fanout", "direct", "--send-queue-bytes", "65536"])
    try:
        host, port = target.start()
        assert target.pid is not None
        assert _prompt(host, port) == protocol.encode_prompt()
        described = target.describe()
        assert described["server_options"] == ["--fanout", "direct", "--send-queue-bytes", "65536"]
        assert "--fanout" in described["command"]
    finally:
        target.stop()
    assert target.exit_code == 0  # SIGTERM is a clean shutdown
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()


def test_embedded_server_with_bad_options_reports_why() -> None:
    target = EmbeddedTarget(["--fanout", "sideways"])
    with pytest.raises(TargetError, match="failed to start"):
        target.start()
    target.stop()


def test_embedded_server_refuses_harness_chosen_options() -> None:
    with pytest.raises(TargetError, match="--port"):
        EmbeddedTarget(["--port", "80"])


def test_command_target_that_never_listens_is_reported() -> None:
    command = [sys.executable, "-c", "import sys; print('cannot start: boom', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(TargetError, match="boom"):
        CommandTarget(command, "broken server").start()


def test_calibration_relay_announces_its_port_and_relays_a_line() -> None:
    """The gate's relay, started as the gate starts it: two clients register
    through the harness's one blocking client; a line from one reaches the
    other as the server would frame it."""
    with relay_target() as relay:
        address = (relay.host, relay.port)
        assert relay.port > 0 and relay.pid is not None
        a = WireClient.connect(address, "alice", timeout=10)
        b = WireClient.connect(address, "bob", timeout=10)
        try:
            deadline = time.monotonic() + 10
            # bob is a member once alice has his join notice
            assert protocol.parse_server_line(protocol.decode_text(a.next_line(deadline))) == protocol.Joined("bob")
            a.sock.sendall(protocol.encode_say("hello"))
            got = protocol.parse_server_line(protocol.decode_text(b.next_line(deadline)))
            assert got == protocol.Message("alice", "hello")
        finally:
            a.close()
            b.close()


@pytest.mark.parametrize(
    "spec", [kind.name for kind in KINDS if kind.name not in ("faultrelay", "cluster")] + ["cluster:1"]
)
def test_a_second_start_is_refused_and_stop_leaves_nothing_running(spec: str) -> None:
    """``with target:`` already starts it; starting it again would start a
    second server that nobody stops (it did, in soak and a compare test)."""
    try:
        target = make_target(spec)
        target.start()
    except TargetError as exc:
        if "not installed" in str(exc) or "install" in str(exc):
            pytest.skip(str(exc))
        raise
    pids = _pids(target)
    try:
        assert target.address is not None
        with pytest.raises(AlreadyStarted, match="already running"):
            target.start()
        assert _pids(target) == pids  # the refused start launched nothing
    finally:
        target.stop()
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    address = target.start()  # stopped: it may start again
    try:
        assert address == target.address
    finally:
        target.stop()


def _pids(target: Target) -> list[int]:
    if isinstance(target, ClusterTarget):
        return [pid for pid in (target.redis.pid, *(node.pid for node in target.nodes)) if pid is not None]
    assert target.pid is not None
    return [target.pid]
