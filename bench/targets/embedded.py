"""This project's server (``python -m server``) as a target."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench.results.schema import TargetInfo
from bench.targets.base import ProcessTarget, TargetError


class EmbeddedTarget(ProcessTarget):
    """This project's server as a subprocess."""

    kind = "embedded"
    protocol = "chat"
    label = "embedded server"

    def __init__(self, server_args: Sequence[str] = (), host: str = "127.0.0.1") -> None:
        for arg in server_args:
            if arg.split("=")[0] in ("--host", "--port"):
                raise TargetError(f"{arg.split('=')[0]} is chosen by the harness for an embedded server")
        super().__init__(host)
        self.server_args = list(server_args)

    def command(self, port: int) -> list[str]:
        # Flood control off: the harness measures fan-out, not the limiter (it would
        # delay a fast sender's lines).  A later --log-level or --rate-limit wins.
        args = ["--log-level", "WARNING", "--rate-limit", "0", *self.server_args]
        return [sys.executable, "-m", "server", "--host", self.host, "--port", str(port), *args]

    def describe(self) -> TargetInfo:
        doc = super().describe()
        doc["command"] = ["python", "-m", "server", *self.command(self.port)[3:]]
        doc["server_options"] = list(self.server_args)
        doc["effective_options"] = options = effective_options(self.stderr_head)
        # command() turns flood control off; a later --server-arg may turn it on again.
        rate = options.get("rate_limit", "0")
        doc["flood_control"] = "off (--rate-limit 0)" if float(rate) == 0 else f"--rate-limit {rate}"
        return doc


#: The server's second start-up line: ``options: name=value ...`` (every setting in force).
OPTIONS_MARK = "options: "


def effective_options(lines: Sequence[str]) -> dict[str, str]:
    """The settings the server says it runs with (its ``options:`` start-up
    line), name -> value as logged; empty if it logged none."""
    for line in lines:
        _, mark, rest = line.partition(OPTIONS_MARK)
        if mark:
            return {name: value for name, _, value in (item.partition("=") for item in rest.split())}
    return {}
