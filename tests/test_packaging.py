"""Packaging: ``pip install chatbench`` is the server and the client with what
they import; the cluster (``--backplane``) and the harness are extras that
nothing in the server or client imports unasked; ``make install`` installs
the versions pinned in constraints.txt."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

from tests.paths import REPO

ROOT = REPO
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: Packages of the extras (cluster, bench): the server and client must run without them.
EXTRA_ONLY = (
    "numpy",
    "matplotlib",
    "locust",
    "gevent",
    "hdrh",
    "psutil",
    "rich",
    "prometheus_client",
    "opentelemetry",
    "redis",
    "hiredis",
)

#: Run first in a child Python: importing any of FORBIDDEN fails as if it were not installed.
HOOK = """
import sys
FORBIDDEN = set(sys.argv[1].split(","))
class Forbid:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (forbidden by the test)", name=name)
        return None
sys.meta_path.insert(0, Forbid())
del sys.argv[1]
"""

#: Import every module of server/ and client/ (but the cluster's, with ``cluster`` false)
#: and print the distributions outside the standard library that got imported.
IMPORT_ALL = """
import importlib, importlib.metadata, json, pkgutil, sys
before = set(sys.modules)  # what site and the interpreter loaded (setuptools' .pth hook, say)
cluster = sys.argv[1] == "cluster"
names = []
for package in ("server", "client"):
    module = importlib.import_module(package)
    names += [m.name for m in pkgutil.walk_packages(module.__path__, package + ".")]
for name in names:
    if name.startswith("server.backplane.") and name != "server.backplane.errors" and not cluster:
        continue
    importlib.import_module(name)
dists = importlib.metadata.packages_distributions()
third = {m.split(".")[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names) - {"server", "client"}
print(json.dumps(sorted({d.lower() for m in third for d in dists.get(m, [])})))
"""


def _python(code: str, *args: str, forbid: tuple[str, ...] = EXTRA_ONLY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HOOK + code, ",".join(forbid), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def test_server_and_client_import_only_their_own_dependencies() -> None:
    done = _python(IMPORT_ALL, "plain")
    assert done.returncode == 0, done.stderr
    imported = {_normal(d) for d in json.loads(done.stdout)}
    base = _names(PYPROJECT["project"]["dependencies"])
    assert imported <= base, f"server/client import {imported - base}, not in the base dependencies"
    assert {"wsproto", "h11"} <= imported  # the test sees what they import (prompt_toolkit: only in a terminal)


def test_the_cluster_needs_only_the_cluster_extra() -> None:
    done = _python(IMPORT_ALL, "cluster", forbid=tuple(m for m in EXTRA_ONLY if m not in ("redis", "hiredis")))
    assert done.returncode == 0, done.stderr
    imported = {_normal(d) for d in json.loads(done.stdout)}
    project = PYPROJECT["project"]
    allowed = _names(project["dependencies"]) | _names(project["optional-dependencies"]["cluster"])
    # What redis-py imports when it happens to be installed (cryptography for
    # OCSP, OpenTelemetry for its instrumentation) is not the cluster's need:
    # the harness's own packages are forbidden above, the rest must be declared.
    optional_in_redis = {"cryptography", "typing-extensions"} | {d for d in imported if d.startswith("opentelemetry")}
    assert "redis" in imported and imported - optional_in_redis <= allowed


def test_the_help_of_server_and_client_runs_without_the_extras() -> None:
    for package in ("server", "client"):
        code = f"import runpy; sys.argv = ['{package}', '--help']; runpy.run_module('{package}', run_name='__main__')"
        done = _python(code)
        assert done.returncode == 0, done.stderr
        assert "usage:" in done.stdout


def test_backplane_without_redis_is_one_line_naming_the_extra() -> None:
    argv = ["server", "--port", "0", "--backplane", "redis://127.0.0.1:1"]
    done = _python(f"import runpy; sys.argv = {argv!r}; runpy.run_module('server', run_name='__main__')")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [text for text in done.stderr.splitlines() if text.strip()]
    assert "cannot join the cluster" in line and "pip install 'chatbench[cluster]'" in line and "'redis'" in line


def test_chat_bench_without_its_extra_is_one_line_naming_it() -> None:
    code = "import runpy; sys.argv = ['bench', 'sweep', '--help']; runpy.run_module('bench', run_name='__main__')"
    done = _python(code)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "pip install 'chatbench[bench]'" in done.stderr


def test_the_extras_hold_what_the_harness_needs_and_the_pins_cover_every_dependency() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    # Module names, but for those whose distribution is named otherwise.
    distributions = {"prometheus_client": "prometheus-client", "opentelemetry": "opentelemetry-sdk"}
    needed = {distributions.get(m, m) for m in EXTRA_ONLY} - {"hdrh", "gevent"}
    assert needed <= _names(extras["bench"]) | _names(extras["cluster"])
    assert "chatbench" in _names(extras["bench"])  # bench pulls in the cluster extra
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[_normal(name)] = version
    wanted = _names(PYPROJECT["project"]["dependencies"])
    for extra in extras.values():
        wanted |= _names(extra)
    assert wanted - {"chatbench"} <= set(pins), f"not pinned: {wanted - {'chatbench'} - set(pins)}"
    assert "miniircd" in pins  # the pip-installed peer is pinned too (chat-bench peers uses the pins)
    makefile = (ROOT / "Makefile").read_text()
    assert "-c $(CONSTRAINTS) -e '.[bench,test]'" in makefile and "CONSTRAINTS := constraints.txt" in makefile
