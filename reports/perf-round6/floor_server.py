"""The floor: the least a CPython chat server can do per message, to measure
what a delivery costs Python at best (reports/perf-server.md, round 6).

One thread, one epoll loop, no rooms, no limits, no queues (a line a socket
does not take is dropped), no join or leave notices: it registers a name
with our protocol's prompt and welcome, then writes every line, as our
server formats it, to every other registered client with ``os.write``.
Not a server to run; only a yardstick, started by ``floor.sh``.

    python reports/perf-round6/floor_server.py PORT [threads]

``threads``: a thread per client blocked in ``recv`` (as our server's
readers), each fanning its lines out itself under one lock, instead of the
one epoll loop.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading

from server import protocol


def said(fd: int, lines: list[bytes], names: dict[int, str]) -> list[bytes]:
    """``fd``'s first line is its name (welcomed); the rest, formatted as ours."""
    blocks = []
    for line in lines:
        text = line.rstrip(b"\r").decode()
        name = names.get(fd)
        if name is None:
            names[fd] = text
            os.write(fd, protocol.encode_welcome(text, []))
        else:
            blocks.append(protocol.encode_message(name, text))
    return blocks


def fan_out(fd: int, blocks: list[bytes], names: dict[int, str]) -> None:
    """Each block to every registered client but ``fd``; full or gone: dropped."""
    write = os.write
    for block in blocks:
        for other in names:
            if other != fd:
                try:
                    write(other, block)
                except OSError:
                    pass


def threaded(listener: socket.socket) -> None:
    """A thread per client, blocking reads, fan-out under one lock."""
    names: dict[int, str] = {}
    lock = threading.Lock()

    def reader(sock: socket.socket) -> None:
        fd = sock.fileno()
        partial = b""
        while data := sock.recv(65536):
            lines = (partial + data).split(b"\n")
            partial = lines.pop()
            blocks = said(fd, lines, names)
            with lock:
                fan_out(fd, blocks, names)
        names.pop(fd, None)
        sock.close()

    listener.setblocking(True)
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(protocol.encode_prompt())
        threading.Thread(target=reader, args=(sock,), daemon=True).start()


def main() -> None:
    listener = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=1024)
    if sys.argv[2:] == ["threads"]:
        threaded(listener)
        return
    listener.setblocking(False)
    epoll = select.epoll()
    epoll.register(listener.fileno(), select.EPOLLIN)
    socks: dict[int, socket.socket] = {}
    names: dict[int, str] = {}
    partial: dict[int, bytes] = {}
    prompt = protocol.encode_prompt()
    while True:
        for fd, _ in epoll.poll():
            if fd == listener.fileno():
                sock, _ = listener.accept()
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                socks[sock.fileno()] = sock
                partial[sock.fileno()] = b""
                epoll.register(sock.fileno(), select.EPOLLIN)
                os.write(sock.fileno(), prompt)
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                epoll.unregister(fd)
                names.pop(fd, None)
                partial.pop(fd)
                socks.pop(fd).close()
                continue
            lines = (partial[fd] + data).split(b"\n")
            partial[fd] = lines.pop()
            fan_out(fd, said(fd, lines, names), names)


if __name__ == "__main__":
    main()
