"""Accounts (``--accounts``): the password file, ``chat-server passwd``, and
logging in over real sockets -- a registered name only with its password,
the same answer for an unknown name and a wrong password, guests, the
per-address limit on failures, passwords past the limits, /nick, the
secret never logged, and everyone else chatting on meanwhile."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from server import protocol as p
from server.accounts import AccountsError, AccountsFile, PasswordHash, parse_accounts, set_password
from server.app import ChatServer
from server.login import FailureLog, Login, Outcome
from tests.conftest import ChatTestClient, TlsFiles, wait_until

MakeServer = Callable[..., ChatServer]

SECRET = "correct horse battery staple"


@pytest.fixture(scope="module")
def accounts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("accounts") / "accounts.txt"
    set_password(path, "alice", SECRET)
    set_password(path, "Bob", "hunter2")
    return path


def open_client(server: ChatServer, opened: list[ChatTestClient], **kwargs: object) -> ChatTestClient:
    client = ChatTestClient(server.address, **kwargs)  # type: ignore[arg-type]
    opened.append(client)
    client.expect(p.Prompt)
    return client


def log_in(client: ChatTestClient, name: str, password: str) -> p.ServerEvent:
    """Name, then password: the server's answer after the password prompt."""
    client.send_line(name)
    assert client.expect(p.Prompt) == p.Prompt(p.PASSWORD_PROMPT)
    client.send_line(password)
    return client.next_event()


def accounts_server(make_server: MakeServer, path: Path, **overrides: object) -> ChatServer:
    server = make_server(accounts=str(path), **overrides)
    assert server.login is not None
    server.login.failure_delay = 0.05  # the tests' own pace; the default is asserted below
    return server


# -- the file ------------------------------------------------------------------------


def test_a_hash_verifies_its_password_only() -> None:
    hashed = PasswordHash.make("pässwörd")
    assert hashed.verify("pässwörd")
    assert not hashed.verify("passwort") and not hashed.verify("")
    assert PasswordHash.parse(hashed.encode()) == hashed
    assert hashed.encode().startswith("scrypt$16384$8$1$")
    assert PasswordHash.make("x").salt != PasswordHash.make("x").salt  # salted


@pytest.mark.parametrize(
    "line, why",
    [
        ("alice", "no ':'"),
        ("alice:md5$abc", "not a scrypt"),
        ("alice:scrypt$1000$8$1$AAAA$AAAA", "out of range"),
        ("al ice:" + PasswordHash(16384, 8, 1, b"s", b"h").encode(), "spaces"),
    ],
)
def test_a_broken_line_names_the_file_and_line(line: str, why: str) -> None:
    with pytest.raises(AccountsError, match=f"accounts.txt line 2: .*{why}"):
        parse_accounts("# comment\n" + line + "\n", "accounts.txt")


def test_passwd_adds_then_changes_an_account_atomically_and_privately(tmp_path: Path) -> None:
    path = tmp_path / "accounts.txt"
    assert set_password(path, "carol", "one")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not set_password(path, "CAROL", "two")  # the same account, ignoring case
    assert set_password(path, "dave", "three")
    accounts = AccountsFile(path)
    assert len(accounts) == 2
    carol = accounts.lookup("Carol")
    assert carol is not None and carol.verify("two") and not carol.verify("one")
    assert "one" not in path.read_text() and "two" not in path.read_text()
    assert [f for f in os.listdir(tmp_path) if f.startswith(".accounts-")] == []


def test_the_passwd_command_reads_a_piped_password(tmp_path: Path) -> None:
    path = tmp_path / "accounts.txt"
    run = [sys.executable, "-m", "server", "passwd", "erin", "--accounts", str(path)]
    out = subprocess.run(run, input="s3cret\n", capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == f"added erin in {path}"
    erin = AccountsFile(path).lookup("erin")
    assert erin is not None and erin.verify("s3cret")
    for bad_input, args, message in [
        ("\n", ["erin"], "the password is empty"),
        ("x\n", ["no:colon"], "not a valid username"),
    ]:
        out = subprocess.run(
            [sys.executable, "-m", "server", "passwd", *args, "--accounts", str(path)],
            input=bad_input,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_failures_are_counted_per_address_in_a_sliding_window() -> None:
    log = FailureLog(limit=3, window=60.0, max_addresses=2)
    for t in (0.0, 1.0, 2.0):
        assert log.blocked_for("10.0.0.1", t) == 0.0
        log.record("10.0.0.1", t)
    assert log.blocked_for("10.0.0.1", 3.0) == pytest.approx(57.0)
    assert log.blocked_for("10.0.0.2", 3.0) == 0.0  # another address is not affected
    assert log.blocked_for("10.0.0.1", 60.5) == 0.0  # the first failure aged out
    log.record("10.0.0.2", 61.0)
    log.record("10.0.0.3", 62.0)  # a third address: the longest-quiet one is forgotten
    assert log.blocked_for("10.0.0.1", 62.0) == 0.0


def test_unknown_names_and_wrong_passwords_cost_the_same(accounts_file: Path) -> None:
    """With accounts required, both are checked with scrypt (a dummy hash for
    the unknown name): same verdict, similar time."""
    login = Login(AccountsFile(accounts_file), required=True, failures=FailureLog(limit=1000))

    def timed(name: str, password: str) -> tuple[Outcome, float]:
        started = time.perf_counter()
        outcome = login.check("10.0.0.9", name, password).outcome
        return outcome, time.perf_counter() - started

    runs = [(timed("alice", "wrong"), timed("nosuchuser", "wrong")) for _ in range(3)]
    assert all(a[0] is b[0] is Outcome.FAILED for a, b in runs)
    wrong = min(a[1] for a, _ in runs)
    unknown = min(b[1] for _, b in runs)
    assert wrong > 0.005 and unknown > 0.005  # both ran scrypt
    assert 0.5 < wrong / unknown < 2.0, (wrong, unknown)
    assert login.check("10.0.0.9", "alice", SECRET).outcome is Outcome.ACCOUNT


# -- logging in over a socket ---------------------------------------------------------


def test_a_registered_name_is_taken_only_with_its_password(
    make_server: MakeServer, accounts_file: Path, clients: list[ChatTestClient], caplog: pytest.LogCaptureFixture
) -> None:
    server = accounts_server(make_server, accounts_file)
    watcher = open_client(server, clients)
    assert log_in(watcher, "watcher", "") == p.Welcome("watcher", ("watcher",))  # a guest
    with caplog.at_level(logging.INFO):
        mallory = open_client(server, clients)
        assert log_in(mallory, "alice", "guess") == p.Error("Login failed: unknown name or wrong password")
        assert mallory.expect(p.Prompt) == p.Prompt(p.NAME_PROMPT)
        assert watcher.drain(0.2) == []  # nobody joined
        alice = open_client(server, clients)
        assert log_in(alice, "ALICE", SECRET) == p.Welcome("ALICE", ("ALICE", "watcher"))
        assert watcher.expect(p.Joined) == p.Joined("ALICE")
        assert wait_until(lambda: "ALICE joined from 127.0.0.1" in caplog.text)
    assert SECRET not in caplog.text and "guess" not in caplog.text  # never the secret
    assert "failed login for alice from 127.0.0.1" in caplog.text
    assert "(account)" in caplog.text
    # The wrong guesser may still join under a name nobody registered.
    assert log_in(mallory, "mallory", "anything") == p.Welcome("mallory", ("ALICE", "mallory", "watcher"))


def test_with_accounts_required_an_unknown_name_gets_the_wrong_password_answer(
    make_server: MakeServer, accounts_file: Path, clients: list[ChatTestClient]
) -> None:
    server = accounts_server(make_server, accounts_file, accounts_required=True)
    guest = open_client(server, clients)
    assert log_in(guest, "nobody", "") == p.Error("Login failed: unknown name or wrong password")
    guest.expect(p.Prompt)
    assert log_in(guest, "bob", "nope") == p.Error("Login failed: unknown name or wrong password")
    guest.expect(p.Prompt)
    assert log_in(guest, "bob", "hunter2") == p.Welcome("bob", ("bob",))


def test_three_failures_end_the_connection_and_five_block_the_address(
    make_server: MakeServer, accounts_file: Path, clients: list[ChatTestClient], caplog: pytest.LogCaptureFixture
) -> None:
    server = accounts_server(make_server, accounts_file)
    alice = open_client(server, clients)
    assert isinstance(log_in(alice, "alice", SECRET), p.Welcome)
    guesser = open_client(server, clients)
    for attempt in range(3):
        assert log_in(guesser, "bob", f"guess{attempt}") == p.Error("Login failed: unknown name or wrong password")
        if attempt < 2:
            guesser.expect(p.Prompt)
        alice.send_line("/who")  # nobody else waits for the guesser
        assert alice.expect(p.Online) == p.Online(("alice",))
    assert guesser.read_until_closed()[-1] == p.Disconnected("too many failed logins")
    again = open_client(server, clients)
    for attempt in range(2):
        assert isinstance(log_in(again, "bob", f"again{attempt}"), p.Error)
        again.expect(p.Prompt)
    # The address's fifth failure: from now on it is refused unchecked.
    third = open_client(server, clients)
    third.send_line("bob")
    third.expect(p.Prompt)
    with caplog.at_level(logging.WARNING):
        third.send_line("hunter2")  # even the right password
        refusal = third.expect(p.Error)
    assert refusal.message.startswith("Too many failed logins from your address; try again in ")
    assert third.read_until_closed()[-1] == p.Disconnected("too many failed logins")
    assert "refused: too many failed logins" in caplog.text
    assert wait_until(lambda: server.connection_count == 2)  # alice and `again`


def test_a_failed_login_waits_before_it_answers(
    make_server: MakeServer, accounts_file: Path, clients: list[ChatTestClient]
) -> None:
    server = make_server(accounts=str(accounts_file), accounts_required=True)
    assert server.login is not None and server.login.failure_delay == 1.0
    client = open_client(server, clients)
    client.send_line("nobody")
    client.expect(p.Prompt)
    started = time.monotonic()
    client.send_line("x")
    assert isinstance(client.expect(p.Error), p.Error)
    assert time.monotonic() - started >= 0.95


def test_passwords_past_the_limits_get_a_clear_error(
    make_server: MakeServer, accounts_file: Path, clients: list[ChatTestClient]
) -> None:
    server = accounts_server(make_server, accounts_file)
    client = open_client(server, clients)
    assert log_in(client, "alice", "x" * 2000) == p.Error("Login failed: password too long (limit 1024 bytes)")
    client.expect(p.Prompt)
    # Past the line limit, the line is dropped and the password still awaited.
    client.send_line("alice")
    client.expect(p.Prompt)
    client.send_line("y" * 5000)
    assert client.expect(p.Error) == p.Error("Line too long (limit 4096 bytes), dropped")
    client.send_line(SECRET)
    assert client.expect(p.Welcome) == p.Welcome("alice", ("alice",))


def test_nick_cannot_take_a_registered_name(
    make_server: MakeServer, accounts_file: Path, clients: list[ChatTestClient]
) -> None:
    server = accounts_server(make_server, accounts_file)
    guest = open_client(server, clients)
    assert isinstance(log_in(guest, "guest", ""), p.Welcome)
    guest.send_line("/nick alice")
    assert guest.expect(p.Error) == p.Error("Name is registered: alice (log in with it instead)")
    alice = open_client(server, clients)
    assert isinstance(log_in(alice, "alice", SECRET), p.Welcome)
    guest.expect(p.Joined)
    alice.send_line("/nick Alice")  # its own name, other letters
    assert alice.expect(p.Renamed) == p.Renamed("alice", "Alice")
    alice.send_line("/nick bob")
    assert alice.expect(p.Error) == p.Error("Name is registered: bob (log in with it instead)")
    guest.send_line("/nick visitor")
    assert guest.expect(p.Renamed, skip=(p.Renamed,)) == p.Renamed("alice", "Alice")
    assert guest.expect(p.Renamed) == p.Renamed("guest", "visitor")


def test_accounts_required_nick_only_changes_case(
    make_server: MakeServer, accounts_file: Path, clients: list[ChatTestClient]
) -> None:
    server = accounts_server(make_server, accounts_file, accounts_required=True)
    bob = open_client(server, clients)
    assert isinstance(log_in(bob, "bob", "hunter2"), p.Welcome)
    for other in ("alice", "somebody"):  # registered or not: the same answer
        bob.send_line(f"/nick {other}")
        assert bob.expect(p.Error) == p.Error(
            "Accounts are required here: /nick can only change the case of your own name"
        )
    bob.send_line("/nick BOB")
    assert bob.expect(p.Renamed) == p.Renamed("bob", "BOB")


def test_a_running_server_sees_a_new_account(
    make_server: MakeServer, tmp_path: Path, clients: list[ChatTestClient]
) -> None:
    path = tmp_path / "accounts.txt"
    set_password(path, "first", "one")
    server = accounts_server(make_server, path, accounts_required=True)
    client = open_client(server, clients)
    assert isinstance(log_in(client, "second", "two"), p.Error)
    client.expect(p.Prompt)
    set_password(path, "second", "two")
    assert log_in(client, "second", "two") == p.Welcome("second", ("second",))


def test_login_over_tls_and_websocket(
    make_server: MakeServer, accounts_file: Path, tls_files: TlsFiles, clients: list[ChatTestClient]
) -> None:
    from tests.server.wsclient import WsTestClient

    server = accounts_server(make_server, accounts_file, ws_port=0, **tls_files.server_options())
    assert server.tls_address is not None and server.ws_address is not None
    tls = ChatTestClient(server.tls_address, tls=tls_files.client_context())
    clients.append(tls)
    tls.expect(p.Prompt)
    assert log_in(tls, "alice", SECRET) == p.Welcome("alice", ("alice",))
    ws = WsTestClient(server.ws_address)
    try:
        assert isinstance(p.parse_server_line(ws.line()), p.Prompt)
        ws.send_line("bob")
        assert p.parse_server_line(ws.line()) == p.Prompt(p.PASSWORD_PROMPT)
        ws.send_line("wrong")
        assert p.parse_server_line(ws.line()) == p.Error("Login failed: unknown name or wrong password")
        assert isinstance(p.parse_server_line(ws.line()), p.Prompt)
        ws.send_line("bob")
        ws.line()
        ws.send_line("hunter2")
        assert ws.expect(p.Welcome) == p.Welcome("bob", ("alice", "bob"))
        assert tls.expect(p.Joined) == p.Joined("bob")
    finally:
        ws.sock.close()


def test_an_unreadable_accounts_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.txt"
    broken.write_text("alice:notahash\n")
    for path, message in [(tmp_path / "missing.txt", "cannot read the accounts file"), (broken, "line 1")]:
        out = subprocess.run(
            [sys.executable, "-m", "server", "--port", "0", "--accounts", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 2
        errors = [line for line in out.stderr.splitlines() if "ERROR" in line]
        assert len(errors) == 1 and message in errors[0], out.stderr
