"""The suite fails a test that leaves a process running (tests/procguard.py)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import psutil
import pytest

from tests.paths import REPO
from tests.procguard import ITEM_VAR, ItemMark, leaked_processes


def _mark() -> tuple[ItemMark, dict[str, str]]:
    mark = ItemMark(token=uuid.uuid4().hex, started=time.time())
    return mark, dict(os.environ, **{ITEM_VAR: mark.token})


def test_a_left_process_and_a_detached_grandchild_are_found_and_killed() -> None:
    mark, env = _mark()
    child = subprocess.Popen(["sleep", "60"], env=env)
    # A grandchild whose parent exits at once: an orphan, no longer our child.
    subprocess.run(["sh", "-c", "sleep 61 >/dev/null 2>&1 &"], env=env, check=True, timeout=10)
    leaked = leaked_processes(mark, grace=0.3)
    assert sorted(line.split(": ", 1)[1] for line in leaked) == ["sleep 60", "sleep 61"]
    assert child.wait(5) == -9
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "61"]]


def test_a_process_that_exits_within_the_grace_is_no_leak_and_others_are_not_touched() -> None:
    mark, env = _mark()
    quick = subprocess.Popen(["sleep", "0.2"], env=env)
    other = subprocess.Popen(["sleep", "60"], env=dict(env, **{ITEM_VAR: "another-test"}))
    try:
        assert leaked_processes(mark, grace=3) == []
        assert quick.wait(1) == 0
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(5)


def test_the_suite_fails_the_test_that_leaks_not_the_next_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import subprocess
        def test_leaks():
            subprocess.Popen(["sleep", "60"])
        def test_clean():
            subprocess.run(["true"], check=True)
        """
    )
    env_path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", env_path)
    result = pytester.runpytest_subprocess("-p", "tests.procguard", "-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks*", "*left 1 process(es)*", "*sleep 60*"])
