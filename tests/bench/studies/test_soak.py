"""``chat-bench soak``, in miniature: the server returns to its idle footprint,
and the soak stops the one server it started (it used to start a second one,
left running, by calling start() inside ``with EmbeddedTarget()``)."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from bench import cli


@pytest.mark.timeout(120)
def test_a_short_soak_passes_and_leaves_no_server_running(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    args = ["soak", "--clients", "10", "--rate", "20", "--duration", "2", "--warmup", "0.2", "--settle", "5"]
    assert cli.main([*args, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["problems"] == [] and result["idle"]["threads"] >= 1
    servers = [
        p for p in psutil.Process().children(recursive=True) if "server" in p.cmdline() and p.status() != "zombie"
    ]
    assert servers == [], [p.cmdline() for p in servers]
