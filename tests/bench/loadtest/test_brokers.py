"""Locust users against real brokers and an IRC server (``--chat-protocol``):
the same FANOUT rows and exact histograms as against our server, through the
same receive path.  Redis exercises the second, sending-only connection (a
subscribed connection cannot publish), MQTT the binary codec, NATS its text
protocol, ngIRCd the IRC adapter's (nick, text) pairs.  Skips, naming the
package, when a server is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.targets import MosquittoTarget, NatsTarget, NgircdTarget, RedisTarget
from bench.targets.packages import find_binary
from tests.bench.loadtest.test_run import check_healthy_run, headless, run_locust, stats_rows

USERS = 5


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("protocol", "target", "binary", "rate"),
    [
        ("redis", RedisTarget, "redis-server", 5),
        ("mqtt", MosquittoTarget, "mosquitto", 5),
        ("nats", NatsTarget, "nats-server", 5),
        ("irc", NgircdTarget, "ngircd", 2),  # (a flood penalty where the ngircd cannot turn it off)
    ],
)
def test_locust_users_measure_a_broker(tmp_path: Path, protocol: str, target: type, binary: str, rate: int) -> None:
    if find_binary(binary) is None:
        pytest.skip(f"{binary} is not installed (run `make peers`: apt-get install {binary})")
    prefix = tmp_path / protocol
    with target() as broker:
        args = [*headless(broker.port, prefix, users=USERS, seconds=3), "--chat-protocol", protocol]
        args += ["--chat-rate", str(rate)]
        code, output = run_locust(tmp_path, protocol, args)
    result = check_healthy_run(code, output, prefix)
    rows = stats_rows(prefix)
    fanout, sent = int(rows[("FANOUT", "broadcast")]["Request Count"]), int(rows[("SEND", "chat")]["Request Count"])
    # Each message reaches the other users (Redis brings a user's own back too: an echo, not counted).
    receivers = USERS - 1
    assert fanout <= receivers * sent + receivers, (fanout, sent)
    assert fanout > sent  # each message reached several users
    assert result["summary"]["count"] >= fanout
