"""ABX (and ABXY) tests driven from Python: a host, a scripted listener or the terminal UI.

::

    from rtq.listen import AbxTest, load_test

    with AbxTest(load_test("shaping-abx.yaml"), listener="ann") as abx:
        while not abx.done:
            abx.play("A"); ...; abx.play("X")      # as often and as long as the listener likes
            abx.answer("B")                        # "X is B"
        print(abx.results)                         # {'mode': 'fixed', 'correct': 12, 'trials': 16, ...}

The score is kept from the listener until the test ends (no running score: looking at
it after every trial would raise a guesser's chance of a "significant" result from 5 %
to about 20 %); a sequential test ends by itself when the answers reach the boundary.
With ``practice=True`` the test is unscored and :meth:`AbxTest.answer` returns what X
was.
"""
from __future__ import annotations

from .driver import Driver, now
from .scoring import ABX_LETTERS, abx_results, draw_abx
from .stats import AbxScore
from .testfile import ListeningTest, item_of_trial


class AbxTest(Driver):
    """An ABX or ABXY test over the two conditions of ``test`` (see :class:`~rtq.listen.driver.Driver`
    for the arguments).

    Each trial plays ``A``, ``B`` and ``X`` (and ``Y`` in ABXY: the one X is not) on the
    listener's request; :meth:`answer` says which one X is.  Trials are split over the
    test's items in order (:func:`~rtq.listen.testfile.item_of_trial`).
    """

    reference_name = "A"

    def __init__(self, test: ListeningTest, **options):
        if not test.is_abx:
            raise ValueError(f"AbxTest runs abx and abxy tests; {test.path} is a {test.type} test")
        self.answers: list[str] = []
        self._score: AbxScore | None = None
        super().__init__(test, **options)

    @property
    def _sequential(self) -> bool:
        return self.test.sequential and not self.practice

    @property
    def labels(self) -> tuple[str, ...]:
        """What the listener may play: A, B, X (and Y)."""
        return ("A", "B", "X", "Y") if self.test.type == "abxy" else ("A", "B", "X")

    @property
    def trial(self) -> int:
        """The current trial (0-based); after the end, the number of trials answered."""
        return len(self.answers)

    @property
    def item(self) -> int:
        return item_of_trial(min(self.trial, self.test.trials - 1), self.test.trials, len(self.test.items))

    def play(self, label: str | None) -> None:
        """Play ``label`` (one of :attr:`labels`) from where the playhead is; None: silence."""
        if label is None:
            self._select(None, None)
            return
        if label not in self.labels:
            raise ValueError(f"play takes one of {', '.join(self.labels)} (or None), got {label!r}")
        x = self.assignments[self.trial]
        other = ABX_LETTERS[1 - ABX_LETTERS.index(x)]
        self._select(label, {"A": "A", "B": "B", "X": x, "Y": other}[label])

    def stop(self) -> None:
        """Silence until the next :meth:`play`."""
        self.play(None)

    def answer(self, x_is: str) -> str | None:
        """Answer the current trial: ``x_is`` is "A" or "B".  Logs the trial (fsync-ed) and
        moves on; returns what X was in a practice test, else None."""
        if self.done:
            raise RuntimeError("the test has ended")
        if x_is not in ABX_LETTERS:
            raise ValueError(f"answer 'A' or 'B' (which one X is), got {x_is!r}")
        truth = self.assignments[self.trial]
        record = {"record": "trial", "trial": self.trial, "item": self.item, "answer": x_is,
                  "played": self._played(), "loop": list(self.loop), "seconds": self._elapsed(), "time": now()}
        if self.practice:
            record.update(x=truth, correct=x_is == truth)
        self._log.write(record)
        self.answers.append(x_is)
        self._score.add(x_is == truth)
        self._continue()
        return truth if self.practice else None

    def _continue(self) -> None:
        if self._score is None:          # a new test, or answers read back from a resumed log
            self._score = AbxScore(self.test.trials, self._sequential)
            for answer, truth in zip(self.answers, self.assignments):
                self._score.add(answer == truth)
        if self._score.ended:
            self._finish()
        else:
            self._open_item(self.item)
            self._begin()

    # -- Driver --------------------------------------------------------------------------

    def _draw(self) -> list[str]:
        return draw_abx(self.test.trials)

    def _restore(self, records: list[dict]) -> None:
        self.answers = [record["answer"] for record in records if record["record"] == "trial"]

    def _completed(self) -> int:
        return len(self.answers)

    def _results(self) -> dict:
        return abx_results(self.answers, self.assignments, trials=self.test.trials,
                           sequential=self._sequential, practice=self.practice)
