"""The one error of the backplane, importable without Redis installed."""


class BackplaneError(Exception):
    """The cluster cannot be joined; the message says why, in one line."""
