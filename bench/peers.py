"""``chat-bench peers``: what the chosen targets need installed, and installing it.

The peers are the other servers the harness measures (ngircd, miniircd,
mosquitto, redis-server, nats-server); each target kind names what it needs
in the registry (:data:`bench.targets.registry.KINDS`, ``needs``).  Without
``--install`` this lists them and whether each is installed; with it, it
installs the missing ones: Debian packages with ``apt-get`` (root, or sudo
without a password), PyPI packages with this Python's pip (with the
project's ``constraints.txt``, so they get the versions CI checked).  What is
installed already is left alone.  ``make compare`` runs it for the targets it
compares; ``make peers`` (and CI) for every target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import cli
from bench.targets import registry
from bench.targets.packages import Package

#: Seconds one apt-get or pip command may take (a slow mirror; apt's lock held by another install).
INSTALL_TIMEOUT_S = 900
#: The pins ``make install`` uses (``make lock`` writes them); pip installs PyPI peers with them.
CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the peer servers the chosen targets need (Debian packages, PyPI packages) and whether each is "
        "installed; with --install, install the missing ones."
    )
    parser.epilog = (
        "`make peers` installs every target's (what CI does); `make compare` only the compared targets'. "
        "Example: `chat-bench peers --targets embedded,redis,nats --install`."
    )
    g = parser.add_mutually_exclusive_group()
    g.add_argument(
        "--targets",
        type=cli.target_list,
        default=list(registry.COMPARE_DEFAULTS),
        help="comma-separated --target values (see `run --help`) (default: compare's targets, "
        f"{','.join(registry.COMPARE_DEFAULTS)})",
    )
    g.add_argument("--all", action="store_true", help="every registered target (what the test suite measures)")
    parser.add_argument("--install", action="store_true", help="install what is missing (apt-get, pip)")


def run(args: argparse.Namespace) -> int:
    targets = [kind.name for kind in registry.KINDS] if args.all else list(args.targets)
    packages = registry.needs(targets)
    if not args.install:
        for package in packages:
            where = package.find()
            print(f"{package.name}: {'installed, ' + where if where else 'NOT installed'} ({package.source})")
        if not packages:
            print(f"nothing to install for {', '.join(targets)}")
        return 0
    missing = install([p for p in packages if not p.installed])
    if missing:
        print(
            f"peers NOT installed: {', '.join(p.name for p in missing)}; their targets cannot run "
            "(choose others, e.g. make compare COMPARE_TARGETS=embedded,redis)",
            file=sys.stderr,
        )
        return 1
    print(f"peers ready: {', '.join(p.name for p in packages) or 'none needed'}")
    return 0


def install(packages: Sequence[Package]) -> list[Package]:
    """Install ``packages``; the ones still missing afterwards."""
    debian = [p for p in packages if p.debian is not None]
    pypi = [p for p in packages if p.pypi is not None]
    if debian:
        _apt_install(debian)
    for package in pypi:
        assert package.pypi is not None
        print(f"{package.name}: installing the PyPI package {package.pypi} for {sys.executable}", file=sys.stderr)
        pins = ["-c", str(CONSTRAINTS)] if CONSTRAINTS.exists() else []
        _run([sys.executable, "-m", "pip", "install", "--quiet", *pins, package.pypi])
    return [p for p in packages if not p.installed]


def _apt_install(packages: Sequence[Package]) -> None:
    """apt-get install each package (one at a time: one that fails leaves the others)."""
    prefix = _apt_prefix()
    if prefix is None:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run([*prefix, "apt-get", "update", "-qq"], env)
    for package in packages:
        assert package.debian is not None
        # A package's service must not matter: the harness starts its own instances on free ports.
        print(f"{package.name}: installing the Debian package {package.debian}", file=sys.stderr)
        _run([*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", package.debian], env)


def _apt_prefix() -> list[str] | None:
    """How to run apt-get here ([] as root, sudo -n otherwise); None, saying why, when it cannot run."""
    if shutil.which("apt-get") is None:
        print("cannot install Debian packages: there is no apt-get here", file=sys.stderr)
        return None
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    print("cannot install Debian packages: that needs root (or sudo without a password)", file=sys.stderr)
    return None


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run an install command; its failure is reported by what is still missing afterwards."""
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=INSTALL_TIMEOUT_S, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"{' '.join(argv)}: {exc}", file=sys.stderr)
        return
    if done.returncode != 0:
        print(f"{' '.join(argv)}: exit status {done.returncode}", file=sys.stderr)
