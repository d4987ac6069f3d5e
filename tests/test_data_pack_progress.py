"""``python -m data_prep.pack`` on a terminal shows where it is: one line on stderr,
rewritten in place, with the stage, files done of the stage's total and the time since the start;
in a log or a pipe it prints nothing of it. A real pack in a subprocess whose stderr is a pty."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _pack_args(data_root: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "data_prep.pack", "--faces", str(data_root / "faces"), "--masks",
            str(data_root / "masks"), "--out", str(out), "--size", "32", "--limit", "40", "--mask-limit", "60",
            "--test-masks-per-bucket", "2", "--min-per-cell", "1", "--workers", "1"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_on_a_terminal_one_line_shows_stage_count_and_elapsed_time(data_root: Path, tmp_path: Path) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(_pack_args(data_root, tmp_path / "tty"), stdout=subprocess.PIPE, stderr=slave,
                            env=_env(), cwd=tmp_path)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:  # the pty must be read while the packer writes, or it blocks
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the packer closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(timeout=180)
    reader.join(timeout=10)
    os.close(master)
    assert proc.returncode == 0
    tty = b"".join(chunks).decode()
    updates = [u for u in re.split(r"[\r\n]", tty) if u.strip()]
    stages = {m.group(1) for u in updates for m in [re.match(r"packing (.+?): \d+/\d+ \S+, \d+ s", u.strip())] if m}
    assert {"faces train", "faces test", "masks"} <= stages, updates
    assert any(re.match(r"packing faces train: (\d+)/\1 ", u.strip()) for u in updates)  # each stage ends complete
    assert "\r" in tty and not updates[-1].startswith("packing")  # rewritten in place, then cleared for the summary
    assert out.decode().strip().splitlines()[-1] == str(tmp_path / "tty")  # stdout unchanged: the folder last


def test_in_a_log_or_a_pipe_there_is_no_progress_line(data_root: Path, tmp_path: Path) -> None:
    proc = subprocess.run(_pack_args(data_root, tmp_path / "pipe"), capture_output=True, text=True, env=_env(),
                          cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "packing" not in proc.stderr and "\r" not in proc.stderr
    assert all(line.startswith("warning: ") for line in proc.stderr.splitlines())
