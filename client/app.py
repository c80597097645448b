"""The terminal chat client: what the person sees and the exit codes.

Two front ends share one :class:`ChatClient`:

* **terminal** (stdin and stdout are a TTY): a prompt_toolkit prompt with
  ``patch_stdout``, so lines from the server appear above the input line
  and never clobber what is being typed.  Light colour.
* **plain** (stdin piped, for scripts): each input line is sent; at EOF the
  client sends ``/quit`` and prints until the server closes.  Output is the
  server's lines, uncoloured, one per line.

Rooms: a line from a room other than the default one starts with its room
(``#rust alice: hi``, as the server sends it; coloured in terminal mode), and
the prompt names the current room when it is not the default one
(``alice #rust>``), so the person knows where plain text goes.

Exit codes: 0 after ``/quit``, EOF, Ctrl-D or Ctrl-C; 1 when the connection
is refused or lost, the TLS handshake fails (the server's certificate is not
trusted, expired...), or the server disconnects us unasked; 2 when the
server refuses the name or the login and there is no person to type another
(plain mode).

A server with accounts asks for a password after the name
(``? Enter your password:``).  The answer is ``--password-file``'s first
line or ``$CHAT_PASSWORD`` if given, sent once; else the person types it
(not echoed, kept out of the input history), or with stdin piped the line
after the name is the password.
"""

from __future__ import annotations

import codecs
import os
import queue
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from client.connection import Closed, Connection, ConnectionEvent, Line, Oversized
from server import protocol
from server.tls import TlsError

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession

EXIT_OK = 0
EXIT_CONNECTION = 1
EXIT_NAME_REFUSED = 2

#: Seconds to wait for the server to close after we sent ``/quit``.
QUIT_GRACE = 5.0
#: Seconds to wait for the connection (and TLS handshake), and then for the
#: server's first line (the name prompt, sent at once): past it this is not
#: our server, or a plaintext connection to a TLS port, which waits for a
#: handshake that never comes (``--timeout``).
DEFAULT_TIMEOUT = 10.0

PROG = "chat-client"

# ANSI styles for terminal mode: light touches only.
_RESET = "\x1b[0m"
_STYLE: dict[type, str] = {
    protocol.Welcome: "\x1b[36m",
    protocol.Joined: "\x1b[36m",
    protocol.Left: "\x1b[36m",
    protocol.Renamed: "\x1b[36m",
    protocol.Online: "\x1b[36m",
    protocol.Notice: "\x1b[36m",
    protocol.Disconnected: "\x1b[36m",
    protocol.Error: "\x1b[31m",
    protocol.Action: "\x1b[33m",
    protocol.Private: "\x1b[35m",
    protocol.PrivateEcho: "\x1b[35m",
}
_BOLD = "\x1b[1m"
_ROOM = "\x1b[32m"


def render(line: Line, colour: bool) -> str:
    """How one server line is shown: the server's own text, which is already
    readable (a room's line starts with its room), with colour by kind in
    terminal mode."""
    event = line.event
    if not colour or event is None:
        return line.text
    if isinstance(event, protocol.Message):
        return f"{_room(event.room)}{_BOLD}{event.sender}{_RESET}: {event.text}"
    style = _STYLE.get(type(event))
    if isinstance(event, protocol.Action) and style:
        return f"{_room(event.room)}{style}* {event.sender} {event.action}{_RESET}"
    return f"{style}{line.text}{_RESET}" if style else line.text


def _room(room: str | None) -> str:
    """A room line's room, coloured (nothing for the default room)."""
    return f"{_ROOM}{room}{_RESET} " if room else ""


def prompt_for(name: str, room: str | None) -> str:
    """The input prompt: the name, and the current room unless it is the default one."""
    if room == protocol.DEFAULT_ROOM:
        return f"{name}> "
    return f"{name} {room or '(no room)'}> "


@dataclass(frozen=True, slots=True)
class Options:
    """How to connect and log in (from the command line)."""

    host: str
    port: int
    name: str | None = None
    #: The TLS settings (``--tls``, ``--ca``, ``--insecure``); None: plaintext.
    tls: ssl.SSLContext | None = None
    #: Sent once when the server asks for a password (None: ask the person).
    password: str | None = None
    #: Seconds for the connection, and then for the server's first line.
    timeout: float = DEFAULT_TIMEOUT


def is_quit(text: str) -> bool:
    try:
        return isinstance(protocol.parse_client_line(text), protocol.Quit)
    except protocol.ProtocolError:
        return False


class ChatClient:
    """Connection state shared by both front ends.

    ``on_event`` runs in the receiving thread: it prints, answers the name
    prompt when ``--name`` was given, and decides the exit code.  The front
    end sends what the person types with :meth:`submit` and waits on
    ``done``.
    """

    def __init__(self, options: Options, *, interactive: bool) -> None:
        self.interactive = interactive
        self.conn = Connection(options.host, options.port, self.on_event, tls=options.tls)
        self._auto_name = options.name
        self._auto_password = options.password
        #: The server asked for a password and the person is to type it (the
        #: terminal hides the input and keeps it out of the history).
        self.expecting_password = False
        self.name_sent = options.name is not None
        self.name: str | None = None
        #: Where plain text goes: the room joined last (None: no room).
        self.room: str | None = protocol.DEFAULT_ROOM
        self.prompt_text = protocol.NAME_PROMPT + " "
        self.quitting = False
        #: Set once the first answer to our name arrives (welcome or refusal), or the connection ends.
        self.settled = threading.Event()
        #: Set when the connection is over and ``exit_code``/``status`` are final.
        self.done = threading.Event()
        #: Set on the server's first line (or the connection's end).
        self.greeted = threading.Event()
        self.exit_code = EXIT_OK
        #: One line for stderr explaining a non-zero exit, printed by the front end.
        self.status: str | None = None
        self._disconnect_reason: str | None = None
        self._print_lock = threading.Lock()
        #: Front-end hooks, called in the receiving thread after each event is handled.
        self.listeners: list[Callable[[ConnectionEvent], None]] = []

    # -- output --------------------------------------------------------------

    def show(self, text: str) -> None:
        with self._print_lock:
            # sys.stdout at call time: in terminal mode it is patch_stdout's proxy.
            print(text, file=sys.stdout, flush=True)

    # -- input ----------------------------------------------------------------

    def submit(self, text: str) -> None:
        """Send a line the person typed (or a script piped), verbatim."""
        if self.done.is_set():
            return
        if self.expecting_password:
            self.expecting_password = False
            self.settled.clear()  # the verdict on the login comes next
            self.conn.send_line(text)
            return
        if is_quit(text):
            self.quit(text)
            return
        if self.name is None:
            self.name_sent = True
            self.settled.clear()
        self.conn.send_line(text)

    def quit(self, line: str = "/quit") -> None:
        """Leave politely: ``/quit`` if registered, else just hang up."""
        self.quitting = True
        if self.name is not None and self.conn.send_line(line):
            return
        self.conn.close()

    def finish(self) -> int:
        """After a quit: wait for the server to close, then the exit code."""
        if not self.done.wait(QUIT_GRACE):
            self.conn.close()
            self.done.wait(QUIT_GRACE)
        return self.exit_code

    # -- events from the receiving thread ---------------------------------------

    def on_event(self, item: ConnectionEvent) -> None:
        self.greeted.set()
        if isinstance(item, Closed):
            self._closed(item.error)
        elif isinstance(item, Oversized):
            self.show(f"{PROG}: dropped a server line longer than {item.limit} bytes")
        else:
            self._line(item)
        for listener in self.listeners:
            listener(item)

    def _password_prompt(self, line: Line) -> None:
        """The server asks for the password: send the given one (once), or
        let the person (or the next piped line) answer."""
        if self._auto_password is not None:
            password, self._auto_password = self._auto_password, None
            self.conn.send_line(password)
            return
        self.expecting_password = True
        self.prompt_text = "password (not shown): "
        if not self.interactive:
            self.show(line.text)
        self.settled.set()

    def _line(self, line: Line) -> None:
        event = line.event
        if self.exit_code == EXIT_NAME_REFUSED:
            return  # closing: the prompt that follows a refusal is for nobody
        if isinstance(event, protocol.Prompt) and event.text == protocol.PASSWORD_PROMPT:
            self._password_prompt(line)
            return
        if isinstance(event, protocol.Prompt):
            self.expecting_password = False
            self.prompt_text = event.text + " "
            if self.exit_code == EXIT_NAME_REFUSED:
                return  # the server asks again after refusing the name; nobody is there to answer
            if self._auto_name is not None:
                name, self._auto_name = self._auto_name, None
                self.conn.send_line(name)
            elif not self.interactive:
                self.show(line.text)
            return
        if isinstance(event, protocol.Welcome):
            self.name = event.name
            self.prompt_text = prompt_for(event.name, self.room)
            self.settled.set()
        elif isinstance(event, protocol.Renamed) and event.old == self.name:
            self.name = event.new
            self.prompt_text = prompt_for(event.new, self.room)
        elif isinstance(event, protocol.Talking | protocol.Notice) and self.name is not None:
            self._room_changed(event)
        elif isinstance(event, protocol.Error) and self.name is None and self.name_sent:
            self.settled.set()
            if not self.interactive:
                self.exit_code = EXIT_NAME_REFUSED
                what = "login" if event.message.startswith(("Login failed", "Too many failed logins")) else "name"
                self.status = f"{PROG}: the server refused the {what}: {event.message}"
                self.conn.close()
                return
        elif isinstance(event, protocol.Disconnected) and not self.quitting:
            self._disconnect_reason = event.reason
        self.show(render(line, self.interactive))

    def _room_changed(self, event: protocol.Talking | protocol.Notice) -> None:
        """The server said which room is current now (or that there is none)."""
        assert self.name is not None
        if isinstance(event, protocol.Talking):
            self.room = event.room
        elif event.text == protocol.NO_ROOM:
            self.room = None
        else:
            return
        self.prompt_text = prompt_for(self.name, self.room)

    def _closed(self, error: str | None) -> None:
        if self.exit_code == EXIT_NAME_REFUSED:
            pass
        elif self._disconnect_reason is not None:
            self.exit_code = EXIT_CONNECTION
            self.status = f"{PROG}: disconnected by the server: {self._disconnect_reason}"
        elif not self.quitting or error is not None:
            self.exit_code = EXIT_CONNECTION
            detail = f" ({error})" if error else ""
            self.status = f"{PROG}: connection to {self.conn.address} lost{detail}"
        self.settled.set()
        self.done.set()


# --------------------------------------------------------------------------
# Front ends
# --------------------------------------------------------------------------

_EOF = None


def _read_stdin(lines: queue.Queue[str | None]) -> None:
    """Feed stdin lines into ``lines``, then ``_EOF``.  Uses ``os.read`` on
    the descriptor (no Python-level lock), so this daemon thread can still be
    blocked in it when the process exits."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    partial = ""
    try:
        while chunk := os.read(0, 65536):
            partial += decoder.decode(chunk)
            *complete, partial = partial.split("\n")
            for text in complete:
                lines.put(text.removesuffix("\r"))
    except OSError:
        pass
    partial += decoder.decode(b"", final=True)
    if partial:
        lines.put(partial.removesuffix("\r"))
    lines.put(_EOF)


def run_plain(client: ChatClient) -> int:
    """Scripted mode: stdin lines are sent; EOF means /quit."""
    lines: queue.Queue[str | None] = queue.Queue()

    def wake_on_close(item: ConnectionEvent) -> None:
        # The main thread waits on `lines`; the connection ending must wake it.
        if isinstance(item, Closed):
            lines.put(_EOF)

    client.listeners.append(wake_on_close)
    threading.Thread(target=_read_stdin, args=(lines,), name="stdin", daemon=True).start()
    if client.name_sent:
        client.settled.wait()
    while not client.done.is_set():
        text = lines.get()
        if client.done.is_set():
            break
        if text is _EOF:
            client.quit()
            break
        client.submit(text)
        if client.name is None:
            # The line was the name: wait for the verdict before sending more.
            client.settled.wait()
    return client.finish()


class _ConnectionEnded(Exception):
    """Ends the prompt when the connection is over."""


def prompt_session(client: ChatClient) -> PromptSession[str]:
    """The terminal's input line: hidden while the person types a password,
    which never enters the input history."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.history import InMemoryHistory

    class History(InMemoryHistory):
        def append_string(self, string: str) -> None:
            if not client.expecting_password:
                super().append_string(string)

    typing_password = Condition(lambda: client.expecting_password)
    return PromptSession(history=History(), is_password=typing_password)


def run_terminal(client: ChatClient) -> int:
    """Interactive mode: prompt_toolkit keeps the input line intact."""
    session = prompt_session(client)
    app = session.app

    def end_prompt() -> None:
        if app.is_running and app.future is not None and not app.future.done():
            app.exit(exception=_ConnectionEnded)

    def pre_run() -> None:
        # Closes the race where the connection ends just before a prompt starts.
        if client.done.is_set():
            end_prompt()

    def redraw(item: ConnectionEvent) -> None:
        # The prompt text may have changed; when the connection is over, end the prompt.
        loop = app.loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(end_prompt if client.done.is_set() else app.invalidate)
        except RuntimeError:
            pass  # the loop closed between the check and the call

    client.listeners.append(redraw)
    try:
        if client.name_sent:
            client.settled.wait()
        while not client.done.is_set():
            text = session.prompt(lambda: client.prompt_text, pre_run=pre_run)
            if text.strip() or client.expecting_password:  # an empty password: a guest
                client.submit(text)
            if client.quitting:
                break
    except (EOFError, KeyboardInterrupt):
        client.quit()
    except _ConnectionEnded:
        pass
    return client.finish()


def leave(client: ChatClient) -> int:
    """Ctrl-C outside the prompt: quit politely; a second Ctrl-C hangs up."""
    try:
        client.quit()
        return client.finish()
    except KeyboardInterrupt:
        client.conn.close()
        return EXIT_OK


def run(options: Options) -> int:
    """Connect and chat; the program's exit code."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    client = ChatClient(options, interactive=interactive)
    try:
        client.conn.open(options.timeout)
        greeted = client.greeted.wait(options.timeout)
    except ConnectionRefusedError:
        print(f"{PROG}: connection to {client.conn.address} refused (is the server running?)", file=sys.stderr)
        return EXIT_CONNECTION
    except TlsError as exc:
        why = exc.strerror or str(exc)
        hint = " (trust the server's CA with --ca FILE)" if "issuer certificate" in why else ""
        print(f"{PROG}: TLS with {client.conn.address} failed: {why}{hint}", file=sys.stderr)
        return EXIT_CONNECTION
    except OSError as exc:
        print(f"{PROG}: cannot connect to {client.conn.address}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONNECTION
    except KeyboardInterrupt:
        # The receiving thread may have registered already (the welcome shown)
        # while this thread had not yet woken from the wait: leave politely then.
        if client.greeted.is_set():
            return leave(client)
        client.conn.close()
        return EXIT_OK
    if not greeted:
        tls = "" if options.tls else "; if it is a TLS port, use --tls"
        print(f"{PROG}: no answer from {client.conn.address} in {options.timeout:g} s{tls}", file=sys.stderr)
        client.conn.close()
        return EXIT_CONNECTION
    try:
        if interactive:
            from prompt_toolkit.patch_stdout import patch_stdout

            with patch_stdout(raw=True):
                code = run_terminal(client)
        else:
            code = run_plain(client)
    except KeyboardInterrupt:
        code = leave(client)
    if client.status:
        print(client.status, file=sys.stderr)
    return code
