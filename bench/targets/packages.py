"""What a target needs installed, and where it comes from.

A :class:`Package` is a program a target runs: a binary from a Debian package
(looked for on PATH and in the sbin directories, where Debian puts servers) or
a Python module from PyPI (installed into the harness's own Python).  The
target classes name theirs (``requires``), the registry
(:mod:`bench.targets.registry`) collects them per target kind, and
``chat-bench peers`` (:mod:`bench.peers`) installs the ones a set of targets needs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass

#: Where Debian installs servers; not always on a user's PATH.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def find_binary(name: str) -> str | None:
    """Path of an installed binary (the sbin directories are searched even when not on PATH)."""
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN_DIRS)
    return shutil.which(name, path=path)


@dataclass(frozen=True)
class Package:
    """A program a target runs: the binary (or, from PyPI, the Python module)
    to look for, and the package that installs it."""

    #: The binary to look for (``ngircd``), or with ``pypi`` the module to import (``miniircd``).
    name: str
    #: ``apt-get install`` this.
    debian: str | None = None
    #: ``pip install`` this, into the harness's Python.
    pypi: str | None = None

    def __post_init__(self) -> None:
        if (self.debian is None) == (self.pypi is None):
            raise ValueError(f"package {self.name}: name exactly one of a Debian or a PyPI package")

    @property
    def installed(self) -> bool:
        if self.pypi is not None:
            return importlib.util.find_spec(self.name) is not None
        return find_binary(self.name) is not None

    def find(self) -> str | None:
        """Where it is installed (a binary's path, a module's file); None when it is not."""
        if self.pypi is not None:
            spec = importlib.util.find_spec(self.name)
            return None if spec is None else spec.origin or self.name
        return find_binary(self.name)

    @property
    def source(self) -> str:
        """``Debian package `ngircd``` / ``PyPI package `miniircd```."""
        return f"Debian package `{self.debian}`" if self.debian is not None else f"PyPI package `{self.pypi}`"

    @property
    def install_command(self) -> str:
        return f"apt-get install {self.debian}" if self.debian is not None else f"pip install {self.pypi}"

    def missing(self) -> str:
        """The one-line error when it is not installed."""
        return (
            f"{self.name} is not installed ({self.source}: `make peers` or `chat-bench peers --install` "
            f"installs it, or {self.install_command})"
        )
