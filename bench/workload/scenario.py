"""Workload files: named scenarios shipped in ``bench/workload/scenarios/``, or a user's own.

A scenario is a TOML file (read with :mod:`tomllib`); every key is optional
and its default is the one-room run's::

    description = "what this workload is"
    seed = 1                    # every random draw of the plan and the timetable

    [rooms]
    count = 500                 # R rooms (personal rooms not counted)
    sizes = "zipf:1.0"          # fixed | fixed:M | uniform:A-B | zipf:S
    per_client = 3              # rooms each client is in
    personal = false            # also a room of its own per client

    [senders]
    per_room = 1                # senders per room (in one room: the senders)
    skew = "none"               # none | zipf:S: the streams' shares of the rate

    [messages]
    payload = 64                # 64 | "uniform:A-B" | "64:80,1024:15,16384:5"
    arrivals = "constant"       # constant | poisson
    rate = "total"              # total | per-room: what --rate means

:func:`load` takes a shipped scenario's name (:func:`names`) or a path.
Anything it cannot use -- a missing file, bad TOML, an unknown table or
key, a value of the wrong type or out of range -- is a
:class:`~bench.workload.model.WorkloadError` with a one-line reason that
names the file and the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from bench.workload.model import (
    ARRIVALS,
    RATE_MODES,
    Workload,
    WorkloadError,
    choice,
    payload_sizes,
    room_sizes,
    skew,
)

#: File suffix of a scenario.
SUFFIX = ".toml"
#: Largest scenario file read (a workload is a few lines).
MAX_FILE_BYTES = 64 * 1024


def _scenario_dir() -> Any:
    return resources.files("bench.workload").joinpath("scenarios")


def names() -> list[str]:
    """The shipped scenarios' names."""
    return sorted(p.name[: -len(SUFFIX)] for p in _scenario_dir().iterdir() if p.name.endswith(SUFFIX))


def load(spec: str) -> Workload:
    """The workload of a shipped scenario (by name) or of a file (by path)."""
    spec = spec.strip()
    shipped = _scenario_dir().joinpath(spec + SUFFIX)
    if "/" not in spec and not spec.endswith(SUFFIX) and shipped.is_file():
        return parse(shipped.read_text(encoding="utf-8"), spec)
    path = Path(spec)
    if not path.is_file():
        raise WorkloadError(f"no scenario {spec!r}: give one of {', '.join(names())} or the path of a {SUFFIX} file")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise WorkloadError(f"{spec}: over {MAX_FILE_BYTES // 1024} KiB, not a workload file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{spec}: cannot read it ({exc})") from None
    return parse(text, spec)


def _text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError("a text or number")
    return str(value)


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("a whole number")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("true or false")
    return value


#: table -> key -> (Workload field, how to read the value)
_KEYS: dict[str, dict[str, tuple[str, Callable[[object], object]]]] = {
    "": {
        "description": ("description", _text),
        "seed": ("seed", _whole),
    },
    "rooms": {
        "count": ("rooms", _whole),
        "sizes": ("sizes", lambda v: room_sizes(_text(v))),
        "per_client": ("per_client", _whole),
        "personal": ("personal", _flag),
    },
    "senders": {
        "per_room": ("senders_per_room", _whole),
        "skew": ("publisher_skew", lambda v: skew(_text(v))),
    },
    "messages": {
        "payload": ("payload", lambda v: payload_sizes(_text(v))),
        "arrivals": ("arrivals", lambda v: choice(_text(v), ARRIVALS, "arrivals")),
        "rate": ("rate_mode", lambda v: choice(_text(v), RATE_MODES, "rate")),
    },
}


def parse(text: str, name: str) -> Workload:
    """A scenario file's text as a :class:`Workload` (``name``: for the errors and the document)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError(f"{name}: not valid TOML ({exc})") from None
    fields: dict[str, object] = {}
    for table, value in data.items():
        if table in _KEYS and table:
            if not isinstance(value, Mapping):
                raise WorkloadError(f"{name}: [{table}] must be a table")
            _read(name, table, value, fields)
        elif table in _KEYS[""]:
            _read(name, "", {table: value}, fields)
        else:
            known = [k for k in _KEYS[""]] + [f"[{t}]" for t in _KEYS if t]
            raise WorkloadError(f"{name}: unknown key {table!r} (known: {', '.join(known)})")
    try:
        return Workload(name=name, **fields)  # type: ignore[arg-type]
    except WorkloadError as exc:
        raise WorkloadError(f"{name}: {exc}") from None


def _read(name: str, table: str, values: Mapping[str, object], fields: dict[str, object]) -> None:
    keys = _KEYS[table]
    for key, value in values.items():
        where = f"{table}.{key}" if table else key
        entry = keys.get(key)
        if entry is None:
            raise WorkloadError(f"{name}: unknown key {where!r} (known in [{table}]: {', '.join(keys)})")
        field, read = entry
        try:
            fields[field] = read(value)
        except TypeError as exc:
            raise WorkloadError(f"{name}: {where} must be {exc}, got {value!r}") from None
        except WorkloadError as exc:
            raise WorkloadError(f"{name}: {where}: {exc}") from None
