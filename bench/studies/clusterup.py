"""``python -m bench cluster``: a local chat cluster to try by hand (``make cluster``).

Starts a private ``redis-server`` on a free loopback port and N nodes of our
server sharing ``--port`` (SO_REUSEPORT), prints how to connect, and keeps
them running until Ctrl-C (or SIGTERM), then stops them all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from bench.targets import ClusterTarget, TargetError

#: The port `make cluster` listens on, as `chat-server` does by default.
DEFAULT_PORT = 8000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start redis-server and N chat-server nodes joined over it (--backplane), all listening on one port "
        "(--reuse-port), and keep them running until Ctrl-C. Connect with `chat-client --port PORT` from "
        "several terminals: the kernel spreads connections over the nodes."
    )
    parser.add_argument("--nodes", type=int, default=4, help="server processes")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the port every node listens on")
    parser.add_argument(
        "--server-arg", action="append", default=[], metavar="ARG", help="one more option for every node (repeatable)"
    )


def client_command(port: int, python: str = sys.executable) -> str:
    """How to start the terminal client from here: ``chat-client`` when that
    is on PATH, else the one installed beside this Python (``.venv/bin/...``,
    relative to the current directory when inside it), else the module."""
    script = Path(python).with_name("chat-client")
    if not script.exists():
        return f"{python} -m client --port {port}"
    found = shutil.which("chat-client")
    if found is not None and os.path.samefile(found, script):
        return f"chat-client --port {port}"
    shown = os.path.relpath(script) if script.is_relative_to(Path.cwd()) else str(script)
    return f"{shown} --port {port}"


def run(args: argparse.Namespace) -> int:
    target = ClusterTarget(args.nodes, [*args.server_arg, "--log-level", "INFO"], port=args.port)
    try:
        host, port = target.start()
    except TargetError as exc:
        print(f"cannot start the cluster: {exc}")
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    pids = ", ".join(str(node.pid) for node in target.nodes)
    print(f"cluster: {args.nodes} nodes (pids {pids}) on {host}:{port}, backplane {target.redis.url}")
    print(f"connect with: {client_command(port)}    (Ctrl-C stops the cluster)", flush=True)
    try:
        while not stop.wait(0.5):
            dead = [node.label for node in target.nodes if node.pid is None]
            if dead:
                print(f"stopping: {', '.join(dead)} exited")
                return 1
    finally:
        target.stop()
    return 0
