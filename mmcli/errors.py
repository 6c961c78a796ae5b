"""Exceptions that the CLI turns into a clean message and an exit code (no traceback)."""


class MMError(Exception):
    """Base error: the message is shown to the user as is."""

    exit_code = 1


class UsageError(MMError):
    """Bad arguments, config keys or values (exit 2)."""

    exit_code = 2


class DataError(MMError):
    """The data cannot be used: missing file, too many bad rows, unreadable CSV (exit 1)."""

    exit_code = 1


class TooLarge(DataError):
    """An input past a size limit (an image with too many pixels): the server answers 413."""
