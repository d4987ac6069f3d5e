"""The job layer's records in a run dir, typed: ``chain.json`` (:class:`ChainRecord`, its states
:class:`ChainState`) and ``owner.json`` (:class:`OwnerRecord`).

Each is a frozen dataclass read with ``from_dict`` and written with ``to_dict``, which gives the
JSON the files have always had, key for key and in the same order: a run dir written by an older
version is read as it is, and one written now is read by it. Keys a record does not know are kept
(``extra``) and written back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ChainState(str, Enum):
    """The chain's latest decision; the value is what ``chain.json`` says."""

    SUBMITTED = "submitted"
    RUNNING = "running"        # a training part runs (next_job_id: the one carrying the chain on)
    EVALUATING = "evaluating"  # the evaluation part runs
    DONE = "done"
    EVALUATED = "evaluated"
    STOPPED = "stopped"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def ended(self) -> bool:
        """Nothing of the chain runs or is submitted any more."""
        return self in ENDED

    @property
    def finished(self) -> bool:
        """The chain ended by reaching its goal (training, and the evaluation when asked for)."""
        return self in (ChainState.DONE, ChainState.EVALUATED)


ENDED = frozenset({ChainState.DONE, ChainState.EVALUATED, ChainState.STOPPED, ChainState.CANCELLED})


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class ChainRecord:
    """``chain.json``: ``{state, reason, part, exit_code, job_id, executor, chain?, …extra, time}``."""

    state: ChainState
    reason: str = ""
    part: int = 0
    exit_code: int | None = None
    job_id: str | None = None
    executor: str | None = None
    chain: str | None = None
    time: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # next_job_id while running/evaluating, …

    @property
    def next_job_id(self) -> str | None:
        return _str_or_none(self.extra.get("next_job_id"))

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "reason": self.reason, "part": self.part, "exit_code": self.exit_code,
                "job_id": self.job_id, "executor": self.executor, **({"chain": self.chain} if self.chain else {}),
                **self.extra, "time": self.time}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ChainRecord":
        """A record from ``chain.json``'s object; ValueError for a state no chain has."""
        known = {"state", "reason", "part", "exit_code", "job_id", "executor", "chain", "time"}
        return cls(state=ChainState(data.get("state")), reason=str(data.get("reason") or ""),
                   part=_int_or_none(data.get("part")) or 0, exit_code=_int_or_none(data.get("exit_code")),
                   job_id=_str_or_none(data.get("job_id")), executor=_str_or_none(data.get("executor")),
                   chain=_str_or_none(data.get("chain")) or None, time=str(data.get("time") or ""),
                   extra={k: v for k, v in data.items() if k not in known})


@dataclass(frozen=True)
class OwnerRecord:
    """``owner.json``: ``{executor, job_id, pid, host, time}``: the job (or local process) that owns
    the run dir."""

    executor: str | None
    job_id: str
    pid: int | None = None
    host: str | None = None
    time: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"executor": self.executor, "job_id": self.job_id, "pid": self.pid, "host": self.host,
                "time": self.time, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OwnerRecord":
        known = {"executor", "job_id", "pid", "host", "time"}
        return cls(executor=_str_or_none(data.get("executor")), job_id=str(data.get("job_id", "")),
                   pid=_int_or_none(data.get("pid")), host=_str_or_none(data.get("host")),
                   time=_str_or_none(data.get("time")), extra={k: v for k, v in data.items() if k not in known})
