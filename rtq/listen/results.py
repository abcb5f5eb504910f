"""``rtq listen results LOG...``: the results of several listeners, pooled.

Every log is verified first (:func:`rtq.listen.verify`); one that does not hold stops
the report, and all must be logs of the same test file (same SHA-256).  Practice logs
are not results.

ABX
    Per listener (a listener's logs together) and pooled over all: right answers out of
    trials and the p-value.  Fixed-length tests add up: the sum of their answers is
    one binomial test of the summed trials (each was fixed before the test).  A
    sequential test's count stops on the data, so sums of them are not binomial; where
    any log is sequential, the p-values are combined by Fisher's method instead
    (scipy.stats.combine_pvalues; for p-values that are exact or conservative, as
    these are, the combination keeps its 5 % level).
MUSHRA
    ITU-R BS.1534-3 post-screening first (:func:`rtq.listen.stats.post_screening`: a
    listener who rated the hidden reference below 90 on more than 15 % of the items is
    excluded; the exclusions are listed), then per condition the mean of the remaining
    ratings (every listener's rating of every item) and its 95 % BCa bootstrap interval
    (resampling those ratings).

``--csv`` writes the ratings (all of them: screening is the report's business) in
webMUSHRA's result columns (its ``service/write.php``): for MUSHRA
``session_test_id, listener, trial_id, rating_stimulus, rating_score, rating_time,
rating_comment``; for ABX its paired-comparison columns ``session_test_id, listener,
trial_id, choice_reference, choice_non_reference, choice_answer, choice_time,
choice_comment``, where the "reference" webMUSHRA asks the listener to find is X.
The listener column stands where webMUSHRA puts its questionnaire's fields; times are
milliseconds, as webMUSHRA's.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass

from .log import LogError
from .scoring import format_p
from .stats import ALPHA, binomial_p, bootstrap_interval, post_screening
from .testfile import REFERENCE
from .verification import VerifiedLog, verify

MUSHRA_COLUMNS = ("session_test_id", "listener", "trial_id", "rating_stimulus", "rating_score", "rating_time",
                  "rating_comment")
ABX_COLUMNS = ("session_test_id", "listener", "trial_id", "choice_reference", "choice_non_reference",
               "choice_answer", "choice_time", "choice_comment")


@dataclass
class Pooled:
    """The verified logs of one test, ready to report."""

    logs: list[VerifiedLog]

    @property
    def header(self) -> dict:
        return self.logs[0].header

    @property
    def is_mushra(self) -> bool:
        return self.header["type"] == "mushra"

    def by_listener(self) -> dict[str, list[VerifiedLog]]:
        groups: dict[str, list[VerifiedLog]] = defaultdict(list)
        for log in self.logs:
            groups[log.listener or "(unnamed)"].append(log)
        return dict(groups)

    # -- ABX ------------------------------------------------------------------------------

    @staticmethod
    def abx_line(logs: list[VerifiedLog]) -> str:
        """``12/16 correct, p = 0.038`` over ``logs`` (Fisher's method where any is sequential)."""
        correct = sum(log.results["correct"] for log in logs)
        trials = sum(log.results["trials"] for log in logs)
        if all(log.results["mode"] == "fixed" for log in logs):
            p = binomial_p(correct, trials)
            how = ""
        else:
            from scipy.stats import combine_pvalues

            p = float(combine_pvalues([log.results["p"] for log in logs], method="fisher").pvalue) \
                if len(logs) > 1 else logs[0].results["p"]
            how = " (sequential tests: Fisher's combination of their p-values)" if len(logs) > 1 else \
                " (sequential)"
        verdict = "significant" if p <= ALPHA else "not significant"
        return f"{correct}/{trials} correct, p = {format_p(p)}{how}: {verdict} at {ALPHA:.0%}"

    # -- MUSHRA ---------------------------------------------------------------------------

    @staticmethod
    def ratings_of(log: VerifiedLog) -> dict[str, list[int]]:
        """``{condition: [rating in each item]}`` of one log."""
        ratings: dict[str, list[int]] = defaultdict(list)
        for record in log.trials:
            for name, rating in zip(log.assignments[record["item"]], record["ratings"]):
                ratings[name].append(rating)
        return ratings

    def screening(self) -> dict[str, str]:
        reference: dict[str, list[int]] = defaultdict(list)
        for log in self.logs:
            reference[log.listener or "(unnamed)"].extend(self.ratings_of(log)[REFERENCE])
        return post_screening(dict(reference))

    def lines(self) -> list[str]:
        """The report, one line per result."""
        header = self.header
        lines = [f"{header['name']} ({header['type']}): {len(self.logs)} log{'s' * (len(self.logs) != 1)}, "
                 f"{len(self.by_listener())} listener{'s' * (len(self.by_listener()) != 1)}"]
        if not self.is_mushra:
            width = max(len(name) for name in self.by_listener())
            for listener, logs in self.by_listener().items():
                lines.append(f"  {listener:<{width}}  {self.abx_line(logs)}")
            lines.append(f"  pooled: {self.abx_line(self.logs)}")
            return lines
        excluded = self.screening()
        for listener, reason in excluded.items():
            lines.append(f"  excluded by BS.1534-3 post-screening: {listener}: {reason}")
        kept = [log for log in self.logs if (log.listener or "(unnamed)") not in excluded]
        if not kept:
            lines.append("  no listener is left after post-screening")
            return lines
        pooled: dict[str, list[int]] = defaultdict(list)
        for log in kept:
            for name, values in self.ratings_of(log).items():
                pooled[name].extend(values)
        names = [condition["name"] for condition in header["conditions"]]
        width = max(len(name) for name in names)
        listeners = len({log.listener for log in kept})
        for name in names:
            values = pooled[name]
            mean = sum(values) / len(values)
            interval = bootstrap_interval(values)
            figures = f"mean {mean:5.1f}" + (f", 95 % bootstrap CI {interval[0]:5.1f} to {interval[1]:5.1f}"
                                              if interval else "")
            lines.append(f"  {name:<{width}}  {figures} ({len(values)} ratings, {listeners} "
                         f"listener{'s' * (listeners != 1)})")
        return lines

    def csv(self) -> str:
        """Every answer or rating in webMUSHRA's result columns."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(MUSHRA_COLUMNS if self.is_mushra else ABX_COLUMNS)
        for log in self.logs:
            test_id, listener = log.header["name"], log.listener
            for record in log.trials:
                milliseconds = round(record["seconds"] * 1000)
                if self.is_mushra:
                    trial_id = f"item{record['item'] + 1}"
                    for name, rating in zip(log.assignments[record["item"]], record["ratings"]):
                        writer.writerow((test_id, listener, trial_id, name, rating, milliseconds, ""))
                else:
                    x = log.assignments[record["trial"]]
                    other = "B" if x == "A" else "A"
                    answer = "correct" if record["answer"] == x else "incorrect"
                    writer.writerow((test_id, listener, f"trial{record['trial'] + 1}", x, other, answer,
                                     milliseconds, ""))
        return out.getvalue()


def pool(paths) -> Pooled:
    """Verify ``paths`` (logs of one test) and gather them; a LogError names the first that
    does not hold or does not belong."""
    logs = [verify(path) for path in paths]
    first = logs[0]
    for log in logs[1:]:
        if log.header["test"]["sha256"] != first.header["test"]["sha256"]:
            raise LogError(f"{log.path}: a log of another test file than {first.path} (SHA-256 of the test "
                           "file differs); pool the logs of one test")
    for log in logs:
        if log.header["practice"]:
            raise LogError(f"{log.path}: a practice log; results pool scored tests only")
    return Pooled(logs)
