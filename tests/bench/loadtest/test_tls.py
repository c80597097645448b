"""Locust users over TLS with a login (``--chat-tls``, ``--chat-ca``,
``--chat-user``/``--chat-password``): against a real Redis started with TLS
and an ACL user, the same FANOUT rows as in plaintext; with a wrong
password every connection fails, and says why.  Against our server over TLS
the users' probes go out through the pacer (encrypted as it writes them) on
the connection the receive loop reads raw and decrypts: the exact figures,
integrity and kernel-stamped read lags are a plaintext run's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.targets import EmbeddedTarget, RedisTarget, Security, certs
from bench.targets.packages import find_binary
from bench.wire.credentials import single
from tests.bench.loadtest.test_run import check_healthy_run, headless, run_locust, stats_rows

USERS = 4


def secured_redis() -> RedisTarget:
    if find_binary("redis-server") is None:
        pytest.skip("redis-server is not installed (run `make peers`: apt-get install redis-server)")
    return RedisTarget(security=Security(tls=True, logins=single("bench", "s3cret")))


@pytest.mark.timeout(120)
def test_locust_users_over_tls_with_a_login(tmp_path: Path) -> None:
    prefix = tmp_path / "tls"
    secure = ["--chat-protocol", "redis", "--chat-tls", "--chat-ca", certs.ca_file()]
    with secured_redis() as broker:
        args = [*headless(broker.port, prefix, users=USERS, seconds=3), *secure, "--chat-rate", "5"]
        code, output = run_locust(tmp_path, "tls", [*args, "--chat-user", "bench", "--chat-password", "s3cret"])
    check_healthy_run(code, output, prefix)
    rows = stats_rows(prefix)
    fanout, sent = int(rows[("FANOUT", "broadcast")]["Request Count"]), int(rows[("SEND", "chat")]["Request Count"])
    assert fanout > sent > 0  # each message reached several users, decrypted


@pytest.mark.timeout(120)
def test_locust_users_with_a_wrong_password_fail_and_say_why(tmp_path: Path) -> None:
    prefix = tmp_path / "wrong"
    secure = ["--chat-protocol", "redis", "--chat-tls", "--chat-ca", certs.ca_file()]
    with secured_redis() as broker:
        args = [*headless(broker.port, prefix, users=2, seconds=2), *secure]
        _, output = run_locust(tmp_path, "wrong", [*args, "--chat-user", "bench", "--chat-password", "wrong"])
    rows = stats_rows(prefix)
    assert int(rows[("CONNECT", "register")]["Failure Count"]) >= 2, rows
    assert "WRONGPASS" in output, output[-2000:]


@pytest.mark.timeout(120)
def test_locust_users_over_tls_to_our_server_keep_the_receive_path(tmp_path: Path) -> None:
    prefix = tmp_path / "ours"
    with EmbeddedTarget(security=Security(tls=True)) as server:
        args = [*headless(server.port, prefix, users=USERS, seconds=3), "--chat-rate", "10"]
        code, output = run_locust(tmp_path, "ours", [*args, "--chat-tls", "--chat-ca", certs.ca_file()])
    # Exact counts, no fault (a record written out of order would end its
    # connection: a CONNECT failure), kernel-stamped read lags, every
    # delivery timed on one clock.
    result = check_healthy_run(code, output, prefix)
    assert result["read_lag"]["summary"]["count"] > 0
