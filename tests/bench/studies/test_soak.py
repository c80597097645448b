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


@pytest.mark.timeout(120)
def test_the_server_gives_back_what_thousands_of_churned_connections_took(tmp_path: Path) -> None:
    """``make soak-churn`` in miniature: 3,000 connections churned at 500/s
    among 20 clients; threads, descriptors and RSS at the end are within 10%
    of where they were after the first 1,000, and back at idle afterwards."""
    out = tmp_path / "soak.json"
    args = ["soak", "--clients", "20", "--rate", "50", "--warmup", "0.3", "--churn", "500", "--churned", "3000"]
    code = cli.main([*args, "--baseline-after", "1000", "--settle", "10", "--out", str(out)])
    result = json.loads(out.read_text())
    assert code == 0, result["problems"]
    check = result["churn"]
    assert check["churned"] >= 2500 and check["baseline_after"] == 1000
    base, end = check["baseline"], check["end"]
    assert base["threads"] >= 20 and abs(end["threads"] - base["threads"]) <= base["threads"] // 10
    assert abs(end["fds"] - base["fds"]) <= base["fds"] // 10
    assert abs(end["rss_bytes"] - base["rss_bytes"]) <= base["rss_bytes"] // 10
    assert result["after"]["threads"] <= result["idle"]["threads"] and result["after"]["fds"] <= result["idle"]["fds"]
