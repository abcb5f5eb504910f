"""``verify(log)``: does a listening-test log hold?

In order, stopping at the first line that does not hold:

1. every record: canonical JSON, its own hash, and ``prev`` = the hash of the record
   before it (:func:`rtq.listen.log.read_lines`);
2. the header: an rtq listening-test log; the test file's text has the SHA-256 it
   claims, and so does each condition's preset (canonical YAML);
3. the records in between: trials (or MUSHRA items) numbered in order, each answer or
   rating well formed, practice answers told as the assignments say;
4. the final record (the last line): the revealed nonce and assignments hash to the
   header's commitment, and the results it states are the results recomputed from the
   answers and the assignments (:mod:`rtq.listen.scoring`);
5. the files that are at hand: the test file, each condition's preset file and each
   input file still have the SHA-256 the header recorded (those not at hand are named
   in the summary).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import log as logfile
from .log import LogError
from .scoring import ABX_LETTERS, abx_results, mushra_results, result_lines
from .testfile import LIVE, TYPES, item_of_trial, preset_yaml

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class VerifiedLog:
    """A log that holds: its header, its trial (or item) records and its results."""

    path: Path
    header: dict
    trials: list[dict]                 # "trial" records (ABX) or "ratings" records (MUSHRA)
    final: dict
    records: int
    not_at_hand: list[str] = field(default_factory=list)

    @property
    def results(self) -> dict:
        return self.final["results"]

    @property
    def assignments(self) -> list:
        return self.final["assignments"]

    @property
    def listener(self) -> str:
        return self.header["listener"]

    @property
    def summary(self) -> str:
        """``ok: NAME (abx), listener ann: 12/16 correct, p = 0.038; ...; commitment HEX``
        (the commitment ``rtq listen`` printed when the test began)."""
        header = self.header
        kind = header["type"] + (", practice" if header["practice"] else "") + (
            ", sequential" if header["sequential"] else "")
        unchecked = f" (not at hand to re-hash: {', '.join(self.not_at_hand)})" if self.not_at_hand else ""
        return (f"ok: {header['name']} ({kind}), listener {header['listener'] or '(unnamed)'}: "
                + "; ".join(" ".join(line.split()) for line in result_lines(self.results))
                + f"; {self.records} records chained, commitment and hashes hold{unchecked}; "
                  f"commitment {header['commitment']}")


def verify(path: str | os.PathLike) -> VerifiedLog:
    """Check a listening-test log (see the module docstring).

    Parameters
    ----------
    path : path
        The JSON Lines log ``rtq listen`` (or a driver) wrote.

    Returns
    -------
    VerifiedLog
        Its :attr:`~VerifiedLog.summary` is the ``ok: ...`` line ``rtq listen verify`` prints.

    Raises
    ------
    LogError
        ``LOG:LINE: what does not hold`` for the first line that does not.
    """
    path = Path(path)
    lines, _ = logfile.read_lines(path)
    header, trials, final = check_records(path, lines)
    check = _Checker(path)
    if final is None:
        check.line = lines[-1].number
        check.fail("the log ends before the final record: the test was interrupted "
                   "(rtq listen TEST --resume LOG continues it)")
    check.line = len(lines)
    check.final(header, trials, final)
    not_at_hand = check.files(header)
    return VerifiedLog(path, header, trials, final, len(lines), not_at_hand)


def check_records(path, lines) -> tuple[dict, list[dict], dict | None]:
    """Steps 2 and 3 over the lines of a log (chained, as :func:`rtq.listen.log.read_lines`
    returns them): ``(header, trial or ratings records, final record or None)``; a
    LogError at the first line that does not hold.  ``--resume`` reads a log with it."""
    check = _Checker(Path(path))
    header = check.header(lines[0])
    trials: list[dict] = []
    final = None
    for line in lines[1:]:
        check.line = line.number
        if final is not None:
            check.fail("a record after the final record")
        kind = line.kind
        if kind == "final":
            final = line.record
        elif kind == ("trial" if header["type"] != "mushra" else "ratings"):
            check.trial(header, line.record, len(trials))
            trials.append(line.record)
        elif kind not in ("item", "resume"):
            check.fail(f"a record of unknown kind {kind!r} for a {header['type']} test")
    return header, trials, final


class _Checker:
    def __init__(self, path: Path):
        self.path = path
        self.line = 1

    def fail(self, message: str):
        raise LogError(f"{self.path}:{self.line}: {message}")

    def need(self, record: dict, key: str, kind, what: str):
        value = record.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(f"{key} must be {what}")
        return value

    def header(self, line) -> dict:
        record = line.record
        if record.get("record") != "header" or record.get("format") != logfile.FORMAT:
            self.fail(f"not the header of an rtq listening-test log ({logfile.FORMAT})")
        if record.get("type") not in TYPES:
            self.fail(f"type must be one of {', '.join(TYPES)}")
        trials = self.need(record, "trials", int, "a whole number")
        items = self.need(record, "items", list, "a list")
        conditions = self.need(record, "conditions", list, "a list")
        test = self.need(record, "test", dict, "a mapping")
        for key in ("practice", "sequential"):
            self.need(record, key, bool, "true or false")
        self.need(record, "listener", str, "text")
        self.need(record, "name", str, "text")
        if not _HEX64.fullmatch(str(record.get("commitment"))):
            self.fail("commitment must be a SHA-256 in hex")
        if not items or trials < 1 or not conditions:
            self.fail("the test has no items, trials or conditions")
        if not all(isinstance(item, dict) for item in items):
            self.fail("items must be mappings")
        if not isinstance(test.get("text"), str) or test.get("sha256") != logfile.sha256_text(test["text"]):
            self.fail("the test file's text does not match its SHA-256")
        if not all(isinstance(condition, dict) and isinstance(condition.get("name"), str) for condition in conditions):
            self.fail("conditions must be mappings with a name")
        if len({condition["name"] for condition in conditions}) != len(conditions):
            self.fail("two conditions have the same name")
        for condition in conditions:
            name = condition["name"]
            text = condition.get("yaml")
            if text is not None and (not isinstance(text, str) or condition.get("sha256") != logfile.sha256_text(text)):
                self.fail(f"condition {name}'s preset does not match its SHA-256")
        if record["type"] == "mushra" and trials != len(items):
            self.fail("a MUSHRA test has one trial per item")
        return record

    def trial(self, header: dict, record: dict, index: int) -> None:
        if header["type"] == "mushra":
            if record.get("item") != index:
                self.fail(f"item {record.get('item')!r} where item {index} was due")
            ratings = self.need(record, "ratings", list, "a list")
            if len(ratings) != len(header["conditions"]) or not all(
                    isinstance(r, int) and not isinstance(r, bool) and 0 <= r <= 100 for r in ratings):
                self.fail(f"ratings must be {len(header['conditions'])} whole numbers from 0 to 100")
            if index >= header["trials"]:
                self.fail("more items than the test has")
            return
        if record.get("trial") != index:
            self.fail(f"trial {record.get('trial')!r} where trial {index} was due")
        if index >= header["trials"]:
            self.fail("more trials than the test has")
        if record.get("item") != item_of_trial(index, header["trials"], len(header["items"])):
            self.fail(f"trial {index} plays item {item_of_trial(index, header['trials'], len(header['items']))}, "
                      f"not {record.get('item')!r}")
        if record.get("answer") not in ABX_LETTERS:
            self.fail("answer must be A or B")

    def final(self, header: dict, trials: list[dict], final: dict) -> None:
        nonce = final.get("nonce")
        assignments = final.get("assignments")
        if not isinstance(nonce, str) or logfile.commitment(nonce, assignments) != header["commitment"]:
            self.fail("the revealed nonce and assignments do not match the commitment in line 1")
        names = [condition["name"] for condition in header["conditions"]]
        practice = header["practice"]
        try:
            if header["type"] == "mushra":
                if not (isinstance(assignments, list) and len(assignments) == header["trials"] and all(
                        isinstance(order, list) and sorted(order) == sorted(names) for order in assignments)):
                    self.fail("the assignments are not one order of the conditions per item")
                if len(trials) != header["trials"]:
                    self.fail(f"{len(trials)} rated items of {header['trials']}")
                if practice and any(record.get("order") != assignments[record["item"]] for record in trials):
                    self.fail("a practice item told another order than the assignments")
                recomputed = mushra_results([record["ratings"] for record in trials], assignments, names,
                                            practice=practice)
            else:
                if not (isinstance(assignments, list) and len(assignments) == header["trials"]
                        and all(letter in ABX_LETTERS for letter in assignments)):
                    self.fail("the assignments are not one of A, B per trial")
                answers = [record["answer"] for record in trials]
                if practice and any(record.get("x") != assignments[i] or record.get("correct") != (
                        record["answer"] == assignments[i]) for i, record in enumerate(trials)):
                    self.fail("a practice trial told another answer than the assignments")
                recomputed = abx_results(answers, assignments, trials=header["trials"],
                                         sequential=header["sequential"], practice=practice)
        except ValueError as err:
            self.fail(f"the answers do not make a whole test: {err}")
        if recomputed != final.get("results"):
            self.fail("the results stated are not those of the answers and the revealed assignments "
                      f"(recomputed: {'; '.join(' '.join(line.split()) for line in result_lines(recomputed))})")

    def files(self, header: dict) -> list[str]:
        """Re-hash the files at hand (line 1 states their hashes); the ones not at hand."""
        from rtq.errors import PresetError
        from rtq.presets import load_preset

        self.line = 1
        missing = []
        test = header["test"]
        if isinstance(test.get("path"), str) and os.path.isfile(test["path"]):
            if logfile.sha256_file(test["path"]) != test["sha256"]:
                self.fail(f"the test file {test['path']} has changed since the test (its SHA-256 differs)")
        else:
            missing.append("the test file")
        for condition in header["conditions"]:
            name, file = condition["name"], condition.get("file")
            if condition.get("yaml") is None:
                continue
            if not (isinstance(file, str) and os.path.isfile(file)):
                missing.append(f"condition {name}'s preset")
                continue
            try:
                text = preset_yaml(load_preset(file))
            except PresetError:
                text = None
            if text is None or logfile.sha256_text(text) != condition.get("sha256"):
                self.fail(f"condition {name}'s preset {file} has changed since the test")
        for index, item in enumerate(header["items"]):
            file = item.get("input")
            if file == LIVE:
                continue
            if not (isinstance(file, str) and os.path.isfile(file)):
                missing.append(f"item {index + 1}'s input")
            elif logfile.sha256_file(file) != item.get("sha256"):
                self.fail(f"item {index + 1}'s input {file} has changed since the test (its SHA-256 differs)")
        return missing
