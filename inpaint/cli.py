"""Shared plumbing for the ``python -m …`` entry points."""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from inpaint.errors import FacefillError


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run ``main`` and exit with its code; user errors become one line on stderr, not a traceback."""
    try:
        code = main(argv)
    except FacefillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(int(code or 0))
