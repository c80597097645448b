"""The client in a real terminal: tmux gives it a TTY, so it runs its
prompt_toolkit front end.  Incoming lines must appear above the input line
and leave a half-typed line intact."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server import protocol
from server.accounts import set_password
from server.app import ChatServer
from server.config import ServerConfig
from tests.client.client_harness import REPO, TIMEOUT, Peer
from tests.conftest import TlsFiles

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install -y tmux)"),
]


class Tmux:
    """One tmux server on a private socket, so tests never clash."""

    def __init__(self) -> None:
        self.socket = f"chatbench-test-{uuid.uuid4().hex[:12]}"
        self.session = "client"
        self.socket_path = ""

    def run(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=TIMEOUT, check=True
        )
        return result.stdout

    def start(self, command: str) -> None:
        self.run("new-session", "-d", "-s", self.session, "-x", "120", "-y", "30", command)
        self.socket_path = self.run("display-message", "-p", "#{socket_path}").strip()

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", self.session, *(["-l"] if literal else []), *keys)

    def screen(self) -> list[str]:
        """The visible pane, without trailing blank lines."""
        lines = self.run("capture-pane", "-p", "-t", self.session).rstrip("\n").split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        return [line.rstrip() for line in lines]

    def wait_for(self, check: Callable[[list[str]], bool], what: str) -> list[str]:
        deadline = time.monotonic() + TIMEOUT
        screen: list[str] = []
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; screen:\n" + "\n".join(screen))

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=TIMEOUT, check=False)
        if self.socket_path:
            Path(self.socket_path).unlink(missing_ok=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux()
    try:
        yield t
    finally:
        t.kill()


def wait_for_file(path: Path) -> str:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()).endswith("\n"):
            return text.strip()
        time.sleep(0.1)
    raise AssertionError(f"{path} was never written")


def test_incoming_lines_do_not_clobber_the_input_line(
    server: ChatServer, peer: Callable[[str], Peer], tmux: Tmux, tmp_path: Path
) -> None:
    exit_file = tmp_path / "exit"
    client = shlex.join([sys.executable, "-m", "client", "--port", str(server.address[1]), "--name", "alice"])
    tmux.start(f"cd {shlex.quote(str(REPO))} && {client}; echo EXIT=$? > {shlex.quote(str(exit_file))}")
    tmux.wait_for(lambda s: s[-1:] == ["alice>"], "alice's input prompt")

    tmux.keys("half a thought", literal=True)  # no Enter
    tmux.wait_for(lambda s: s[-1:] == ["alice> half a thought"], "the partial input")

    bob = peer("bob")
    bob.say("interrupting!")
    # The message lands on its own line above the input, and the input is
    # intact.  (Waited for, not asserted at once: the screen is briefly
    # between "line printed" and "prompt redrawn".)
    screen = tmux.wait_for(
        lambda s: "bob: interrupting!" in s and s[-1] == "alice> half a thought", "bob's message above the input"
    )
    assert screen.index("*** bob joined the chat") < screen.index("bob: interrupting!") < len(screen) - 1

    tmux.keys(", finished", literal=True)
    tmux.keys("Enter")
    bob.expect(lambda e: e == protocol.Message("alice", "half a thought, finished"))
    tmux.wait_for(lambda s: s[-1:] == ["alice>"], "a fresh prompt")

    tmux.keys("C-d")
    assert wait_for_file(exit_file) == "EXIT=0"
    bob.expect(lambda e: e == protocol.Left("alice", "quit"))


def test_refused_name_lets_the_person_type_another(
    server: ChatServer, peer: Callable[[str], Peer], tmux: Tmux, tmp_path: Path
) -> None:
    peer("alice")
    exit_file = tmp_path / "exit"
    client = shlex.join([sys.executable, "-m", "client", "--port", str(server.address[1]), "--name", "alice"])
    tmux.start(f"cd {shlex.quote(str(REPO))} && {client}; echo EXIT=$? > {shlex.quote(str(exit_file))}")
    screen = tmux.wait_for(lambda s: s[-1:] == ["Enter your username:"], "the name prompt again")
    assert "! Name taken: alice" in screen

    tmux.keys("alice2", "Enter")
    tmux.wait_for(lambda s: s[-1:] == ["alice2>"], "the chat prompt")

    tmux.keys("C-c")  # Ctrl-C leaves like /quit
    assert wait_for_file(exit_file) == "EXIT=0"


def test_connection_lost_while_typing_exits_1(server: ChatServer, tmux: Tmux, tmp_path: Path) -> None:
    exit_file, err_file = tmp_path / "exit", tmp_path / "stderr"
    client = shlex.join([sys.executable, "-m", "client", "--port", str(server.address[1]), "--name", "alice"])
    tmux.start(
        f"cd {shlex.quote(str(REPO))} && {client} 2> {shlex.quote(str(err_file))};"
        f" echo EXIT=$? > {shlex.quote(str(exit_file))}"
    )
    tmux.wait_for(lambda s: s[-1:] == ["alice>"], "alice's input prompt")
    tmux.keys("never sent", literal=True)
    tmux.wait_for(lambda s: s[-1:] == ["alice> never sent"], "the partial input")
    server.shutdown(grace=1.0)
    assert wait_for_file(exit_file) == "EXIT=1"
    assert err_file.read_text().strip() == "chat-client: disconnected by the server: server shutting down"


def test_the_password_is_typed_without_echo_and_kept_out_of_history(
    tmux: Tmux, tmp_path: Path, tls_files: TlsFiles
) -> None:
    """Over TLS, to a server with accounts: the password line shows nothing
    of what is typed, and the up arrow does not bring it back."""
    accounts = tmp_path / "accounts.txt"
    set_password(accounts, "alice", "s3cr3t-pw")
    config = ServerConfig(port=0, log_level="ERROR", accounts=str(accounts), **tls_files.server_options())
    with ChatServer(config) as server:
        assert server.tls_address is not None
        exit_file = tmp_path / "exit"
        client = shlex.join(
            [
                sys.executable,
                "-m",
                "client",
                "--port",
                str(server.tls_address[1]),
                "--ca",
                tls_files.ca,
                "--name",
                "alice",
            ]
        )
        tmux.start(f"cd {shlex.quote(str(REPO))} && {client}; echo EXIT=$? > {shlex.quote(str(exit_file))}")
        tmux.wait_for(lambda s: s[-1:] == ["password (not shown):"], "the password prompt")
        tmux.keys("s3cr3t-pw", literal=True)
        screen = tmux.wait_for(lambda s: s[-1].startswith("password (not shown): *"), "the hidden input")
        assert not any("s3cr3t" in line for line in screen)
        tmux.keys("Enter")
        tmux.wait_for(lambda s: s[-1:] == ["alice>"], "the chat prompt")
        tmux.keys("Up")  # the history holds no password
        time.sleep(0.3)
        assert tmux.screen()[-1] == "alice>"
        assert not any("s3cr3t" in line for line in tmux.screen())
        tmux.keys("C-d")
        assert wait_for_file(exit_file) == "EXIT=0"
