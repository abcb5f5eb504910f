"""The listening-test log: hash chain, commitment, fsync per record, resume and verify
(rtq.listen.log, rtq.listen.verification), on tests run by scripted listeners over
SilentComparison (no audio needed)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtq.listen import AbxTest, MushraTest, verify
from rtq.listen.log import GENESIS, LogError, canonical, commitment, seal, secret_path

from listening import SilentComparison, make_test

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    """The secret assignments go to a state folder of the test's own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def run_abx(test, log, answers=None, **options):
    """A scripted listener: plays A, B and X a little, then answers (always A unless
    ``answers`` says)."""
    with AbxTest(test, listener="ann", log=log, comparison=SilentComparison, **options) as abx:
        while not abx.done:
            for label in ("A", "B", "X"):
                abx.play(label)
                abx.comparison.listen(0.5)
            abx.answer(answers(abx) if answers else "A")
        return abx


def run_mushra(test, log, **options):
    with MushraTest(test, listener="bob", log=log, comparison=SilentComparison, **options) as mushra:
        while not mushra.done:
            mushra.play_reference()
            mushra.comparison.listen(1.0)
            for slot in range(mushra.slots):
                mushra.play(slot)
                mushra.comparison.listen(0.25)
                mushra.rate(slot, 100 if mushra.assignments[mushra.item][slot] == "reference" else 40 + slot)
            mushra.next()
        return mushra


def lines_of(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def rewrite(path, records: list[dict]) -> None:
    """Write ``records`` as a forger would: every hash recomputed."""
    prev, lines = GENESIS, []
    for record in records:
        line, prev = seal(record, prev)
        lines.append(line + "\n")
    Path(path).write_text("".join(lines))


# ---------------------------------------------------------------------------------------
# the format


def test_records_are_canonical_and_chained(tmp_path):
    log = tmp_path / "a.jsonl"
    run_abx(make_test(tmp_path, trials=4), log)
    text = log.read_text()
    records = lines_of(log)
    assert [r["record"] for r in records] == ["header", "item"] + ["trial"] * 4 + ["final"]
    prev = GENESIS
    for line, record in zip(text.splitlines(), records):
        assert line == canonical(record)                      # sorted keys, no spaces, ASCII
        assert record["prev"] == prev
        body = {key: value for key, value in record.items() if key != "hash"}
        assert seal(body, prev) == (line, record["hash"])
        prev = record["hash"]
    header, final = records[0], records[-1]
    assert header["commitment"] == commitment(final["nonce"], final["assignments"])
    assert len(final["nonce"]) == 64                          # 256 bits


def test_header_holds_what_was_tested(tmp_path):
    test = make_test(tmp_path, trials=2)
    run_abx(test, tmp_path / "a.jsonl")
    header = lines_of(tmp_path / "a.jsonl")[0]
    assert header["test"]["text"] == test.text and header["test"]["sha256"] == test.sha256
    assert [c["name"] for c in header["conditions"]] == ["A", "B"]
    a, b = header["conditions"]
    assert a["source"] == "tpdf-16" and "requantize:" in a["yaml"] and len(a["sha256"]) == 64
    assert b["source"] == "original" and b["yaml"] is None
    assert len(header["items"][0]["sha256"]) == 64
    assert header["seed"] == 7 and header["listener"] == "ann" and header["rtq"]
    assert header["time"].endswith("+00:00")


def test_trial_records_hide_the_answer_until_the_end(tmp_path):
    """What the listener could read in the log during the test says nothing of X."""
    run_abx(make_test(tmp_path, trials=3), tmp_path / "a.jsonl")
    trials = [r for r in lines_of(tmp_path / "a.jsonl") if r["record"] == "trial"]
    for record in trials:
        assert set(record) == {"record", "trial", "item", "answer", "played", "loop", "seconds", "time",
                               "prev", "hash"}
        assert [label for label, _ in record["played"]] == ["A", "B", "X"]
        assert [seconds for _, seconds in record["played"]] == [0.5, 0.5, 0.5]


def test_the_secret_lives_outside_the_log_until_the_end(tmp_path):
    log = tmp_path / "a.jsonl"
    test = make_test(tmp_path, trials=2)
    with AbxTest(test, listener="ann", log=log, comparison=SilentComparison) as abx:
        secret = secret_path(abx.commitment)
        assert secret.exists() and secret.stat().st_mode & 0o077 == 0
        assert json.loads(secret.read_text())["assignments"] == abx.assignments
        assert json.dumps(abx.assignments) not in log.read_text()
        abx.answer("A")
        abx.answer("B")
    assert not secret.exists()


def test_a_log_is_never_replaced(tmp_path):
    log = tmp_path / "a.jsonl"
    log.write_text("mine\n")
    with pytest.raises(LogError, match="the log exists"):
        run_abx(make_test(tmp_path, trials=2), log)
    assert log.read_text() == "mine\n"
    assert not list((tmp_path / "state").glob("rtq/listen/*.json"))


# ---------------------------------------------------------------------------------------
# verify


def test_verify_recomputes_results(tmp_path):
    log = tmp_path / "a.jsonl"
    abx = run_abx(make_test(tmp_path, trials=16, items=2), log)
    verified = verify(log)
    assert verified.results == abx.results
    k = abx.results["correct"]
    assert verified.summary.startswith(f"ok: t (abx), listener ann: {k}/16 correct, p = ")
    assert "18 records" not in verified.summary and "records chained" in verified.summary


def test_verify_mushra(tmp_path):
    log = tmp_path / "m.jsonl"
    run_mushra(make_test(tmp_path, kind="mushra", items=3), log)
    verified = verify(log)
    names = [c["name"] for c in verified.results["conditions"]]
    assert names == ["reference", "tpdf", "lofi", "lowpass"]
    assert verified.results["conditions"][0]["mean"] == 100
    assert "ok: t (mushra), listener bob: reference mean 100.0" in verified.summary


def _change_answer(records):
    next(r for r in records if r["record"] == "trial" and r["trial"] == 3)["answer"] = "B"


def _change_assignments(records):
    records[-1]["assignments"] = ["A"] * 8           # as if the listener, who always answered A, was right


@pytest.mark.parametrize("forge, message", [
    (_change_answer, "the results stated are not those of the answers"),
    (_change_assignments, "the revealed nonce and assignments do not match the commitment"),
])
def test_a_forger_who_rehashes_everything_is_caught(tmp_path, forge, message):
    """Change trial 3's answer, or the revealed assignments, and recompute every hash:
    the final line no longer holds."""
    log = tmp_path / "a.jsonl"
    run_abx(make_test(tmp_path, trials=8), log)
    records = lines_of(log)
    forge(records)
    rewrite(log, records)
    with pytest.raises(LogError, match=rf"{log}:11: {message}"):
        verify(log)


def test_verify_names_the_first_line_that_does_not_hold(tmp_path):
    log = tmp_path / "a.jsonl"
    run_abx(make_test(tmp_path, trials=8), log)
    lines = log.read_text().splitlines(keepends=True)
    record = json.loads(lines[4])
    record["answer"] = "B" if record["answer"] == "A" else "A"
    edited = list(lines)
    edited[4] = canonical(record) + "\n"                   # edited, hash left as it was
    log.write_text("".join(edited))
    with pytest.raises(LogError, match=rf"{log}:5: the record's hash does not match"):
        verify(log)
    record["hash"] = seal({k: v for k, v in record.items() if k != "hash"}, record["prev"])[1]
    edited[4] = canonical(record) + "\n"                   # rehashed, the next line left
    log.write_text("".join(edited))
    with pytest.raises(LogError, match=rf"{log}:6: prev does not match the hash of line 5"):
        verify(log)
    log.write_text("".join(lines[:5] + lines[6:]))         # a trial removed
    with pytest.raises(LogError, match=rf"{log}:6: prev does not match"):
        verify(log)
    log.write_text("".join(lines[:-1]))                     # the final record removed
    with pytest.raises(LogError, match=rf"{log}:10: the log ends before the final record"):
        verify(log)


def test_verify_rehashes_the_files_at_hand(tmp_path):
    log = tmp_path / "a.jsonl"
    test = make_test(tmp_path, trials=2)
    run_abx(test, log)
    os.unlink(test.items[0].input)
    assert "not at hand to re-hash: item 1's input" in verify(log).summary
    Path(test.items[0].input).write_bytes(b"RIFF not the same audio")
    with pytest.raises(LogError, match=rf"{log}:1: item 1's input .* has changed since the test"):
        verify(log)
    os.unlink(test.items[0].input)
    Path(test.path).write_text(test.text + "# edited\n")
    with pytest.raises(LogError, match=rf"{log}:1: the test file .* has changed since the test"):
        verify(log)


@pytest.fixture(scope="module")
def finished_logs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("logs")
    state = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path / "state")
    try:
        run_abx(make_test(tmp_path, trials=16, items=2), tmp_path / "abx.jsonl")
        (tmp_path / "m").mkdir()
        run_mushra(make_test(tmp_path / "m", kind="mushra", items=2), tmp_path / "mushra.jsonl")
    finally:
        if state is None:
            os.environ.pop("XDG_STATE_HOME")
        else:
            os.environ["XDG_STATE_HOME"] = state
    return {kind: (tmp_path / f"{kind}.jsonl").read_bytes() for kind in ("abx", "mushra")}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["abx", "mushra"]), where=st.floats(0, 1, exclude_max=True),
       delta=st.integers(1, 255))
def test_every_single_byte_change_fails_verify(finished_logs, tmp_path, kind, where, delta):
    data = bytearray(finished_logs[kind])
    position = int(where * len(data))
    data[position] = (data[position] + delta) % 256
    log = tmp_path / f"changed-{kind}.jsonl"
    log.write_bytes(bytes(data))
    with pytest.raises(LogError):
        verify(log)


def test_the_unchanged_logs_verify(finished_logs, tmp_path):
    for kind, data in finished_logs.items():
        (tmp_path / kind).write_bytes(data)
        assert verify(tmp_path / kind).summary.startswith("ok: ")


# ---------------------------------------------------------------------------------------
# crash and resume

_CHILD = """
import os, signal, sys
from pathlib import Path
from listening import SilentComparison, make_test
from rtq.listen import AbxTest

tmp = Path(sys.argv[1])
abx = AbxTest(make_test(tmp, trials=12), listener="ann", log=tmp / "a.jsonl", comparison=SilentComparison)
for _ in range(5):
    abx.play("X")
    abx.comparison.listen(1.0)
    abx.answer("A")
abx.play("A")
os.kill(os.getpid(), signal.SIGKILL)      # a crash in the middle of trial 6
"""


def test_a_killed_test_loses_no_trial_and_resumes(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(_CHILD), str(tmp_path)], env=env, cwd=ROOT,
                           capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    log = tmp_path / "a.jsonl"
    assert [r["record"] for r in lines_of(log)] == ["header", "item"] + ["trial"] * 5
    with pytest.raises(LogError, match="the log ends before the final record"):
        verify(log)
    with open(log, "ab") as file:                           # a record cut short by the crash
        file.write(b'{"answer":"B","hash"')

    test = make_test(tmp_path, trials=12)
    with AbxTest(test, resume=log, comparison=SilentComparison) as abx:
        assert abx.trial == 5 and abx.listener == "ann"
        while not abx.done:
            abx.play("X")
            abx.answer("B")
    records = lines_of(log)
    assert [r["record"] for r in records] == (["header", "item"] + ["trial"] * 5 + ["resume", "item"]
                                              + ["trial"] * 7 + ["final"])
    assert [r["answer"] for r in records if r["record"] == "trial"] == ["A"] * 5 + ["B"] * 7
    verified = verify(log)
    assert verified.results == abx.results and verified.results["trials"] == 12
    assert not secret_path(abx.commitment).exists()


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    from rtq.errors import UsageError

    log = tmp_path / "a.jsonl"
    test = make_test(tmp_path, trials=2)
    run_abx(test, log)
    with pytest.raises(UsageError, match="the test is complete"):
        AbxTest(test, resume=log, comparison=SilentComparison)
    other = make_test(tmp_path, trials=2, text="name: other\ntype: abx\n")
    with pytest.raises(UsageError, match="a log of another test file"):
        AbxTest(other, resume=log, comparison=SilentComparison)


def test_resume_checks_the_log_first(tmp_path):
    """A log rewritten with valid hashes but not as rtq writes it is refused in one line."""
    log = tmp_path / "a.jsonl"
    test = make_test(tmp_path, trials=4)
    first = AbxTest(test, listener="ann", log=log, comparison=SilentComparison)
    first.answer("A")
    first.close()
    records = lines_of(log)
    del records[2]["answer"]
    rewrite(log, records)
    with pytest.raises(LogError, match=rf"{log}:3: answer must be A or B"):
        AbxTest(test, resume=log, comparison=SilentComparison)


def test_mushra_resumes_with_the_same_orders(tmp_path):
    log = tmp_path / "m.jsonl"
    test = make_test(tmp_path, kind="mushra", items=3)
    first = MushraTest(test, listener="bob", log=log, comparison=SilentComparison)
    orders = first.assignments
    for slot in range(first.slots):
        first.rate(slot, 70)
    first.next()
    first.close()                                           # Ctrl-C after item 1
    with MushraTest(test, resume=log, comparison=SilentComparison) as mushra:
        assert mushra.item == 1 and mushra.assignments == orders
        while not mushra.done:
            for slot in range(mushra.slots):
                mushra.play(slot)
                assert mushra.comparison.selected == orders[mushra.item][slot]
                mushra.rate(slot, 60)
            mushra.next()
    assert verify(log).results["conditions"][0]["items"] == 3
