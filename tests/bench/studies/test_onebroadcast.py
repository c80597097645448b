"""python -m bench onebroadcast: one broadcast to N idle clients, timed by
kernel receive stamps."""

from __future__ import annotations

import sys

import pytest

from bench import cli
from bench.studies import onebroadcast

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernel receive stamps are Linux's"),
]


@pytest.mark.parametrize("fanout", ["queued", "direct"])
def test_every_client_gets_the_line_and_arrivals_are_ordered(fanout: str) -> None:
    result = onebroadcast.measure(onebroadcast.Study(clients=8, rounds=3, fanout=fanout))
    assert result["clients"] == 8 and len(result["rounds"]) == 3
    assert result["protocol"] == "chat" and result["labels"] == {}
    for r in result["rounds"]:
        # Timed from the moment the sender called send: never negative.
        assert 0 < r["first_us"] <= r["p50_us"] <= r["p99_us"] <= r["last_us"] < 200_000
    m = result["median"]
    assert m["first_us"] <= m["p50_us"] <= m["last_us"]


def test_cli_prints_the_medians_and_rejects_nonsense(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["onebroadcast", "--clients", "3", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("one broadcast to 3 idle clients (fanout=queued, median of 2 rounds): first ")
    assert cli.main(["onebroadcast", "--clients", "0"]) == 2
    assert "--clients and --rounds must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["redis", "embedded-ws", "nats", "mosquitto"])
def test_the_study_runs_against_any_protocol(target: str) -> None:
    """The one receive path: registration, deliveries and checks through the
    target's adapter (Redis: a dedicated publisher; WebSocket: frames)."""
    from bench.targets import TargetError, make_target

    try:
        make_target(target).describe()
    except TargetError as exc:
        pytest.skip(str(exc))
    result = onebroadcast.measure(onebroadcast.Study(clients=6, rounds=3, target=target))
    assert result["target"] == target and len(result["rounds"]) == 3
    for r in result["rounds"]:
        assert 0 < r["first_us"] <= r["p50_us"] <= r["last_us"] < 200_000


def test_a_cluster_measures_each_path_under_its_label() -> None:
    from bench.targets import find_redis_server

    if find_redis_server() is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    result = onebroadcast.measure(onebroadcast.Study(clients=6, rounds=4, target="cluster:2"))
    same, cross = result["labels"]["path=same"], result["labels"]["path=cross"]
    # 4 rounds x 6 receivers, 3 on each node: half of every round's deliveries cross.
    assert same["count"] == cross["count"] == 12
