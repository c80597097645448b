"""The client over TLS and with a password, end to end (piped stdin): chat
through the TLS port, and each way it can go wrong ending in one clear line
on stderr and exit code 1 (TLS) or 2 (login refused)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server import protocol
from server.accounts import set_password
from server.app import ChatServer
from server.config import ServerConfig
from tests.client.client_harness import REPO, TIMEOUT, ClientProcess
from tests.conftest import ChatTestClient, TlsFiles

Spawn = Callable[..., ClientProcess]


@pytest.fixture
def tls_server(tls_files: TlsFiles, tmp_path: Path) -> Iterator[ChatServer]:
    accounts = tmp_path / "accounts.txt"
    set_password(accounts, "alice", "wonderland")
    chat = ChatServer(ServerConfig(port=0, log_level="WARNING", accounts=str(accounts), **tls_files.server_options()))
    chat.start()
    assert chat.login is not None
    chat.login.failure_delay = 0.05
    try:
        yield chat
    finally:
        chat.shutdown(grace=1.0)


def tls_port(server: ChatServer) -> str:
    assert server.tls_address is not None
    return str(server.tls_address[1])


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_chat_over_tls_with_a_password_file(
    tls_server: ChatServer, tls_files: TlsFiles, spawn: Spawn, tmp_path: Path
) -> None:
    password = tmp_path / "password"
    password.write_text("wonderland\n")
    watcher = ChatTestClient(tls_server.address)  # a guest on the plaintext port
    try:
        watcher.expect(protocol.Prompt)
        watcher.send_line("watcher")
        assert watcher.expect(protocol.Prompt) == protocol.Prompt(protocol.PASSWORD_PROMPT)
        watcher.send_line("")
        watcher.expect(protocol.Welcome)
        alice = spawn(
            "--port", tls_port(tls_server), "--ca", tls_files.ca, "--name", "alice", "--password-file", str(password)
        )
        alice.expect("*** Welcome, alice! Online (2): alice, watcher")
        alice.send("hello over TLS")
        assert watcher.expect(protocol.Message, skip=(protocol.Joined,)) == protocol.Message("alice", "hello over TLS")
        watcher.say("hello in the clear")
        alice.expect("watcher: hello in the clear")
        assert alice.wait() == 0, alice.stderr
        assert alice.stderr == ""
        assert not any("wonderland" in line for line in alice.lines)
    finally:
        watcher.close()


def test_the_password_from_the_environment_and_from_the_next_piped_line(
    tls_server: ChatServer, tls_files: TlsFiles
) -> None:
    base = [sys.executable, "-m", "client", "--port", tls_port(tls_server), "--ca", tls_files.ca]
    env = {**os.environ, "CHAT_PASSWORD": "wonderland"}
    out = subprocess.run(
        [*base, "--name", "alice"], input="hi\n", env=env, capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "*** Welcome, alice! Online (1): alice"
    env.pop("CHAT_PASSWORD")
    out = subprocess.run(
        [*base, "--name", "alice"],
        input="wonderland\nhi\n",
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == ["? Enter your password:", "*** Welcome, alice! Online (1): alice"]


def test_a_wrong_password_exits_2_with_one_line(
    tls_server: ChatServer, tls_files: TlsFiles, spawn: Spawn, tmp_path: Path
) -> None:
    password = tmp_path / "password"
    password.write_text("rabbit hole\n")
    alice = spawn(
        "--port", tls_port(tls_server), "--ca", tls_files.ca, "--name", "alice", "--password-file", str(password)
    )
    assert alice.wait() == 2
    assert one_line(alice.stderr) == (
        "chat-client: the server refused the login: Login failed: unknown name or wrong password"
    )
    assert alice.lines == []


def test_an_untrusted_certificate_is_one_line_and_exit_1(tls_server: ChatServer, spawn: Spawn) -> None:
    client = spawn("--port", tls_port(tls_server), "--tls", "--name", "alice")
    assert client.wait() == 1
    line = one_line(client.stderr)
    assert line.startswith(f"chat-client: TLS with 127.0.0.1:{tls_port(tls_server)} failed: ")
    assert "certificate verify failed" in line and "--ca FILE" in line


def test_an_expired_certificate_is_one_line_and_exit_1(tls_files: TlsFiles, spawn: Spawn) -> None:
    config = ServerConfig(port=0, log_level="ERROR", tls_port=0, tls_cert=tls_files.expired, tls_key=tls_files.expired)
    with ChatServer(config) as server:
        client = spawn("--port", tls_port(server), "--ca", tls_files.ca, "--name", "alice")
        assert client.wait() == 1
        assert "certificate has expired" in one_line(client.stderr)


def test_insecure_connects_but_warns_loudly(tls_server: ChatServer, spawn: Spawn) -> None:
    client = spawn("--port", tls_port(tls_server), "--insecure", "--name", "guest")
    client.expect(lambda line: line.startswith("? Enter your password"))
    client.send("")  # a guest: no account, no password
    client.expect("*** Welcome, guest! Online (1): guest")
    assert client.wait() == 0
    assert one_line(client.stderr).startswith(
        "chat-client: WARNING: --insecure: the server's certificate is NOT checked"
    )


def test_tls_to_the_plaintext_port_is_one_line_and_exit_1(
    tls_server: ChatServer, tls_files: TlsFiles, spawn: Spawn
) -> None:
    client = spawn("--port", str(tls_server.address[1]), "--ca", tls_files.ca, "--name", "alice")
    assert client.wait() == 1
    line = one_line(client.stderr)
    assert line.startswith(f"chat-client: TLS with 127.0.0.1:{tls_server.address[1]} failed: ")


def test_plaintext_to_the_tls_port_says_to_use_tls(tls_server: ChatServer, spawn: Spawn) -> None:
    client = spawn("--port", tls_port(tls_server), "--timeout", "1", "--name", "alice")
    assert client.wait(TIMEOUT) == 1
    assert one_line(client.stderr) == (
        f"chat-client: no answer from 127.0.0.1:{tls_port(tls_server)} in 1 s; if it is a TLS port, use --tls"
    )


def test_a_missing_ca_or_password_file_is_a_usage_error(tmp_path: Path) -> None:
    for args in (["--ca", str(tmp_path / "nope.pem")], ["--password-file", str(tmp_path / "nope")]):
        out = subprocess.run(
            [sys.executable, "-m", "client", *args], capture_output=True, text=True, cwd=REPO, timeout=30
        )
        assert out.returncode == 2
        assert "error:" in out.stderr and "Traceback" not in out.stderr


def test_help_explains_tls_and_login() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "client", "--help"], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert out.returncode == 0
    for option in ("--tls", "--ca", "--insecure", "--password-file", "CHAT_PASSWORD", "--timeout", "8443"):
        assert option in out.stdout
