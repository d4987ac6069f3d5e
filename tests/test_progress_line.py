"""The progress line of evaluation and predict: readable in a batch-job log, in place on a terminal."""

from __future__ import annotations

import io

from inpaint.core.progress_line import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_it_prints_about_every_tenth_and_the_end() -> None:
    log = io.StringIO()
    progress = ProgressLine("scoring", 1000, "pairs", stream=log)
    for done in range(0, 1001):
        progress.update(done)
    lines = log.getvalue().splitlines()
    assert len(lines) == 11 and all(line.startswith("scoring ") for line in lines)
    assert lines[0].startswith("scoring 0/1000 (0 %)") and lines[-1].startswith("scoring 1000/1000 (100 %)")
    assert "pairs/s" in lines[-1]


def test_on_a_terminal_it_rewrites_one_line_and_ends_it() -> None:
    tty = Terminal()
    progress = ProgressLine("inpainting", 3, "photos", stream=tty)
    for done in range(4):
        progress.update(done)
    text = tty.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1


def test_disabled_prints_nothing() -> None:
    quiet = io.StringIO()
    progress = ProgressLine("x", 5, stream=quiet, enabled=False)
    progress.update(5)
    assert quiet.getvalue() == ""
