"""Locust runs end to end: ``locust -f bench/locustfile.py`` against the real
server, both as subprocesses (gevent's monkey-patching stays in them), each
bounded by a timeout and killed (with its forked workers) in ``finally``."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO

LOCUSTFILE = REPO / "bench" / "locustfile.py"
#: A run's own time limit is a few seconds; this bounds a hung one.
RUN_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """End a subprocess and everything in its session (forked workers)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    else:
        try:  # the leader exited; make sure no child is left behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[int]:
    """``python -m server --port 0`` in a subprocess; yields its port."""
    yield from server_process(tmp_path, [], "listening on ")


def server_process(tmp_path: Path, args: list[str], marker: str) -> Iterator[int]:
    """``python -m server --port 0 ARGS`` in a subprocess; yields the port
    of the stderr line holding ``marker``, stops the server afterwards."""
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", "0", "--log-level", "INFO", *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        port = None
        while port is None:
            for line in log_path.read_text(errors="replace").splitlines():
                if marker in line:
                    port = int(line.rsplit(":", 1)[1])
                    break
            else:
                assert proc.poll() is None, f"server exited: {log_path.read_text()}"
                assert time.monotonic() < deadline, "server did not report its port"
                time.sleep(0.05)
        yield port
    finally:
        stop(proc, signal.SIGINT)


def run_locust(tmp_path: Path, name: str, args: list[str], locustfile: Path = LOCUSTFILE) -> tuple[int, str]:
    """Run locust to completion; return (exit code, stdout + stderr)."""
    out_path = tmp_path / f"{name}.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(locustfile), *args],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        code = proc.wait(timeout=RUN_TIMEOUT)
    finally:
        stop(proc)
    return code, out_path.read_text(errors="replace")


def headless(port: int, prefix: Path, users: int, seconds: int) -> list[str]:
    return [
        "--headless",
        "--host",
        f"tcp://127.0.0.1:{port}",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--csv",
        str(prefix),
        "--only-summary",
    ]


def stats_rows(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def failure_rows(prefix: Path) -> list[dict[str, str]]:
    with open(f"{prefix}_failures.csv", newline="") as f:
        return list(csv.DictReader(f))


def exact_result(prefix: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(Path(f"{prefix}_fanout_hdr.json").read_text())
    return result


def check_healthy_run(code: int, output: str, prefix: Path, clocks: int = 1) -> dict[str, Any]:
    """The checks every successful run shares (``clocks``: the monotonic
    clocks its workers stamp with); returns the exact result."""
    assert code == 0, output[-3000:]
    rows = stats_rows(prefix)
    fanout, send = rows[("FANOUT", "broadcast")], rows[("SEND", "chat")]
    assert int(fanout["Request Count"]) > 0
    assert int(send["Request Count"]) > 0
    assert int(rows[("CONNECT", "register")]["Request Count"]) > 0
    assert all(int(row["Failure Count"]) == 0 for row in rows.values()), rows
    assert failure_rows(prefix) == []

    result = exact_result(prefix)
    summary = result["summary"]
    # The histogram holds exactly the deliveries Locust counted...
    assert summary["count"] == result["locust_fanout_requests"] - result["locust_fanout_failures"]
    assert result["locust_fanout_failures"] == 0
    # ...and Locust's CSV, rewritten with the final statistics at exit, agrees.
    assert 0 < int(fanout["Request Count"]) <= summary["count"]
    assert 1 <= summary["p50_us"] <= summary["p90_us"] <= summary["p99_us"] <= summary["p99_9_us"] <= summary["max_us"]
    assert summary["clamped"] == 0
    assert summary["min_us"] >= 1
    assert "chatbench FANOUT exact" in output
    assert f"deliveries={summary['count']} " in output
    # Our server loses, repeats, reorders and damages nothing (users' per-sender integrity, merged).
    integrity = result["integrity"]
    assert (integrity["lost"], integrity["duplicated"], integrity["reordered"], integrity["corrupted"]) == (0, 0, 0, 0)
    assert integrity["pairs"] == [] and integrity["receivers"] > 0
    assert "lost=0 duplicated=0 reordered=0 corrupted=0" in output
    check_exact_files(result, prefix, output, clocks)
    return result


def check_exact_files(result: dict[str, Any], prefix: Path, output: str, clocks: int) -> None:
    """Schema 2: the labels add up to the summary, the read lag (kernel stamp
    to read, per read) is there beside it, in the JSON, the CSV and the console."""
    assert result["schema"] == 2
    labels = result["labels"]
    assert sum(section["summary"]["count"] for section in labels.values()) == result["summary"]["count"]
    clock = result["clock"]
    assert clock["warnings"] == [], clock
    if clocks == 1:  # one clock: every delivery timed as it is, none left unmeasured
        assert labels["clock=same"]["summary"]["count"] == result["summary"]["count"]
        assert (clock["corrected"], clock["unmeasured"]) == (0, 0), clock
    lag = result["read_lag"]
    assert lag["summary"]["count"] > 0  # kernel receive stamps through gevent's socket
    assert lag["unstamped_reads"] <= lag["summary"]["count"] // 10 + 5, lag
    # Deliveries that shared a read with a later one (each read's last did not): from every process.
    assert 0 <= lag["shared_reads"] < result["summary"]["count"], lag
    assert "| read lag p50=" in output
    with open(f"{prefix}_fanout_exact.csv", newline="") as f:
        rows = {row["Series"]: row for row in csv.DictReader(f)}
    assert int(rows["all"]["Count"]) == result["summary"]["count"]
    assert int(rows["read lag"]["Count"]) == lag["summary"]["count"]
    # The load generator's own share: how late each paced probe went out, beside them.
    sent = result["send_lag"]["summary"]
    assert sent["count"] > 0 and sent["p50_us"] <= sent["max_us"]
    assert int(rows["send lag"]["Count"]) == sent["count"]
    assert "| send lag p50=" in output
    # The time axis: every measured delivery in the interval of its arrival,
    # merged across processes, and the interval log beside the JSON.
    intervals = result["intervals"]
    assert sum(section["delivered"] for section in intervals) == result["summary"]["count"]
    assert [section["index"] for section in intervals] == list(range(len(intervals)))
    # The read lag over time: the receive loop hands its read lags to the
    # interval they were taken in every few ms (not all at the end).
    lagged = [section for section in intervals if section["receive_lag_us"] is not None]
    assert len(lagged) >= min(2, len(intervals)), [section["receive_lag_us"] for section in intervals]
    assert sum(section["receive_lag_us"]["count"] for section in lagged) == lag["summary"]["count"]
    assert Path(f"{prefix}_fanout.hlog").read_text().count("\n") > len(intervals)


def test_headless_run_reports_fanout_and_send_without_failures(tmp_path: Path, chat_server: int) -> None:
    prefix = tmp_path / "local"
    thresholds = ["--chat-threshold", "p99<60s", "--chat-threshold", "max<1us"]
    code, output = run_locust(tmp_path, "local", [*headless(chat_server, prefix, users=20, seconds=5), *thresholds])
    assert code == 99, output[-3000:]  # a threshold failed (k6's and chat-bench's exit code)
    result = check_healthy_run(0, output, prefix)
    assert result["role"] == "local"
    verdicts = result["thresholds"]
    assert [(v["threshold"], v["ok"]) for v in verdicts] == [("p99<60s", True), ("max<1us", False)]
    assert verdicts[1]["value"] == result["summary"]["max_us"]
    assert "chatbench threshold max<1us: FAILED" in output
    # The CSV's FANOUT row is the final count, the one the final table prints.
    assert int(stats_rows(prefix)[("FANOUT", "broadcast")]["Request Count"]) == result["locust_fanout_requests"]
    # Every probe reaches at most the 19 other users: deliveries are bounded
    # by what was sent (the CSV's SEND count can only lag behind).
    rows = stats_rows(prefix)
    assert int(rows[("FANOUT", "broadcast")]["Request Count"]) <= 19 * int(rows[("SEND", "chat")]["Request Count"]) + 19


def test_processes_2_merges_worker_histograms_exactly(tmp_path: Path, chat_server: int) -> None:
    prefix = tmp_path / "procs"
    master_port = free_port()
    args = [
        *headless(chat_server, prefix, users=20, seconds=5),
        "--processes",
        "2",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(master_port),
        "--master-port",
        str(master_port),
        "--chat-threshold",
        "p99{clock=same}<60s",
        "--chat-threshold",
        "lost==0",
        "--chat-interval",
        "0.5",
    ]
    code, output = run_locust(tmp_path, "procs", args)
    result = check_healthy_run(code, output, prefix)
    assert result["role"] == "master"
    assert [v["ok"] for v in result["thresholds"]] == [True, True]  # checked on the merged figures
    assert {section["length_s"] for section in result["intervals"]} == {0.5}
    per_worker = result["per_worker_count"]
    assert len(per_worker) == 2 and all(count > 0 for count in per_worker.values()), per_worker
    assert sum(per_worker.values()) == result["summary"]["count"]


@pytest.mark.slow
def test_master_and_worker_processes(tmp_path: Path, chat_server: int) -> None:
    prefix = tmp_path / "dist"
    master_port = free_port()
    worker_out = (tmp_path / "worker.out").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(master_port),
        ],
        cwd=tmp_path,
        stdout=worker_out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        args = [
            *headless(chat_server, prefix, users=10, seconds=4),
            "--master",
            "--expect-workers",
            "1",
            "--expect-workers-max-wait",
            "30",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
        ]
        code, output = run_locust(tmp_path, "master", args)
        result = check_healthy_run(code, output, prefix)
        assert result["role"] == "master"
        assert len(result["per_worker_count"]) == 1
        assert worker.wait(timeout=30) == 0
    finally:
        stop(worker)
        worker_out.close()


def test_web_ui_swarm_passes_custom_options_and_reports_exact_percentiles(tmp_path: Path, chat_server: int) -> None:
    web_port = free_port()
    out_path = tmp_path / "web.out"
    host = f"tcp://127.0.0.1:{chat_server}"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(LOCUSTFILE),
                "--host",
                host,
                "--web-host",
                "127.0.0.1",
                "--web-port",
                str(web_port),
                "--csv",
                str(tmp_path / "web"),
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + 30
        form = urllib.parse.urlencode({"user_count": 4, "spawn_rate": 4, "host": host, "chat_rate": 4}).encode()
        while True:  # until the web UI is up
            try:
                with urllib.request.urlopen(f"{base}/", timeout=5) as response:
                    page = response.read().decode()
                break
            except OSError:
                assert proc.poll() is None, out_path.read_text()
                assert time.monotonic() < deadline, "web UI did not come up"
                time.sleep(0.2)
        # The form offers enough users for fan-out (Locust's own default is 1).
        assert re.search(r'"num_users": ?10\b', page), page[-2000:]
        with urllib.request.urlopen(f"{base}/swarm", data=form, timeout=5) as response:
            assert json.load(response)["success"] is True
        counts: dict[tuple[str, str], int] = {}
        while counts.get(("SEND", "chat"), 0) < 12 or counts.get(("FANOUT", "broadcast"), 0) < 12:
            assert time.monotonic() < deadline, counts
            time.sleep(0.5)
            with urllib.request.urlopen(f"{base}/stats/requests", timeout=5) as response:
                stats = json.load(response)["stats"]
            counts = {(row["method"], row["name"]): row["num_requests"] for row in stats}
        proc.send_signal(signal.SIGTERM)  # Locust's shutdown: stop, report, exit
        proc.wait(timeout=30)
    finally:
        stop(proc)
    output = out_path.read_text(errors="replace")
    result = exact_result(tmp_path / "web")
    assert result["options"]["chat_rate"] == 4.0  # the form's value reached the users
    assert result["summary"]["count"] >= 12
    assert result["summary"]["count"] == result["locust_fanout_requests"]
    assert "chatbench FANOUT exact" in output


def test_unreachable_server_is_reported_as_connect_failures(tmp_path: Path) -> None:
    prefix = tmp_path / "refused"
    code, output = run_locust(tmp_path, "refused", headless(free_port(), prefix, users=3, seconds=2))
    assert code == 1, output[-3000:]
    failures = failure_rows(prefix)
    assert failures, output[-3000:]
    assert {(row["Method"], row["Name"]) for row in failures} == {("CONNECT", "register")}
    assert any("ConnectionRefusedError" in row["Error"] for row in failures)
    assert ("FANOUT", "broadcast") not in stats_rows(prefix)
    # The failures file is the final one, as the stats file is: every failed
    # attempt, the last second's too (users retry every second).
    connect = stats_rows(prefix)[("CONNECT", "register")]
    assert sum(int(row["Occurrences"]) for row in failures) == int(connect["Failure Count"]) >= 3


@pytest.mark.slow
def test_step_load_adds_users_in_steps(tmp_path: Path, chat_server: int) -> None:
    prefix = tmp_path / "step"
    args = [
        "--headless",
        "--host",
        f"tcp://127.0.0.1:{chat_server}",
        "-u",
        "6",
        "--chat-step-load",
        "--chat-step-users",
        "2",
        "--chat-step-time",
        "1.5",
        "--csv",
        str(prefix),
        "--only-summary",
    ]
    started = time.monotonic()
    code, output = run_locust(tmp_path, "step", args)
    assert code == 0, output[-3000:]
    # No -t: the shape ends once the last step has run a full step (4.5 s).
    assert time.monotonic() - started < RUN_TIMEOUT
    assert "Shape test updating to 2 users" in output
    assert "Shape test updating to 4 users" in output
    assert "Shape test updating to 6 users" in output
    assert "Shape test updating to 8 users" not in output
    assert exact_result(prefix)["summary"]["count"] > 0


def test_help_lists_the_chat_options() -> None:
    done = subprocess.run(
        [sys.executable, str(LOCUSTFILE), "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    for option in (
        "--chat-rate",
        "--chat-payload",
        "--chat-step-load",
        "--chat-step-users",
        "--chat-hdr-file",
        "--chat-interval",
        "--chat-threshold",
    ):
        assert option in done.stdout
    assert "--headless" in done.stdout  # Locust's own options are there too


def test_a_bad_threshold_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, output = run_locust(tmp_path, "bad", ["--headless", "-t", "1s", "--chat-threshold", "p99<<5ms"])
    assert code == 2, output[-3000:]
    assert "--chat-threshold" in output and "Traceback" not in output, output[-3000:]
