"""AbxTest and MushraTest driven by scripted listeners over SilentComparison (what a
Comparison is asked to play, without audio): blinding, scoring, practice, sequential
stops and the refusals of a host's mistakes."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from rtq.listen import AbxTest, MushraTest, verify
from rtq.listen import scoring

from listening import SilentComparison, make_test


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def abx(tmp_path, **options):
    test_options = {key: options.pop(key) for key in ("trials", "sequential", "items", "kind") if key in options}
    test = make_test(tmp_path, **test_options)
    return AbxTest(test, listener="ann", log=tmp_path / "a.jsonl", comparison=SilentComparison, **options)


def test_x_plays_the_condition_the_final_record_reveals(tmp_path):
    with abx(tmp_path, trials=24, items=3) as test:
        heard = []
        comparisons = set()
        while not test.done:
            test.play("A")
            assert test.comparison.selected == "A"
            test.play("B")
            assert test.comparison.selected == "B"
            test.play("X")
            heard.append(test.comparison.selected)
            comparisons.add(id(test.comparison))
            test.answer("A")
    final = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[-1])
    assert heard == final["assignments"]
    assert len(comparisons) == 3                                    # one Comparison per item
    built = SilentComparison.instances[-3:]
    assert [c.source for c in built] == [item.input for item in test.test.items]
    assert all(c.reference == "A" and c.switch == "dip" and c.closed for c in built)
    assert built[0].conditions["B"] is None and built[0].conditions["A"].name == "tpdf-16"
    assert built[0].seed == 7                                       # the test's dither seed
    assert test.results["correct"] == heard.count("A")


def test_abxy_y_plays_the_other_condition(tmp_path):
    with abx(tmp_path, trials=8, kind="abxy") as test:
        assert test.labels == ("A", "B", "X", "Y")
        while not test.done:
            test.play("X")
            x = test.comparison.selected
            test.play("Y")
            assert {x, test.comparison.selected} == {"A", "B"}
            test.answer(x)                                          # a listener who hears it
    assert test.results["correct"] == 8 and test.results["p"] == 1 / 256


def test_assignments_come_from_the_os_secret_randomness(tmp_path, monkeypatch):
    """X is drawn with secrets (not the dither seed, not a seeded generator): two tests
    of the same file and seed get independent sequences."""
    drawn = []
    real = scoring.secrets.choice

    def choice(options):
        drawn.append(options)
        return real(options)

    monkeypatch.setattr(scoring.secrets, "choice", choice)
    first = abx(tmp_path, trials=64)
    first.close()
    (tmp_path / "a.jsonl").unlink()
    second = abx(tmp_path, trials=64)
    second.close()
    assert len(drawn) == 128
    assert first.assignments != second.assignments                  # 2**-64 to fail by chance
    assert 16 < Counter(first.assignments)["A"] < 48                 # fair coins, p < 1e-4 outside


def test_results_stay_hidden_until_the_end(tmp_path):
    with abx(tmp_path, trials=4) as test:
        for _ in range(3):
            assert test.answer("A") is None
            assert test.results is None
        test.answer("A")
        assert test.results is not None


def test_practice_tells_each_answer(tmp_path):
    with abx(tmp_path, trials=6, practice=True) as test:
        told = []
        while not test.done:
            told.append(test.answer("A"))
    assert told == test.assignments
    assert test.results == {"mode": "practice", "correct": told.count("A"), "trials": 6}
    assert verify(tmp_path / "a.jsonl").summary.startswith(
        f"ok: t (abx, practice), listener ann: {told.count('A')}/6 correct (practice: not scored)")


def test_sequential_test_ends_at_the_boundary(tmp_path):
    with abx(tmp_path, trials=16, sequential=True) as test:
        while not test.done:
            test.answer(test.assignments[test.trial])               # a listener who always hears it
    assert test.results == {"mode": "sequential", "correct": 6, "trials": 6, "max_trials": 16,
                            "p": 1 / 64, "passed": True}
    summary = verify(tmp_path / "a.jsonl").summary
    assert "6/6 correct, p = 0.016 (sequential, at most 16 trials: reached the early-stopping boundary)" in summary


def test_driver_refuses_a_hosts_mistakes(tmp_path):
    with abx(tmp_path, trials=2) as test:
        with pytest.raises(ValueError, match="play takes one of A, B, X"):
            test.play("Y")
        with pytest.raises(ValueError, match="answer 'A' or 'B'"):
            test.answer("X")
        with pytest.raises(ValueError, match="at least 0.5 s apart"):
            test.loop = (1.0, 1.2)
        test.loop = (0.25, 1.0)
        assert test.comparison.loop == (0.25, 1.0)
        test.answer("A")
        test.answer("B")
        with pytest.raises(RuntimeError, match="ended"):
            test.answer("A")
    with pytest.raises(ValueError, match="AbxTest runs abx and abxy tests"):
        AbxTest(make_test(tmp_path, kind="mushra"), comparison=SilentComparison)


def test_trial_logs_the_loop_and_what_was_played(tmp_path):
    with abx(tmp_path, trials=1) as test:
        test.play("A")
        test.comparison.listen(1.25)
        test.stop()
        test.comparison.listen(3.0)                                 # silence is not logged
        test.play("X")
        test.comparison.listen(0.5)
        test.pause()
        test.comparison.listen(2.0)                                 # nor a pause
        test.resume_playing()
        test.comparison.listen(0.25)
        test.loop = (0.1, 0.9)
        test.answer("B")
    trial = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()][-2]
    assert trial["played"] == [["A", 1.25], ["X", 0.5], ["X", 0.25]] and trial["loop"] == [0.1, 0.9]


def mushra(tmp_path, **options):
    test = make_test(tmp_path, kind="mushra", items=options.pop("items", 3))
    return MushraTest(test, listener="bob", log=tmp_path / "m.jsonl", comparison=SilentComparison, **options)


def test_mushra_slots_are_shuffled_per_item_and_logged_by_slot(tmp_path):
    with mushra(tmp_path, items=6) as test:
        assert test.slots == 4
        seen = []
        while not test.done:
            test.play_reference()
            assert test.comparison.selected == "reference"
            order = []
            for slot in range(test.slots):
                test.play(slot)
                order.append(test.comparison.selected)
                test.rate(slot, 100 if order[-1] == "reference" else 20 * slot)
            seen.append(order)
            test.next()
    final = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[-1])
    assert seen == final["assignments"]
    assert all(sorted(order) == ["lofi", "lowpass", "reference", "tpdf"] for order in seen)
    reference = next(c for c in test.results["conditions"] if c["name"] == "reference")
    assert reference["mean"] == 100 and reference["items"] == 6
    ratings = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()
               if '"record":"ratings"' in line]
    assert all("order" not in record for record in ratings)         # by slot only, until the end


def test_mushra_needs_every_rating_before_next(tmp_path):
    with mushra(tmp_path, items=1) as test:
        test.rate(0, 50)
        assert not test.complete
        with pytest.raises(ValueError, match=r"not rated: 2, 3, 4"):
            test.next()
        for bad in (-1, 101, 50.5, True):
            with pytest.raises(ValueError, match="whole number from 0 to 100"):
                test.rate(1, bad)
        with pytest.raises(ValueError, match="slots run from 0 to 3"):
            test.rate(4, 50)
        for slot in range(1, 4):
            test.rate(slot, 50)
        assert test.complete
        assert test.next() is None and test.done


def test_mushra_practice_reveals_each_order(tmp_path):
    with mushra(tmp_path, items=2, practice=True) as test:
        while not test.done:
            for slot in range(test.slots):
                test.rate(slot, 75)
            item = test.item
            assert test.next() == test.assignments[item]
    assert test.results["mode"] == "practice"
    assert verify(tmp_path / "m.jsonl").summary.startswith("ok: t (mushra, practice), listener bob")


def test_a_test_that_cannot_start_leaves_no_log(tmp_path):
    """The first item's Comparison refused (too heavy, no device): no log, no secret."""
    from rtq.errors import RtqError

    def refuse(*args, **kwargs):
        raise RtqError("these 2 conditions need 180 % of real time")

    test = make_test(tmp_path, trials=4)
    with pytest.raises(RtqError, match="180 %"):
        AbxTest(test, listener="ann", log=tmp_path / "a.jsonl", comparison=refuse)
    assert not (tmp_path / "a.jsonl").exists()
    assert not list((tmp_path / "state").rglob("*.json"))
