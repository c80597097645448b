"""Fixtures shared by the server's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ChatTestClient


@pytest.fixture
def clients() -> Iterator[list[ChatTestClient]]:
    """The clients a test opens (append them); all closed when it ends."""
    opened: list[ChatTestClient] = []
    try:
        yield opened
    finally:
        for c in opened:
            c.close()
