"""What a test's answers mean: the secret assignments drawn at the start, the results
computed from the answers and the revealed assignments, and their one-line wording.

The drivers (:mod:`rtq.listen.abx`, :mod:`rtq.listen.mushra`) and :func:`rtq.listen.verify`
call the same functions, so a verified log's results are the results the test printed.

Assignments
    ABX and ABXY: one letter per trial, the condition X plays ("A" or "B"; in ABXY, Y
    plays the other).  Each is an independent fair draw from the operating system's
    secret randomness (:mod:`secrets`): whatever a guessing listener does, each answer
    is right with probability 1/2 (a balanced sequence would let a listener who counts
    do better), and nothing about it follows from the chains' dither seed.
    MUSHRA: per item, the order in which its conditions (hidden reference and anchors
    included) appear on the keys 1, 2, ..., an independent uniform shuffle.
"""
from __future__ import annotations

import secrets

from .stats import AbxScore, mean_interval

ABX_LETTERS = ("A", "B")


def draw_abx(trials: int) -> list[str]:
    """X's condition for each trial, from the OS's secret randomness."""
    return [secrets.choice(ABX_LETTERS) for _ in range(trials)]


def draw_mushra(names, items: int) -> list[list[str]]:
    """The order of ``names`` on the rating keys, for each item: independent shuffles from
    the OS's secret randomness."""
    orders = []
    for _ in range(items):
        order = list(names)
        secrets.SystemRandom().shuffle(order)
        orders.append(order)
    return orders


def abx_results(answers: list[str], assignments: list[str], *, trials: int, sequential: bool,
                practice: bool) -> dict:
    """The result of an ended ABX test from its answers ("X is A" = "A") and the revealed
    assignments; a ValueError if the answers do not make an ended test (too few, or one
    after the test's end)."""
    score = AbxScore(trials, sequential and not practice)
    for answer, truth in zip(answers, assignments):
        if score.ended:
            raise ValueError(f"an answer after the test ended (trial {score.answered + 1})")
        score.add(answer == truth)
    if len(answers) > len(assignments):
        raise ValueError(f"{len(answers)} answers for {len(assignments)} assignments")
    if not score.ended:
        raise ValueError(f"the test ended after {score.answered} of {trials} trials")
    if practice:
        return {"mode": "practice", "correct": score.correct, "trials": score.answered}
    return score.result()


def mushra_results(ratings: list[list[int]], orders: list[list[str]], names, *, practice: bool) -> dict:
    """One listener's result: per condition (in the test's order), the mean rating over
    the items and its Student's t 95 % interval (None from a single item)."""
    by_name: dict[str, list[int]] = {name: [] for name in names}
    for item_ratings, order in zip(ratings, orders):
        for name, rating in zip(order, item_ratings):
            by_name[name].append(rating)
    conditions = []
    for name, values in by_name.items():
        mean, interval = mean_interval(values)
        conditions.append({"name": name, "mean": mean, "ci95": list(interval) if interval else None,
                           "items": len(values)})
    return {"mode": "practice" if practice else "mushra", "conditions": conditions}


def format_p(p: float) -> str:
    """A p-value as results print it: 0.038, 0.500, 1.5e-05."""
    return f"{p:.3f}" if p >= 0.001 else f"{p:.2g}"


def result_lines(results: dict) -> list[str]:
    """The end-of-test lines of a result: ``12/16 correct, p = 0.038``; for MUSHRA one
    line per condition, its mean and 95 % interval."""
    mode = results["mode"]
    if "correct" in results:
        head = f"{results['correct']}/{results['trials']} correct"
        if mode == "practice":
            return [f"{head} (practice: not scored)"]
        line = f"{head}, p = {format_p(results['p'])}"
        if mode == "sequential":
            how = ("reached the early-stopping boundary" if results["passed"]
                   else "did not reach the boundary")
            line += f" (sequential, at most {results['max_trials']} trials: {how})"
        return [line]
    width = max(len(figures["name"]) for figures in results["conditions"])
    lines = []
    for figures in results["conditions"]:
        line = f"{figures['name']:<{width}}  mean {figures['mean']:5.1f}"
        if figures["ci95"] is not None:
            lo, hi = figures["ci95"]
            line += f", 95 % CI {lo:5.1f} to {hi:5.1f}"
        lines.append(line + f" ({figures['items']} item{'s' * (figures['items'] != 1)})")
    if mode == "practice":
        lines.append("(practice: not scored)")
    return lines
