"""The swarm against real brokers, end to end: mosquitto (MQTT 5), redis-server
(pub/sub) and nats-server, each started by the harness on a free loopback port
and stopped after; a broker given by URL; and the faults: a broker that
refuses connections, one that cuts off a subscriber that stopped reading, one
that dies mid-run.  Each test skips, naming the Debian package, when its
broker is not installed (``make peers`` installs them)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from bench import cli
from bench.results.schema import RunDocument
from bench.swarm import SwarmConfig, SwarmError, run_swarm
from bench.swarm.series import IntervalView, Outputs, RunInfo
from bench.targets import MosquittoTarget, NatsTarget, RedisTarget, TargetError, make_target
from bench.targets.packages import find_binary
from tests.bench.test_readme_examples import readme_command

#: 20 clients, a 2,000-message burst (the issue's end-to-end check).
BURST = {"clients": 20, "rate": 0.0, "messages": 2000, "progress": False, "drain_timeout_s": 20.0, "workers": 1}

#: target -> (binary, protocol); each binary is also its Debian package's name.
BROKERS = {"mosquitto": ("mosquitto", "mqtt"), "redis": ("redis-server", "redis"), "nats": ("nats-server", "nats")}


def needs(binary: str, package: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        find_binary(binary) is None, reason=f"{binary} is not installed (run `make peers`: apt-get install {package})"
    )


def _complete(doc: dict[str, Any], protocol: str) -> None:
    d = doc["deliveries"]
    assert doc["connections"]["failed"] == 0, doc["connections"]["failures"]
    assert d["delivered_ratio"] == 1.0, (d, doc["notes"])
    assert doc["integrity"]["faults"] == 0, doc["integrity"]
    assert doc["messages"]["sent"] == doc["messages"]["scheduled"] == 2000
    assert doc["parameters"]["protocol"] == protocol


def _gone(pid: int | None) -> bool:
    try:
        return pid is None or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", list(BROKERS))
def test_each_broker_delivers_a_burst_once_in_order_intact(target: str) -> None:
    binary, protocol = BROKERS[target]
    if find_binary(binary) is None:
        pytest.skip(f"{binary} is not installed (run `make peers`: apt-get install {binary})")
    doc = run_swarm(SwarmConfig(target=target, **BURST))  # type: ignore[arg-type]
    _complete(doc, protocol)
    receivers = 20 if protocol == "redis" else 19  # redis: dedicated senders; others: no self-delivery
    assert doc["deliveries"]["expected"] == 2000 * receivers
    assert doc["parameters"]["dedicated_senders"] is (protocol == "redis")
    # --clients 20 is what was requested; Redis's publishing connections are counted apart.
    senders = doc["parameters"]["senders"]
    assert doc["connections"]["requested"] == 20
    assert doc["connections"]["dedicated_senders"] == (senders if protocol == "redis" else 0)
    assert doc["connections"]["registered"] == 20 + doc["connections"]["dedicated_senders"]
    t = doc["target"]
    assert t["kind"] == target and t["exit_code"] == 0
    assert t["version"] and any(c in t["version"] for c in "0123456789")
    assert any(line and not line.startswith("#") for line in t["config"])
    assert t["flood_control"].startswith("none; ")
    assert _gone(t["pid"])


@needs("redis-server", "redis-server")
@pytest.mark.timeout(120)
def test_a_broker_of_ones_own_by_url_with_its_pid_sampled() -> None:
    with RedisTarget() as broker:
        host, port = broker.host, broker.port
        doc = run_swarm(SwarmConfig(target=f"redis://{host}:{port}", server_pid=broker.pid, **BURST))  # type: ignore[arg-type]
    _complete(doc, "redis")
    assert doc["target"]["kind"] == "external"
    assert doc["target"]["pid"] is not None
    with pytest.raises(TargetError, match="not a loopback address"):
        make_target("nats://192.0.2.1:4222")
    with pytest.raises(TargetError, match="scheme amqp:// is not accepted"):
        make_target("amqp://127.0.0.1:5672")
    with pytest.raises(ValueError, match="target nats speaks nats"):
        SwarmConfig(target="nats", protocol="mqtt", progress=False)


@needs("redis-server", "redis-server")
@pytest.mark.timeout(120)
def test_a_broker_that_refuses_connections_gives_its_reason() -> None:
    # maxclients 5: the sixth client's SUBSCRIBE is answered with Redis's error.
    config = SwarmConfig(target="redis", server_args=("maxclients 5",), **BURST)  # type: ignore[arg-type]
    try:
        doc = run_swarm(config)
    except SwarmError as exc:
        assert "max number of clients" in str(exc)
        return
    failures = doc["connections"]["failures"]
    assert any("max number of clients" in reason for reason in failures), failures


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("target", "limit", "logged"),
    [
        # Redis's output-buffer limit, NATS's write deadline (each back from the benchmark's setting).
        # Either applies to EVERY subscriber, so it must separate one that stopped reading from one
        # that reads late on a busy machine: the stalled one is sent 24 MB and never reads, while a
        # reading one (8 MB/s here) would have to stop reading for a whole second to be 8 MB behind.
        # (64kb cut off all five subscribers whenever the worker fell ~100 ms behind under load.)
        ("redis", "client-output-buffer-limit pubsub 8mb 0 0", "output buffer limits"),
        ("nats", 'write_deadline: "1s"', "Slow Consumer Detected"),
    ],
)
def test_a_subscriber_that_stops_reading_is_cut_off_by_the_broker_and_the_run_says_so(
    target: str, limit: str, logged: str
) -> None:
    binary = BROKERS[target][0]
    if find_binary(binary) is None:
        pytest.skip(f"{binary} is not installed (run `make peers`: apt-get install {binary})")
    # 1,000 msg/s of 8 kB for 3 s: 24 MB for the stalled subscriber, more than the kernel's buffers hold.
    config = SwarmConfig(
        target=target,
        server_args=(limit,),
        stalled_clients=1,
        payload_bytes=8000,
        clients=4,
        senders=2,
        rate=1000.0,
        duration_s=3.0,
        warmup_s=0.2,
        drain_timeout_s=5.0,
        progress=False,
        workers=1,
    )
    doc = run_swarm(config)
    # The broker's own log says it cut the stalled subscriber off, and the run's notes repeat it.
    assert any(logged in line for line in doc["target"]["faults_logged"]), doc["target"]["stderr_tail"]
    assert any(logged in note for note in doc["notes"]), doc["notes"]
    assert any("-st0" in line or "addr=" in line for line in doc["target"]["faults_logged"])
    # Only the stalled subscriber was cut off; the subscribers that read got everything.
    assert doc["connections"].get("disconnected_during_run", 0) == 0, doc["notes"]
    assert doc["deliveries"]["delivered_ratio"] == 1.0, doc["notes"]
    assert doc["integrity"]["faults"] == 0


@needs("nats-server", "nats-server")
@pytest.mark.timeout(120)
def test_a_broker_that_dies_mid_run_ends_the_run_within_its_drain_timeout() -> None:
    broker = NatsTarget()
    broker.start()
    killed: list[float] = []

    class KillOnFirstDeliveries:
        """Kills the broker once measured deliveries arrive: a timer from the start could fire
        before the first message on a slow machine (connects and the quiet room take longer)."""

        def run_started(self, run: RunInfo) -> None:
            pass

        def interval(self, view: IntervalView) -> str | None:
            if view.delivered > 0 and not killed and broker.pid:
                psutil.Process(broker.pid).kill()
                killed.append(time.monotonic())
            return None

        def run_finished(self, doc: RunDocument) -> None:
            pass

    try:
        config = SwarmConfig(
            target=f"nats://{broker.host}:{broker.port}",
            clients=10,
            rate=500.0,
            duration_s=3.0,
            warmup_s=0.2,
            drain_timeout_s=3.0,
            progress=False,
            workers=1,
        )
        started = time.monotonic()
        doc = run_swarm(config, Outputs(observers=[KillOnFirstDeliveries()]))
        elapsed = time.monotonic() - started
    finally:
        broker.stop()
    assert killed, "the broker was never killed: no measured deliveries arrived"
    assert elapsed < 3.0 + 0.2 + 3.0 + 15.0, elapsed
    # Every receiver saw the broker go; what was never sent is counted, what was in flight is lost.
    assert doc["connections"]["disconnected_during_run"] == 10, doc["connections"]
    assert sum(doc["connections"]["disconnect_reasons"].values()) == 10
    assert doc["messages"]["unsent"] > 0
    # Loss counts every message sent, warm-up included (the broker may die before the measured
    # window opens on a slow machine), so it adds up against everything sent, not the measured part.
    assert doc["deliveries"]["expected_all"] > 0
    assert doc["deliveries"]["delivered_all"] + doc["integrity"]["lost"] == doc["deliveries"]["expected_all"]


def test_a_missing_broker_is_one_line_naming_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("bench.targets.packages.find_binary", lambda name: None)
    for cls, package in ((MosquittoTarget, "mosquitto"), (RedisTarget, "redis-server"), (NatsTarget, "nats-server")):
        with pytest.raises(TargetError, match=f"apt-get install {package}") as info:
            cls()
        assert "\n" not in str(info.value)


@needs("nats-server", "nats-server")
@pytest.mark.timeout(120)
def test_the_readme_example_points_the_harness_at_a_broker_of_ones_own(tmp_path: Path) -> None:
    args = readme_command("nats://127.0.0.1:4222")
    with NatsTarget() as broker:
        url = f"nats://{broker.host}:{broker.port}"
        args = [url if a == "nats://127.0.0.1:4222" else a for a in args]
        extra = ["--workers", "1", "--quiet", "--no-latest", "--out", str(tmp_path), "--server-pid", str(broker.pid)]
        assert cli.main([*args, *extra]) == 0
    (run,) = tmp_path.glob("*/run-*.json")
    doc = json.loads(run.read_text())
    _complete(doc, "nats")
