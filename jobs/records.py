"""The job layer's records in a run dir, typed: ``chain.json`` (:class:`ChainRecord`, its states
:class:`ChainState`), ``owner.json`` (:class:`OwnerRecord`) and the parts the ledger's events fold
into (:class:`PartRecord`).

Each is a frozen dataclass read with ``from_dict`` and written (or shown) with ``to_dict``, which
gives the JSON the files have always had, key for key and in the same order: a run dir written by
an older version is read as it is, and one written now is read by it. Keys a record does not know
are kept (``extra``) and written back. The ledger's lines themselves stay events (``jobs.ledger``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ChainState(str, Enum):
    """The chain's latest decision; the value is what ``chain.json`` says."""

    SUBMITTED = "submitted"
    RUNNING = "running"  # a training part runs (next_job_id: the one carrying the chain on)
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
        return {
            "state": self.state.value,
            "reason": self.reason,
            "part": self.part,
            "exit_code": self.exit_code,
            "job_id": self.job_id,
            "executor": self.executor,
            **({"chain": self.chain} if self.chain else {}),
            **self.extra,
            "time": self.time,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChainRecord:
        """A record from ``chain.json``'s object; ValueError for a state no chain has."""
        known = {"state", "reason", "part", "exit_code", "job_id", "executor", "chain", "time"}
        return cls(
            state=ChainState(data.get("state")),
            reason=str(data.get("reason") or ""),
            part=_int_or_none(data.get("part")) or 0,
            exit_code=_int_or_none(data.get("exit_code")),
            job_id=_str_or_none(data.get("job_id")),
            executor=_str_or_none(data.get("executor")),
            chain=_str_or_none(data.get("chain")) or None,
            time=str(data.get("time") or ""),
            extra={k: v for k, v in data.items() if k not in known},
        )


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
        return {
            "executor": self.executor,
            "job_id": self.job_id,
            "pid": self.pid,
            "host": self.host,
            "time": self.time,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OwnerRecord:
        known = {"executor", "job_id", "pid", "host", "time"}
        return cls(
            executor=_str_or_none(data.get("executor")),
            job_id=str(data.get("job_id", "")),
            pid=_int_or_none(data.get("pid")),
            host=_str_or_none(data.get("host")),
            time=_str_or_none(data.get("time")),
            extra={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class PartRecord:
    """One part of one chain, folded from its ledger events (``jobs.ledger.read_parts``): who ran
    it, when, and how it ended. A field no event gave is None; ``ended`` says whether the part
    recorded its end. A part that started more than once describes its latest run; the earlier
    ones are ``attempts`` (same fields, oldest first). ``current`` is where a running training
    part is now (``jobs.status`` adds it)."""

    part: int
    chain: str
    job_id: str | None = None
    executor: str | None = None
    kind: str | None = None
    host: str | None = None
    pid: int | None = None
    start_step: int | None = None
    deadline: float | None = None
    exit_code: int | None = None
    step: int | None = None
    action: str | None = None
    reason: str | None = None
    status_line: str | None = None
    interrupted: str | None = None
    submit_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    attempts: tuple[PartRecord, ...] = ()
    current: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        """The part recorded its end (every end event carries the exit code)."""
        return self.end_time is not None

    @property
    def training(self) -> bool:
        return (self.kind or "train") == "train"

    def to_dict(self) -> dict[str, Any]:
        """The part as ``jobs.status --json`` shows it: the fields its events gave."""
        out: dict[str, Any] = {"part": self.part, "chain": self.chain}
        for name in _PART_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.attempts:
            out["attempts"] = [{k: v for k, v in a.to_dict().items() if k not in ("part", "chain")} for a in self.attempts]
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartRecord:
        part, chain = int(data["part"]), str(data["chain"])
        attempts = tuple(cls.from_dict({**a, "part": part, "chain": chain}) for a in data.get("attempts") or ())
        known = {"part", "chain", "attempts", *_PART_FIELDS}
        values = {name: data.get(name) for name in _PART_FIELDS}
        if values["job_id"] is not None:
            values["job_id"] = str(values["job_id"])
        return cls(part=part, chain=chain, attempts=attempts, **values, extra={k: v for k, v in data.items() if k not in known})


_PART_FIELDS = (
    "job_id",
    "executor",
    "kind",
    "host",
    "pid",
    "start_step",
    "deadline",
    "exit_code",
    "step",
    "action",
    "reason",
    "status_line",
    "interrupted",
    "submit_time",
    "start_time",
    "end_time",
    "current",
)
