"""Follow a growing log file line by line, as ``tail -F`` does, from where it stood when asked.

The local executor streams the trainer's ``train.log`` to the terminal with it: the run dir keeps
one log over every part and every submission, so a follower starts at the file's end (a rerun
does not replay the earlier run's lines) and prints only whole lines.
"""

from __future__ import annotations

from pathlib import Path


class LogTail:
    """``new_lines()`` returns the complete lines appended since the last call."""

    def __init__(self, path: Path | str, from_start: bool = False) -> None:
        self.path = Path(path)
        self.offset = 0 if from_start else self._size()
        self._partial = b""

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def new_lines(self) -> list[str]:
        size = self._size()
        if size < self.offset:  # truncated or replaced: read the new file from its start
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(size - self.offset)
        except OSError:
            return []
        self.offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [line.decode("utf-8", errors="replace").rstrip("\r") for line in lines]
