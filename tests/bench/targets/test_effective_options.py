"""A result records the options the server really ran with, not only the
ones the harness passed: the embedded server states every setting on its
second start-up line, and the target reads it back."""

from __future__ import annotations

from bench.targets import EmbeddedTarget
from bench.targets.embedded import effective_options


def test_embedded_target_records_every_effective_option() -> None:
    target = EmbeddedTarget(["--fanout", "direct", "--announce-limit=7"])
    host, port = target.start()
    try:
        described = target.describe()
    finally:
        target.stop()
    options = described["effective_options"]
    # What the harness asked for...
    assert options["fanout"] == "direct" and options["announce_limit"] == "7"
    assert options["rate_limit"] == "0.0"  # the harness turns flood control off
    assert described["flood_control"] == "off (--rate-limit 0)"
    assert options["port"] == str(port) and options["host"] == host
    # ...and what it left at the server's defaults.
    assert options["send_queue_bytes"] == "1048576" and options["max_clients"] == "10000"


def test_effective_options_parses_the_options_line_only() -> None:
    lines = ["x INFO server.startup: listening on 127.0.0.1:5", "x INFO server.startup: options: a=1 b=x=y"]
    assert effective_options(lines) == {"a": "1", "b": "x=y"}
    assert effective_options(["listening on 127.0.0.1:5"]) == {}


def test_flood_control_names_a_rate_limit_put_back() -> None:
    target = EmbeddedTarget(["--rate-limit", "25"])
    target.start()
    try:
        assert target.describe()["flood_control"] == "--rate-limit 25.0"
    finally:
        target.stop()
