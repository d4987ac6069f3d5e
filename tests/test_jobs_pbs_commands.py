"""qsub/qstat/qdel parsing against outputs recorded from a real OpenPBS 23.06 server."""

from __future__ import annotations

import sys

import pytest

from jobs import ledger, lock, pbs_commands, status
from jobs.records import OwnerRecord
from jobs.pbs_commands import QstatError, QsubError, describe_exit, job_states, parse_job_id, parse_qstat_json
from jobs_support import FIXTURES, calls, stub_bin, stub_env, write_exe

QSTAT_JSON = FIXTURES / "qstat_x_f_F_json.json"


def test_job_ids_as_qsub_prints_them():
    assert parse_job_id("30.vm\n") == "30.vm"
    assert parse_job_id("12345.meta-pbs.metacentrum.cz\n") == "12345.meta-pbs.metacentrum.cz"
    assert parse_job_id("7[].vm") == "7[].vm"
    for junk in ("", "qsub: Unknown queue", "job submitted"):
        with pytest.raises(QsubError):
            parse_job_id(junk)


def test_qstat_json_states_and_exit_statuses():
    text = QSTAT_JSON.read_text()
    jobs = parse_qstat_json(text)
    assert len(jobs) == text.count('"job_state"')  # every job of the recording, none dropped
    assert {j.state for j in jobs.values()} == {"F", "R", "H", "Q"}
    assert jobs["30.vm"].state == "R" and jobs["30.vm"].active
    assert jobs["31.vm"].state == "H" and jobs["31.vm"].depend == "afterany:30.vm@vm"
    assert jobs["32.vm"].state == "Q" and jobs["32.vm"].comment.startswith("Not Running")
    assert jobs["2.vm"].exit_status == -29 and describe_exit(-29) == "killed at walltime"
    assert jobs["3.vm"].exit_status == 3 and describe_exit(3) == "script exited 3"
    assert describe_exit(jobs["9.vm"].exit_status) == "killed by SIGUSR1"
    assert describe_exit(jobs["20.vm"].exit_status) == "killed by SIGUSR2"
    assert describe_exit(jobs["10.vm"].exit_status) == "killed by SIGTERM"
    assert jobs["17.vm"].exit_status is None and describe_exit(None).startswith("never ran")
    assert jobs["2.vm"].walltime_used == "00:00:37" and jobs["2.vm"].walltime_limit == "00:00:15"


def _qstat_stub(tmp_path, monkeypatch, script: str):
    bindir, log = stub_bin(tmp_path, qstat="#!/bin/bash\n" + 'printf "%s\\n" "$*" >> "$STUB_LOG/qstat.calls"\n' + script)
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    return log


def test_one_batched_qstat_call_for_all_jobs(tmp_path, monkeypatch):
    log = _qstat_stub(tmp_path, monkeypatch, f"cat {QSTAT_JSON}\n")
    states = job_states(["26.vm", "28.vm", "30.vm"], retry_delays=())
    assert calls(log, "qstat") == ["-x -f -F json 26.vm 28.vm 30.vm"]
    assert [states[j].state for j in ("26.vm", "28.vm", "30.vm")] == ["F", "F", "R"]


# OpenPBS 23.06 answers `qstat -x -f -F json ID1 ID2 ...` with the FIRST job only (exit 0, no
# error); this stub does the same from the recorded output.
FIRST_ID_ONLY = r'''
import json, sys
ids = [a for a in sys.argv[1:] if not a.startswith("-") and a != "json"]
data = json.load(open(sys.argv[0] + ".json"), strict=False)
data["Jobs"] = {j: info for j, info in data["Jobs"].items() if ids and j == ids[0]}
if not data["Jobs"]:
    print(f"qstat: Unknown Job Id {ids[0]}", file=sys.stderr)
    del data["Jobs"]
print(json.dumps(data, indent=1))
sys.exit(0 if "Jobs" in data else 153)
'''


def test_every_id_is_answered_by_a_server_that_answers_only_the_first(tmp_path, monkeypatch):
    log = _qstat_stub(tmp_path, monkeypatch, f'exec {sys.executable} "$0.py" "$@"\n')
    stub = tmp_path / "stubbin" / "qstat"
    (stub.parent / "qstat.py").write_text(f"import sys; sys.argv[0] = {str(stub)!r}\n" + FIRST_ID_ONLY)
    (stub.parent / "qstat.json").write_text(QSTAT_JSON.read_text())
    states = job_states(["26.vm", "28.vm", "30.vm", "99999.vm"], retry_delays=())
    assert {j: s.state for j, s in states.items()} == {"26.vm": "F", "28.vm": "F", "30.vm": "R"}
    assert calls(log, "qstat")[0] == "-x -f -F json 26.vm 28.vm 30.vm 99999.vm"
    # and jobs.status shows every part's PBS state, none "gone from PBS history"
    run = tmp_path / "run"
    for part, job in enumerate(("26.vm", "28.vm", "30.vm"), start=1):
        ledger.append_event(run, "submit", part, job_id=job, executor="pbs")
    _, data = status.render_status(run)
    assert data["scheduler"] == {"26.vm": "F: killed at walltime", "28.vm": "F: succeeded", "30.vm": "R: running"}


def test_unknown_job_is_absent_not_an_error(tmp_path, monkeypatch):
    text, rc = (FIXTURES / "qstat_unknown_job.txt").read_text().split("\nunknown rc=")
    err, out = text.split("\n", 1)
    (tmp_path / "out.json").write_text(out)
    _qstat_stub(tmp_path, monkeypatch, f"echo '{err}' >&2\ncat {tmp_path / 'out.json'}\nexit {rc.strip()}\n")
    assert job_states(["99999.vm"], retry_delays=()) == {}
    assert lock.owner_alive(OwnerRecord("pbs", "99999.vm"))[0] is False


def test_transient_qstat_failure_is_retried(tmp_path, monkeypatch):
    log = _qstat_stub(tmp_path, monkeypatch, f'''
n=$(cat "$STUB_LOG/n" 2>/dev/null || echo 0); echo $((n + 1)) > "$STUB_LOG/n"
if [ "$n" -lt 2 ]; then echo "qstat: cannot connect to server vm (errno=15010)" >&2; exit 1; fi
cat {QSTAT_JSON}
''')
    assert job_states(["30.vm"], retry_delays=(0, 0, 0))["30.vm"].state == "R"
    assert len(calls(log, "qstat")) == 3


def test_persistent_qstat_failure_never_means_job_lost(tmp_path, monkeypatch):
    _qstat_stub(tmp_path, monkeypatch, 'echo "qstat: cannot connect to server vm (errno=15010)" >&2\nexit 1\n')
    monkeypatch.setattr(pbs_commands, "RETRY_DELAYS_S", (0, 0))
    with pytest.raises(QstatError, match="cannot connect"):
        job_states(["30.vm"], retry_delays=(0, 0))
    alive, how = lock.owner_alive(OwnerRecord("pbs", "30.vm"))
    assert alive and "could not answer" in how
    # status says "unknown", not "lost"
    run = tmp_path / "run"
    ledger.append_event(run, "submit", 1, job_id="30.vm", executor="pbs")
    text, data = status.render_status(run)
    assert "NOT presumed lost" in text and data["scheduler"] == {}


def test_status_follows_a_chain_through_walltime_kill_and_resubmission(tmp_path, monkeypatch):
    """26.vm was killed at walltime, its successor 28.vm finished; 30.vm runs, 31.vm is held."""
    log = _qstat_stub(tmp_path, monkeypatch, f"cat {QSTAT_JSON}\n")
    run = tmp_path / "run"
    for part, job in enumerate(("26.vm", "28.vm", "30.vm", "31.vm"), start=1):
        ledger.append_event(run, "submit", part, job_id=job, executor="pbs")
    ledger.append_event(run, "start", 1, job_id="26.vm", executor="pbs", host="vm")
    ledger.append_event(run, "end", 2, exit_code=75, step=200, action="resubmit", reason="r")
    text, data = status.render_status(run)
    assert calls(log, "qstat") == ["-x -f -F json 26.vm 28.vm 30.vm 31.vm"]
    assert data["scheduler"] == {"26.vm": "F: killed at walltime", "28.vm": "F: succeeded",
                                 "30.vm": "R: running", "31.vm": "H: held"}
    assert "resubmit [F: succeeded]" in text
    assert [p["job_id"] for p in data["parts"]] == ["26.vm", "28.vm", "30.vm", "31.vm"]


def test_a_part_killed_at_walltime_without_an_end_record_is_reported(tmp_path, monkeypatch):
    """2.vm (recorded: killed at walltime, Exit_status -29) was the evaluation; it never wrote its end."""
    from jobs.chain_state import write_chain_state

    _qstat_stub(tmp_path, monkeypatch, f"cat {QSTAT_JSON}\n")
    run = tmp_path / "run"
    ledger.append_event(run, "submit", 1, job_id="1.vm", executor="pbs", kind="train")
    ledger.append_event(run, "end", 1, exit_code=0, step=300, action="evaluate", reason="training finished")
    ledger.append_event(run, "submit", 2, job_id="2.vm", executor="pbs", kind="evaluate")
    ledger.append_event(run, "start", 2, job_id="2.vm", executor="pbs", kind="evaluate")
    write_chain_state(run, "evaluating", "training finished; evaluation submitted", 1, 0, "1.vm", "pbs")
    text, data = status.render_status(run)
    assert data["chain"]["state"] == "stopped" and data["chain"]["recorded_state"] == "evaluating"
    assert text.startswith("chain: stopped — part 2 (evaluate) ended without an end record (F: killed at walltime)")


def test_qdel_reports_what_it_could_not_delete(tmp_path, monkeypatch):
    _qstat_stub(tmp_path, monkeypatch, "exit 0\n")
    write_exe(tmp_path / "stubbin" / "qdel", '#!/bin/bash\necho "qdel: Job has finished 28.vm" >&2\nexit 35\n')
    deleted, err = pbs_commands.qdel(["30.vm", "28.vm"])
    assert deleted == ["30.vm"] and "finished 28.vm" in err
