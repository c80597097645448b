"""Locust users against real brokers (``--chat-protocol``): the same FANOUT
rows and exact histogram as against our server.  Redis exercises the second,
sending-only connection (a subscribed connection cannot publish), MQTT the
binary codec.  Skips, naming the package, when a broker is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.targets import MosquittoTarget, RedisTarget
from bench.targets.brokers import find_binary
from tests.locust.test_locust_run import check_healthy_run, headless, run_locust, stats_rows

USERS = 5


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("protocol", "target", "package"), [("redis", RedisTarget, "redis-server"), ("mqtt", MosquittoTarget, "mosquitto")]
)
def test_locust_users_measure_a_broker(tmp_path: Path, protocol: str, target: type, package: str) -> None:
    if find_binary(target.binary_name) is None:
        pytest.skip(f"{target.binary_name} is not installed (run `make peers`: apt-get install {package})")
    prefix = tmp_path / protocol
    with target() as broker:
        args = [*headless(broker.port, prefix, users=USERS, seconds=3), "--chat-protocol", protocol, "--chat-rate", "5"]
        code, output = run_locust(tmp_path, protocol, args)
    result = check_healthy_run(code, output, prefix)
    rows = stats_rows(prefix)
    fanout, sent = int(rows[("FANOUT", "broadcast")]["Request Count"]), int(rows[("SEND", "chat")]["Request Count"])
    # Each message reaches the other users (Redis brings a user's own back too: an echo, not counted).
    receivers = USERS - 1
    assert fanout <= receivers * sent + receivers, (fanout, sent)
    assert fanout > sent  # each message reached several users
    assert result["summary"]["count"] >= fanout
