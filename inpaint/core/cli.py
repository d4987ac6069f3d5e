"""Shared plumbing for the ``python -m …`` entry points: the one-line error convention and the one
argument parser every command uses.

Kept free of torch (standard library only): ``--help`` and a mistyped option must answer in a
fraction of a second, before any command loads its models.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

from inpaint.core.errors import FacefillError

_CHOICE = re.compile(r"invalid choice: '?(?P<given>[^'(]*?)'? \(choose from (?P<choices>.*)\)$")


class OneLineParser(argparse.ArgumentParser):
    """``argparse`` with facefill's error convention: one line on stderr, exit 2, naming the fix.

    argparse prints the whole usage block and the bare complaint; in a terminal the fix for a typo
    is usually the closest real option (``--chekpoint`` → ``--checkpoint``), and in a batch job's
    log one line is easier to spot. Subparsers inherit the class.
    """

    def parse_known_args(self, args=None, namespace=None):
        # Kept for error(): a mistyped *required* option is reported as a missing one, and the
        # typo itself is only in the command line.
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.with_suggestion(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)

    def with_suggestion(self, message: str) -> str:
        """``message`` plus "did you mean …?" for a mistyped option or an invalid choice."""
        found = _CHOICE.search(message)
        if found:
            choices = [c.strip().strip("'") for c in found.group("choices").split(",")]
            close = difflib.get_close_matches(found.group("given"), choices, n=1, cutoff=0.5)
            return f"{message}: did you mean {close[0]}?" if close else message
        known = sorted(set(self._all_option_strings()))
        unrecognized = message.startswith("unrecognized arguments: ")
        tokens = message[len("unrecognized arguments: ") :].split() if unrecognized else getattr(self, "_argv", [])
        pairs = []
        for token in tokens:
            option = token.split("=", 1)[0]
            if not option.startswith("--") or any(k.startswith(option) for k in known):  # known, or an abbreviation
                continue
            close = difflib.get_close_matches(option, known, n=1, cutoff=0.6)
            if close:
                pairs.append((option, close[0]))
        if not pairs:
            return message
        if len(pairs) == 1:
            hint = f"did you mean {pairs[0][1]}?"
        else:
            hint = "did you mean " + ", ".join(f"{match} for {typo}" for typo, match in pairs) + "?"
        if unrecognized:
            return f"{message}: {hint}"
        return f"{message}; {', '.join(typo for typo, _ in pairs)} is not an option: {hint}"

    def _all_option_strings(self) -> Iterator[str]:
        """Every ``--option`` of this parser and of its subcommands."""
        for action in self._actions:
            yield from (s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001 - argparse has no public walk
                for sub in action.choices.values():
                    if isinstance(sub, OneLineParser):
                        yield from sub._all_option_strings()


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


@contextlib.contextmanager
def warnings_as_lines(*categories: type[Warning]) -> Iterator[None]:
    """Show warnings of ``categories`` raised inside as one ``warning: …`` line each on stderr, the
    way the commands report everything else (Python's format takes two lines and a source line);
    other warnings are shown as Python would."""
    with warnings.catch_warnings(record=True) as caught:
        for category in categories:
            warnings.simplefilter("always", category)
        yield
    for w in caught:
        if issubclass(w.category, categories):
            print(f"warning: {w.message}", file=sys.stderr, flush=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
