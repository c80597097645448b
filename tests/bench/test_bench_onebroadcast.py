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
    result = onebroadcast.measure(clients=8, rounds=3, fanout=fanout)
    assert result["clients"] == 8 and len(result["rounds"]) == 3
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
