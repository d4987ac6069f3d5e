"""``chain.json``, ``owner.json`` and ``spec.json`` as typed records: the files keep the JSON they always had."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from inpaint.core.errors import ConfigError
from jobs import lock
from jobs.chain_state import read_chain_state, write_chain_state
from jobs.paths import SPEC, under
from jobs.records import ENDED, ChainRecord, ChainState, OwnerRecord
from jobs.spec import JobSpec

#: spec.json as the code before the records wrote it (a PBS run with a profile, a local run without).
OLD_SPECS = Path(__file__).resolve().parent / "golden" / "spec-before-records"
REPO = Path(__file__).resolve().parents[1]

# As the code before the records wrote them (key order included).
OLD_CHAIN = ('{"state": "running", "reason": "trainer stopped; part 2 is 102.vm", "part": 1, "exit_code": 75, '
             '"job_id": "101.vm", "executor": "pbs", "chain": "20260101T000000-abc123", "next_job_id": "102.vm", '
             '"time": "2026-01-01T00:00:00Z"}')
OLD_OWNER = '{"executor": "local", "job_id": "4242", "pid": 4242, "host": "node1", "time": "2026-01-01T00:00:00Z"}'


def test_an_old_chain_record_reads_and_writes_back_byte_for_byte(tmp_path):
    record = ChainRecord.from_dict(json.loads(OLD_CHAIN))
    assert record.state is ChainState.RUNNING and record.next_job_id == "102.vm" and record.part == 1
    assert json.dumps(record.to_dict()) == OLD_CHAIN
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "chain.json").write_text(OLD_CHAIN)
    assert read_chain_state(tmp_path) == record


def test_written_chain_json_has_the_old_keys_in_the_old_order(tmp_path):
    write_chain_state(tmp_path, ChainState.STOPPED, "why", 2, 1, "7", "slurm", chain="c1", next_job_id=None)
    data = json.loads((tmp_path / "jobs" / "chain.json").read_text())
    assert list(data) == ["state", "reason", "part", "exit_code", "job_id", "executor", "chain", "next_job_id", "time"]
    assert data["state"] == "stopped"
    write_chain_state(tmp_path, "submitted", "first part submitted")  # a state's value is accepted too
    assert list(json.loads((tmp_path / "jobs" / "chain.json").read_text())) == [
        "state", "reason", "part", "exit_code", "job_id", "executor", "time"]


def test_chain_states_are_strings_and_know_which_have_ended(tmp_path):
    assert ChainState.DONE == "done" and json.dumps(ChainState.CANCELLED) == '"cancelled"'
    assert {s.value for s in ENDED} == {"done", "evaluated", "stopped", "cancelled"}
    assert not ChainState.RUNNING.ended and ChainState.EVALUATED.finished and not ChainState.STOPPED.finished
    (tmp_path / "jobs").mkdir()
    for text in ("", "[]", '{"state": "exploded"}'):
        (tmp_path / "jobs" / "chain.json").write_text(text)
        assert read_chain_state(tmp_path) is None, text


def test_an_old_owner_record_reads_and_writes_back_byte_for_byte(tmp_path):
    record = OwnerRecord.from_dict(json.loads(OLD_OWNER))
    assert (record.executor, record.job_id, record.pid, record.host) == ("local", "4242", 4242, "node1")
    assert json.dumps(record.to_dict()) == OLD_OWNER
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "owner.json").write_text(OLD_OWNER)
    assert lock.read_owner(tmp_path) == record
    lock.write_owner(tmp_path, "pbs", "9.vm")
    assert list(json.loads((tmp_path / "jobs" / "owner.json").read_text())) == ["executor", "job_id", "pid", "host", "time"]


def test_ledger_parts_are_records_and_an_earlier_run_of_a_part_is_an_attempt(tmp_path):
    from jobs import ledger

    ledger.append_event(tmp_path, "submit", 1, chain="c1", job_id=7, executor="slurm", kind="train")
    ledger.append_event(tmp_path, "start", 1, chain="c1", job_id="7", executor="slurm", kind="train", pid=None)
    ledger.append_event(tmp_path, "end", 1, chain="c1", exit_code=75, step=10, action="continue", reason="r",
                        kind="train", interrupted="requeued")
    ledger.append_event(tmp_path, "start", 1, chain="c1", job_id="7", executor="slurm", kind="train", host="b")
    (part,) = ledger.read_parts(tmp_path)
    assert (part.job_id, part.host, part.ended, part.training) == ("7", "b", False, True)
    (attempt,) = part.attempts
    assert (attempt.ended, attempt.step, attempt.interrupted) == (True, 10, "requeued")
    shown = part.to_dict()
    assert shown["attempts"][0]["exit_code"] == 75 and "part" not in shown["attempts"][0] and "exit_code" not in shown
    assert type(part).from_dict(shown) == part


# --- spec.json ------------------------------------------------------------------------------


def _old_spec(tmp_path: Path, executor: str) -> tuple[Path, dict]:
    """An old spec.json placed in a run dir of this test (a spec names the run dir it is for)."""
    values = json.loads((OLD_SPECS / f"spec-{executor}.json").read_text())
    run_dir = tmp_path / "run"
    values["run_dir"] = str(run_dir)
    path = under(run_dir, SPEC)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(values, indent=1, sort_keys=True))
    return run_dir, values


def _within(old: object, new: object) -> bool:
    """Every key of ``old`` is in ``new`` with the same value (mappings compared key by key)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _within(v, new[k]) for k, v in old.items())
    return old == new


@pytest.mark.parametrize("executor", ["pbs", "local"])
def test_an_old_spec_json_reads_and_writes_back_the_same_json(tmp_path, executor):
    run_dir, old = _old_spec(tmp_path, executor)
    spec = JobSpec.load(run_dir)
    assert spec.executor == executor and spec.chain_id == "c0ffee" and isinstance(spec.train_args, tuple)
    spec.save()
    new = json.loads(under(run_dir, SPEC).read_text())
    assert new.keys() == old.keys()
    assert {k: v for k, v in new.items() if k != "profile"} == {k: v for k, v in old.items() if k != "profile"}
    assert _within(old["profile"], new["profile"])  # the profile: its plain mapping, new keys at their defaults
    assert JobSpec.load(run_dir) == spec


def test_the_saved_profile_is_a_typed_record(tmp_path):
    spec = JobSpec.load(_old_spec(tmp_path, "pbs")[0])
    assert (spec.profile.name, spec.profile.scratch.cleanup, spec.profile.multinode_launcher) == (
        "metacentrum", "clean_scratch", "pbsdsh")
    assert spec.profile.queues["gpu_long"].max_walltime == "336:00:00" and spec.profile.network_interface is None
    assert JobSpec.load(_old_spec(tmp_path / "local", "local")[0]).profile is None  # "profile": {} (no site)


@pytest.mark.parametrize("change,needle", [
    ({"bogus": 1}, "unknown key 'bogus': use one of run_dir, config"),
    ({"walltime_s": "1h"}, "walltime_s = '1h' must be an integer"),
    ({"train_args": "--fast"}, "train_args = '--fast' must be a list of strings"),
    ({"profile": {"name": "x", "scheduler": "pbs", "queue": {}}}, "unknown key 'queue': use one of name, scheduler"),
])
def test_a_bad_spec_json_is_one_line_naming_the_file(tmp_path, change, needle):
    run_dir, values = _old_spec(tmp_path, "pbs")
    under(run_dir, SPEC).write_text(json.dumps({**values, **change}))
    with pytest.raises(ConfigError, match=needle) as caught:
        JobSpec.load(run_dir)
    assert str(caught.value).startswith(str(under(run_dir, SPEC))) and "\n" not in str(caught.value)


def test_a_spec_json_missing_a_key_says_which(tmp_path):
    run_dir, values = _old_spec(tmp_path, "pbs")
    del values["walltime_s"]
    under(run_dir, SPEC).write_text(json.dumps(values))
    with pytest.raises(ConfigError, match="spec.json: missing key.s. walltime_s"):
        JobSpec.load(run_dir)


def test_a_spec_is_frozen_and_changed_by_replace(tmp_path):
    spec = JobSpec.load(_old_spec(tmp_path, "pbs")[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.chain_id = "other"  # type: ignore[misc]
    assert dataclasses.replace(spec, chain_id="other").chain_id == "other" and spec.chain_id == "c0ffee"
    assert dataclasses.replace(spec, directives=["-m ae"]).directives == ("-m ae",)  # lists frozen as read ones


def test_a_part_reads_its_spec_without_yaml(tmp_path):
    """Parts reload spec.json on the node's plain python3, where PyYAML may be missing."""
    run_dir, _ = _old_spec(tmp_path, "pbs")
    code = ("import sys; sys.modules['yaml'] = None\nfrom jobs.spec import JobSpec\n"
            f"print(JobSpec.load({str(run_dir)!r}).profile.name)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and done.stdout.strip() == "metacentrum", done.stderr
