"""``rtq listen verify`` and ``rtq listen results`` on logs of tests run by scripted
listeners (over SilentComparison: no audio needed to write a log)."""
from __future__ import annotations

import csv
import io
import json

import pytest

from listening import SilentComparison, make_test
from rtq.cli import main
from rtq.listen import AbxTest, MushraTest, binomial_p
from rtq.listen.results import ABX_COLUMNS, MUSHRA_COLUMNS


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def abx_log(test, tmp_path, listener, right: int, **options):
    """A log in which ``listener`` gets the first ``right`` trials right, the rest wrong."""
    log = tmp_path / f"{listener}.jsonl"
    with AbxTest(test, listener=listener, log=log, comparison=SilentComparison, **options) as driver:
        while not driver.done:
            truth = driver.assignments[driver.trial]
            driver.answer(truth if driver.trial < right else ("B" if truth == "A" else "A"))
    return log


def mushra_log(test, tmp_path, listener, reference=100, offset=0):
    log = tmp_path / f"{listener}.jsonl"
    with MushraTest(test, listener=listener, log=log, comparison=SilentComparison) as driver:
        while not driver.done:
            for slot, name in enumerate(driver.assignments[driver.item]):
                driver.rate(slot, reference if name == "reference" else {"tpdf": 80, "lofi": 30,
                                                                        "lowpass": 10}[name] + offset)
            driver.next()
    return log


def run(capsys, *argv):
    status = main(["listen", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_verify_prints_ok_or_the_first_line_that_does_not_hold(tmp_path, capsys):
    test = make_test(tmp_path, trials=16)
    good = abx_log(test, tmp_path, "ann", right=12)
    status, out, err = run(capsys, "verify", str(good))
    assert status == 0 and err == ""
    assert out.startswith("ok: t (abx), listener ann: 12/16 correct, p = 0.038; 19 records chained")
    bad = tmp_path / "bad.jsonl"
    lines = good.read_text().splitlines(keepends=True)
    bad.write_text("".join(lines[:3] + lines[4:]))
    status, out, err = run(capsys, "verify", str(good), str(bad))
    assert status == 1 and out.startswith("ok: ")
    assert err == f"rtq: {bad}:4: prev does not match the hash of line 3 (a record was changed, added or removed)\n"


def test_results_pool_abx_listeners(tmp_path, capsys):
    test = make_test(tmp_path, trials=16)
    logs = [abx_log(test, tmp_path, name, right) for name, right in (("ann", 12), ("bob", 9), ("cy", 11))]
    status, out, err = run(capsys, "results", *map(str, logs))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "t (abx): 3 logs, 3 listeners"
    assert lines[1] == "  ann  12/16 correct, p = 0.038: significant at 5%"
    assert lines[2] == "  bob  9/16 correct, p = 0.402: not significant at 5%"
    assert lines[4] == f"  pooled: 32/48 correct, p = {binomial_p(32, 48):.3f}: significant at 5%"


def test_results_combine_sequential_tests_by_fisher(tmp_path, capsys):
    from scipy.stats import combine_pvalues

    test = make_test(tmp_path, trials=16, sequential=True)
    logs = [abx_log(test, tmp_path, name, right) for name, right in (("ann", 16), ("bob", 0))]
    p = [json.loads(log.read_text().splitlines()[-1])["results"]["p"] for log in logs]
    assert p[0] == 1 / 64                                         # ann stopped at 6/6
    status, out, _ = run(capsys, "results", *map(str, logs))
    expected = combine_pvalues(p, method="fisher").pvalue
    assert f"pooled: 6/22 correct, p = {expected:.3f} (sequential tests: Fisher's combination" in out


def test_results_screen_and_pool_mushra(tmp_path, capsys):
    test = make_test(tmp_path, kind="mushra", items=4)
    logs = [mushra_log(test, tmp_path, "ann"), mushra_log(test, tmp_path, "bob", offset=5),
            mushra_log(test, tmp_path, "cy", reference=85)]
    status, out, err = run(capsys, "results", *map(str, logs))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[1] == ("  excluded by BS.1534-3 post-screening: cy: rated the hidden reference below 90 on 4 "
                        "of 4 items (more than 15%)")
    assert lines[2].startswith("  reference  mean 100.0") and "(8 ratings, 2 listeners)" in lines[2]
    assert lines[3].startswith("  tpdf       mean  82.5, 95 % bootstrap CI")


def test_results_csv_has_webmushras_columns(tmp_path, capsys):
    test = make_test(tmp_path, kind="mushra", items=2)
    log = mushra_log(test, tmp_path, "ann")
    status, out, _ = run(capsys, "results", "--csv", str(log))
    rows = list(csv.reader(io.StringIO(out)))
    assert tuple(rows[0]) == MUSHRA_COLUMNS
    assert len(rows) == 1 + 2 * 4
    assert {tuple(row[:3]) for row in rows[1:]} == {("t", "ann", "item1"), ("t", "ann", "item2")}
    scores = {(row[2], row[3]): int(row[4]) for row in rows[1:]}
    assert scores[("item1", "reference")] == 100 and scores[("item2", "lofi")] == 30
    assert all(row[5].isdigit() and row[6] == "" for row in rows[1:])

    (tmp_path / "abx").mkdir()
    log = abx_log(make_test(tmp_path / "abx", trials=4), tmp_path, "bob", right=3)
    status, out, _ = run(capsys, "results", "--csv", str(log))
    rows = list(csv.reader(io.StringIO(out)))
    assert tuple(rows[0]) == ABX_COLUMNS
    assert [row[5] for row in rows[1:]] == ["correct"] * 3 + ["incorrect"]
    assert all({row[3], row[4]} == {"A", "B"} for row in rows[1:])


def test_results_refuse_mixed_or_practice_logs(tmp_path, capsys):
    test = make_test(tmp_path, trials=4)
    ann = abx_log(test, tmp_path, "ann", 2)
    practice = abx_log(test, tmp_path, "bob", 2, practice=True)
    (tmp_path / "other").mkdir()
    other = abx_log(make_test(tmp_path / "other", trials=4, text="name: other\ntype: abx\n"), tmp_path, "cy", 2)
    status, _, err = run(capsys, "results", str(ann), str(practice))
    assert status == 1 and "a practice log; results pool scored tests only" in err
    status, _, err = run(capsys, "results", str(ann), str(other))
    assert status == 1 and "a log of another test file" in err


def test_listen_needs_a_form(capsys):
    status, _, err = run(capsys)
    assert status == 2 and "rtq listen needs a test file, or verify, results or export" in err


def test_export_renders_a_test_file(tmp_path, capsys):
    """rtq listen export reads the test file as rtq listen does and hands it to
    rtq.listen.export (its own tests check the stimuli)."""
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "music.wav", 0.1 * np.random.default_rng(1).standard_normal((48000, 2)), 48000,
             subtype="FLOAT")
    test = tmp_path / "abx.yaml"
    test.write_text("type: abx\nitems: [{input: music.wav, loop: [0.0, 0.75]}]\n"
                    "conditions: {A: tpdf-16, B: original}\n")
    status, out, err = run(capsys, "export", str(test), str(tmp_path / "stimuli"))
    assert status == 0, err
    assert (tmp_path / "stimuli" / "item1").is_dir() and out.startswith(f"wrote {tmp_path / 'stimuli'}")
    status, _, err = run(capsys, "export", str(test), str(tmp_path / "stimuli"))
    assert status == 2 and "exists; use --force to replace it" in err
