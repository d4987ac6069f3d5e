"""Errors that mean "the user gave us something wrong", as opposed to bugs.

Every command-line entry point turns these into one line on stderr and a non-zero exit
(see :func:`inpaint.core.cli.run_cli`), so users see the file at fault and the fix instead of a
traceback.
"""


class FacefillError(Exception):
    """Base class: the message is a complete one-line explanation naming the file and the fix."""

    exit_code = 2


class DataError(FacefillError):
    """Missing, corrupt or inconsistent input data (images, masks, shards, index.json)."""


class ConfigError(FacefillError):
    """A configuration file or option that cannot be used as given."""


class CheckpointError(FacefillError):
    """No usable checkpoint or weights file where one was expected."""
