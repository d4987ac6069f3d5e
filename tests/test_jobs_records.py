"""``chain.json`` and ``owner.json`` as typed records: the files keep the JSON they always had."""

from __future__ import annotations

import json

from jobs import lock
from jobs.chain_state import read_chain_state, write_chain_state
from jobs.records import ENDED, ChainRecord, ChainState, OwnerRecord

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
