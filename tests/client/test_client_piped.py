"""The client driven end to end with piped stdin, against a real server."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from client.app import is_quit, prompt_for, render
from client.connection import Line
from server import protocol
from server.app import ChatServer
from tests.client.client_harness import TIMEOUT, ClientProcess, Peer, free_port

Spawn = Callable[..., ClientProcess]


def port_of(server: ChatServer) -> str:
    return str(server.address[1])


def is_left(name: str) -> Callable[[protocol.ServerEvent], bool]:
    return lambda e: isinstance(e, protocol.Left) and e.name == name


def test_two_clients_chat_and_see_join_and_leave(server: ChatServer, spawn: Spawn) -> None:
    alice = spawn("--port", port_of(server), "--name", "alice")
    alice.expect("*** Welcome, alice! Online (1): alice")
    bob = spawn("--port", port_of(server), "--name", "bob")
    bob.expect("*** Welcome, bob! Online (2): alice, bob")
    alice.expect("*** bob joined the chat")

    alice.send("hello bob")
    bob.expect("alice: hello bob")
    bob.send("hi alice, ünïcode ok")
    alice.expect("bob: hi alice, ünïcode ok")

    bob.close_stdin()
    assert bob.wait() == 0, bob.stderr
    assert bob.lines[-1] == "*** Disconnected: bye"
    alice.expect("*** bob left the chat (quit)")

    assert alice.wait() == 0, alice.stderr
    assert alice.stderr == ""
    # Nobody sees their own messages echoed back.
    assert "alice: hello bob" not in alice.lines
    assert "bob: hi alice, ünïcode ok" not in bob.lines


def test_piped_lines_are_sent_then_eof_quits(server: ChatServer, spawn: Spawn, peer: Callable[[str], Peer]) -> None:
    watcher = peer("watcher")
    bob = spawn("--port", port_of(server), "--name", "bob")
    assert bob.proc.stdin is not None
    bob.proc.stdin.write("hi\n/me waves\n//etc/passwd is a path\n\n/msg watcher psst\nlast\n")
    assert bob.wait() == 0, bob.stderr
    watcher.expect(is_left("bob"))
    assert watcher.seen[-7:] == [
        "*** bob joined the chat",
        "bob: hi",
        "* bob waves",
        "bob: /etc/passwd is a path",
        "[private] bob: psst",
        "bob: last",
        "*** bob left the chat (quit)",
    ]
    assert len(bob.lines) == 3
    assert bob.lines[0].startswith("*** Welcome, bob! Online (2): ")
    assert bob.lines[1:] == ["[private to watcher] psst", "*** Disconnected: bye"]


def test_without_name_the_first_line_is_the_name(server: ChatServer, spawn: Spawn, peer: Callable[[str], Peer]) -> None:
    watcher = peer("watcher")
    carol = spawn("--port", port_of(server))
    assert carol.proc.stdin is not None
    carol.proc.stdin.write("carol\nyo\n")
    assert carol.wait() == 0, carol.stderr
    watcher.expect(lambda e: e == protocol.Message("carol", "yo"))
    assert carol.lines[0] == "? Enter your username:"
    assert carol.lines[1].startswith("*** Welcome, carol!")


def test_quit_command_ends_the_session(server: ChatServer, spawn: Spawn, peer: Callable[[str], Peer]) -> None:
    watcher = peer("watcher")
    bob = spawn("--port", port_of(server), "--name", "bob")
    assert bob.proc.stdin is not None
    bob.proc.stdin.write("before\n/quit gone fishing\nafter\n")
    bob.proc.stdin.flush()  # stdin stays open: /quit alone must end the client
    assert bob.wait(keep_stdin=True) == 0, bob.stderr
    watcher.expect(is_left("bob"))
    assert "bob: before" in watcher.seen
    assert "bob: after" not in watcher.seen
    assert watcher.seen[-1] == "*** bob left the chat (quit: gone fishing)"


def test_eof_on_stdin_exits_zero(server: ChatServer, spawn: Spawn) -> None:
    bob = spawn("--port", port_of(server), "--name", "bob")
    bob.close_stdin()
    assert bob.wait() == 0
    assert bob.lines == ["*** Welcome, bob! Online (1): bob", "*** Disconnected: bye"]
    assert bob.stderr == ""


def test_name_taken_exits_2(server: ChatServer, spawn: Spawn, peer: Callable[[str], Peer]) -> None:
    peer("alice")
    imposter = spawn("--port", port_of(server), "--name", "ALICE")  # names clash case-insensitively
    assert imposter.wait(keep_stdin=True) == 2
    assert imposter.stderr.strip() == "chat-client: the server refused the name: Name taken: ALICE"
    assert imposter.lines == []  # not the server's prompt that follows the refusal


def test_piped_invalid_first_line_name_exits_2(server: ChatServer, spawn: Spawn) -> None:
    client = spawn("--port", port_of(server))
    assert client.proc.stdin is not None
    client.proc.stdin.write("no spaces allowed\nhello\n")
    client.proc.stdin.flush()
    assert client.wait(keep_stdin=True) == 2
    assert "Invalid name: name must not contain spaces" in client.stderr
    assert client.lines == ["? Enter your username:"]  # the first prompt only, not the one after the refusal


def test_invalid_name_option_is_a_usage_error(spawn: Spawn) -> None:
    client = spawn("--port", str(free_port()), "--name", "*star")
    assert client.wait() == 2
    assert "--name '*star' is not a valid username" in client.stderr


def test_server_shutdown_exits_1_with_a_clear_line(server: ChatServer, spawn: Spawn) -> None:
    bob = spawn("--port", port_of(server), "--name", "bob")
    bob.expect(lambda line: line.startswith("*** Welcome, bob!"))
    server.shutdown(grace=1.0)
    assert bob.wait(keep_stdin=True) == 1  # stdin still open: the client must notice by itself
    assert bob.lines[-1] == "*** Disconnected: server shutting down"
    assert bob.stderr.strip() == "chat-client: disconnected by the server: server shutting down"


@pytest.fixture
def abrupt_server() -> Iterator[tuple[int, threading.Event]]:
    """A fake server that registers one client, then resets the connection
    when told to: a server crash, with no goodbye line."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    crash = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(TIMEOUT)
            conn.sendall(protocol.encode_prompt())
            decoder = protocol.LineDecoder()
            name: list[bytes] = []
            while not name:
                data = conn.recv(4096)
                if not data:
                    return
                name = decoder.feed(data)
            conn.sendall(protocol.encode_welcome(name[0].decode(), [name[0].decode()]))
            crash.wait(TIMEOUT)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], crash
    finally:
        crash.set()
        listener.close()
        thread.join(TIMEOUT)


def test_lost_connection_exits_1_with_one_line(abrupt_server: tuple[int, threading.Event], spawn: Spawn) -> None:
    port, crash = abrupt_server
    bob = spawn("--port", str(port), "--name", "bob")
    bob.expect("*** Welcome, bob! Online (1): bob")
    crash.set()
    assert bob.wait(keep_stdin=True) == 1
    lines = bob.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"chat-client: connection to 127.0.0.1:{port} lost")


def test_connection_refused_exits_1_quickly(spawn: Spawn) -> None:
    port = free_port()
    start = time.monotonic()
    client = spawn("--port", str(port), "--name", "bob")
    assert client.wait() == 1
    assert time.monotonic() - start < TIMEOUT / 2
    assert client.stderr.strip() == f"chat-client: connection to 127.0.0.1:{port} refused (is the server running?)"
    assert client.lines == []


def test_ctrl_c_quits_cleanly(server: ChatServer, spawn: Spawn, peer: Callable[[str], Peer]) -> None:
    watcher = peer("watcher")
    bob = spawn("--port", port_of(server), "--name", "bob")
    bob.expect(lambda line: line.startswith("*** Welcome, bob!"))
    bob.proc.send_signal(signal.SIGINT)
    assert bob.wait(keep_stdin=True) == 0, bob.stderr
    assert bob.stderr == ""
    watcher.expect(is_left("bob"))
    assert watcher.seen[-1] == "*** bob left the chat (quit)"


def test_ctrl_c_before_the_server_speaks_hangs_up_at_once(spawn: Spawn) -> None:
    """Ctrl-C while the client still waits for the server's first line: no
    /quit to wait for (nobody registered), it hangs up and exits 0 at once."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        client = spawn("--port", str(listener.getsockname()[1]), "--name", "bob")
        conn, _ = listener.accept()
        with conn:
            time.sleep(0.3)  # the client is in its wait for the greeting
            started = time.monotonic()
            client.proc.send_signal(signal.SIGINT)
            assert client.wait(timeout=5, keep_stdin=True) == 0, client.stderr
            assert time.monotonic() - started < 3
            assert client.stderr == ""
            conn.settimeout(5)
            assert conn.recv(100) == b""  # it closed its side


def test_help_explains_the_options(spawn: Spawn) -> None:
    client = spawn("--help")
    assert client.wait() == 0
    text = "\n".join(client.lines)
    for option in ("--host", "--port", "--name", "/quit", "Exit codes"):
        assert option in text


def test_render_colours_only_in_terminal_mode() -> None:
    line = Line("alice: hi", protocol.parse_server_line("alice: hi"))
    assert render(line, colour=False) == "alice: hi"
    coloured = render(line, colour=True)
    assert coloured != "alice: hi" and "\x1b[" in coloured and "hi" in coloured
    error = Line("! nope", protocol.parse_server_line("! nope"))
    assert render(error, colour=True).startswith("\x1b[31m")
    assert render(Line("odd line", None), colour=True) == "odd line"


def test_room_lines_show_their_room_and_the_room_commands_work(
    server: ChatServer, spawn: Spawn, peer: Callable[[str], Peer]
) -> None:
    watcher = peer("watcher")
    watcher.sock.sendall(protocol.encode_line("/join #rust"))
    watcher.expect(lambda e: isinstance(e, protocol.Talking))
    bob = spawn("--port", port_of(server), "--name", "bob")
    bob.expect("*** Welcome, bob! Online (2): bob, watcher")
    bob.send("/join #rust")
    bob.expect("*** Now talking in #rust (2): bob, watcher")
    bob.send("hi rust")
    assert watcher.expect(lambda e: isinstance(e, protocol.Message)) == protocol.Message("bob", "hi rust", "#rust")
    watcher.say("hi bob")  # the watcher's current room is #rust too
    bob.expect("#rust watcher: hi bob")
    watcher.sock.sendall(protocol.encode_line("/say #lobby and the lobby"))
    bob.expect("watcher: and the lobby")  # the default room's lines as always
    bob.send("/rooms")
    bob.expect("*** Rooms (2): #lobby (2), #rust (2)")
    bob.close_stdin()
    assert bob.wait() == 0, bob.stderr


def test_render_and_prompt_name_the_room() -> None:
    line = Line("#rust alice: hi", protocol.parse_server_line("#rust alice: hi"))
    assert render(line, colour=False) == "#rust alice: hi"
    coloured = render(line, colour=True)
    assert coloured.startswith("\x1b[32m#rust\x1b[0m ") and coloured.endswith(": hi")
    action = Line("#rust * alice waves", protocol.parse_server_line("#rust * alice waves"))
    assert render(action, colour=True) == "\x1b[32m#rust\x1b[0m \x1b[33m* alice waves\x1b[0m"
    assert prompt_for("alice", protocol.DEFAULT_ROOM) == "alice> "
    assert prompt_for("alice", "#rust") == "alice #rust> "
    assert prompt_for("alice", None) == "alice (no room)> "


def test_is_quit() -> None:
    assert is_quit("/quit") and is_quit("/QUIT later") and is_quit("/quit")
    assert not is_quit("//quit") and not is_quit("quit") and not is_quit("/quitter")
