"""Transitional re-export: the status contract lives in :mod:`inpaint.contract`."""

from inpaint.contract import (  # noqa: F401
    EXIT_BAD_INPUT, EXIT_FAILED, EXIT_FINISHED, EXIT_STOPPED, STATE_OF_EXIT, STATUS_FILE, Outcome, read_status, write_status,
)
