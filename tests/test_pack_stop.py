"""SIGTERM stops a pack even when its handler runs where Python drops exceptions.

A signal handler runs at whatever bytecode the main thread is at; inside a ``__del__`` or a
weakref callback the exception it raises is printed as "Exception ignored in ..." and lost.
CI caught exactly that: the packer took SIGTERM during a garbage collection, went on and
exited 0 with a complete index.json, so a grid job would have called a stopped pack finished.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from data_prep.stop import PackStopped, stop_on_sigterm


class _SigtermOnCollect:
    """Sends SIGTERM from its finaliser and runs Python code there, so the handler fires inside it."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # bytecode boundaries: the handler runs in here
            pass


def test_sigterm_swallowed_inside_a_finaliser_still_stops_at_the_next_check(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The lost exception prints no traceback (the stop's one line comes later, from the check);
    anything else a finaliser drops still reaches the hook that was there before."""
    dropped: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_value))
    with stop_on_sigterm(tmp_path) as stop:
        _SigtermOnCollect()  # collected at once: the handler's exception is "ignored"
        assert dropped == []  # silenced: no "Exception ignored ... Traceback" on a grid job's stderr
        with pytest.raises(PackStopped, match="SIGTERM.*resume"):
            stop.check()
        _RaisesOnCollect()
        assert [type(e) for e in dropped] == [ValueError]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the previous handler is back
    _RaisesOnCollect()
    assert [type(e) for e in dropped] == [ValueError, ValueError]  # and the previous hook too


class _RaisesOnCollect:
    def __del__(self) -> None:
        raise ValueError("not a stop")


def test_check_passes_until_sigterm_arrives(tmp_path: Path) -> None:
    with stop_on_sigterm(tmp_path) as stop:
        stop.check()
        with pytest.raises(PackStopped):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)
        with pytest.raises(PackStopped):  # and it stays stopped: later checks refuse too
            stop.check()


def test_a_pack_whose_sigterm_was_swallowed_exits_75_without_index(data_root: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The packer itself: the first batch of decoded faces arrives with a lost SIGTERM."""
    import data_prep.state
    from data_prep.pack import main
    from inpaint.core.contract import EXIT_STOPPED
    from inpaint.core.shard_format import INDEX_NAME

    real_map = data_prep.state.ordered_map

    def map_then_lose_a_sigterm(*args, **kwargs):
        results = real_map(*args, **kwargs)
        yield next(results)
        _SigtermOnCollect()
        yield from results

    monkeypatch.setattr(data_prep.state, "ordered_map", map_then_lose_a_sigterm)
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    out = tmp_path / "out"
    with pytest.raises(PackStopped) as stopped:
        main(["--faces", str(data_root / "faces"), "--masks", "generate", "--mask-count", "24", "--out", str(out),
              "--size", "32", "--limit", "300", "--shard-size", "100", "--workers", "1", "--min-per-cell", "1"])
    assert stopped.value.exit_code == EXIT_STOPPED
    assert not (out / INDEX_NAME).exists()
    assert not list(out.glob("*.tmp-*")) and not (out / ".pack.lock").exists()


def test_a_stopped_pack_removes_every_temporary_of_its_own(data_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop that lands between a temporary's creation and the code that would abort it (here:
    while the first shard is sealed) still leaves no half-written file."""
    import data_prep.shards
    from data_prep.pack import main

    real_seal = data_prep.shards.ShardWriter.seal

    def seal_then_stop(self, *args, **kwargs):
        (self.final.parent / f"{self.final.name}.tmp-stray").write_bytes(b"half")  # as if mid-write
        real_seal(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.0)

    monkeypatch.setattr(data_prep.shards.ShardWriter, "seal", seal_then_stop)
    out = tmp_path / "out"
    with pytest.raises(PackStopped):
        main(["--faces", str(data_root / "faces"), "--masks", "generate", "--mask-count", "24", "--out", str(out),
              "--size", "32", "--limit", "300", "--shard-size", "100", "--workers", "1", "--min-per-cell", "1"])
    assert not list(out.glob("*.tmp-*")) and not (out / ".pack.lock").exists()
