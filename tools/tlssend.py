"""The cost of one send to one TLS client, the ways a server could do it.

For a 69-byte chat line, in a loop of ``--sends`` with the kernel taking
every send (the receiver is another process reading raw bytes without
decrypting them), µs per send:

* ``plain``: ``socket.send`` (what a plaintext client costs);
* ``sslsocket``: ``SSLSocket.send`` on a non-blocking socket -- the fewest
  steps, but unsafe while the client's reader thread blocks in
  ``SSLSocket.recv`` on the same OpenSSL object, and a send OpenSSL could
  not finish must be retried with the same buffer;
* ``sslsocket+lock``: the same under a per-connection lock (what making it
  safe would take at the least, with a non-blocking reader besides);
* ``memorybio``: :class:`server.tls.TlsSocket` (what the server does):
  ``SSLObject.write`` into a memory BIO under the connection's lock, the
  records read out and sent with one non-blocking ``send``.

Prints one JSON object (the median of ``--repeat`` loops each)::

    python tools/tlssend.py --sends 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import trustme

from server.tls import TlsSocket, server_context

LINE = b"sender: " + b"x" * 60 + b"\n"


def drain(address: tuple[str, int], ca_pem: bytes | None) -> None:
    """The receiving end: shake hands if TLS, then read raw bytes to EOF."""
    sock = socket.create_connection(address)
    if ca_pem is not None:
        context = ssl.create_default_context(cadata=ca_pem.decode())
        tls = context.wrap_socket(sock, server_hostname="127.0.0.1")
        tls.sendall(b"x")
        sock = socket.socket(fileno=os.dup(tls.fileno()))
    else:
        sock.sendall(b"x")
    while sock.recv(1 << 20):
        pass


def accept(listener: socket.socket, ca_pem: bytes | None) -> tuple[socket.socket, multiprocessing.Process]:
    receiver = multiprocessing.Process(target=drain, args=(listener.getsockname(), ca_pem), daemon=True)
    receiver.start()
    sock, _ = listener.accept()
    return sock, receiver


def timed(send: Callable[[bytes], object], sends: int) -> float:
    started = time.perf_counter()
    for _ in range(sends):
        send(LINE)
    return (time.perf_counter() - started) / sends * 1e6


def measure_once(listener: socket.socket, context: ssl.SSLContext, ca_pem: bytes, sends: int) -> dict[str, float]:
    """One loop of each way; µs per send."""
    costs: dict[str, float] = {}
    sock, receiver = accept(listener, None)
    sock.recv(1)
    costs["plain"] = timed(lambda d: sock.send(d, socket.MSG_DONTWAIT), sends)
    sock.close()
    receiver.join()

    sock, receiver = accept(listener, ca_pem)
    tls_sock = context.wrap_socket(sock, server_side=True)
    tls_sock.recv(1)
    tls_sock.setblocking(False)
    costs["sslsocket"] = timed(tls_sock.send, sends)
    lock = threading.Lock()

    def locked(data: bytes) -> int:
        with lock:
            return tls_sock.send(data)

    costs["sslsocket+lock"] = timed(locked, sends)
    tls_sock.close()
    receiver.join()

    sock, receiver = accept(listener, ca_pem)
    bio = TlsSocket(sock, context, "bench", plaintext_answer=b"")
    bio.recv(1)
    costs["memorybio"] = timed(lambda d: bio.send(d, socket.MSG_DONTWAIT), sends)
    assert bio.partial_sends == 0, "the kernel did not take every send: not a cost comparison"
    bio.close()
    receiver.join()
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    where = Path(tempfile.mkdtemp(prefix="tlssend-"))
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(where / "server.pem"))
    context = server_context(str(where / "server.pem"), str(where / "server.pem"))
    listener = socket.create_server(("127.0.0.1", 0))
    results: dict[str, list[float]] = {"plain": [], "sslsocket": [], "sslsocket+lock": [], "memorybio": []}
    for _ in range(args.repeat):
        for name, cost in measure_once(listener, context, ca.cert_pem.bytes(), args.sends).items():
            results[name].append(cost)
    medians = {name: round(statistics.median(values), 3) for name, values in results.items()}
    print(json.dumps({"line_bytes": len(LINE), "sends": args.sends, "us_per_send": medians}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
