"""Certificates for the targets the harness starts with ``--tls``.

One throw-away certificate authority per harness process (``trustme``,
made on first use), and for each started server a certificate it signs for
the loopback names (``127.0.0.1``, ``::1``, ``localhost``).  The clients
trust that CA (:func:`ca_file`, handed to every worker in its
:class:`bench.net.tls.TlsOptions`) and check the server's name as a real
client would; nothing is ever added to the system's trust store.  Files
are written readable by all (a server that drops root, as ngircd and
mosquitto do, must still read them) in a private temporary directory,
removed at exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when first used: it brings in cryptography, which most runs never need
    import trustme

#: The names every server certificate is issued for: the harness only
#: speaks to loopback (``bench.targets.external.check_loopback``).
LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """One server's files: its certificate chain and key (PEM), and the CA's certificate."""

    cert_file: str
    key_file: str
    ca_file: str


@cache
def _authority() -> tuple[trustme.CA, Path]:
    """The process's CA and the directory its files go to (made once)."""
    import trustme

    where = Path(tempfile.mkdtemp(prefix="chatbench-tls-"))
    os.chmod(where, 0o755)
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    ca = trustme.CA(organization_name="chatbench harness")
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    os.chmod(where / "ca.pem", 0o644)
    return ca, where


def ca_file() -> str:
    """The PEM file of the CA that signs the harness's server certificates."""
    return str(_authority()[1] / "ca.pem")


def issue(label: str) -> ServerCertificate:
    """A fresh certificate for a server called ``label`` (a file name part),
    for the loopback names, signed by the process's CA."""
    ca, where = _authority()
    leaf = ca.issue_cert(*LOOPBACK_NAMES)
    directory = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=where))
    os.chmod(directory, 0o755)
    cert, key = directory / "server.crt", directory / "server.key"
    for blob in leaf.cert_chain_pems:
        with cert.open("ab") as out:
            out.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(key))
    for path in (cert, key):
        os.chmod(path, 0o644)  # throw-away test keys: readable by a server that dropped root
    return ServerCertificate(str(cert), str(key), ca_file())
