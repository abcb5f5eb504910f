"""MUSHRA tests (ITU-R BS.1534-3) driven from Python: a host, a scripted listener or the
terminal UI.

::

    from rtq.listen import MushraTest, load_test

    with MushraTest(load_test("shapers.yaml"), listener="ann") as test:
        while not test.done:
            test.play_reference(); test.play(0); ...        # slots 0 .. test.slots - 1
            for slot in range(test.slots):
                test.rate(slot, 80)
            test.next()
        print(test.results["conditions"])

Each item shows every condition (the hidden reference and the anchors among them) on
its own slot, in an order shuffled per item and per listener from the OS's secret
randomness; the open reference is played by :meth:`MushraTest.play_reference`.  With
``practice=True`` :meth:`MushraTest.next` returns which condition each slot was.
"""
from __future__ import annotations

from .driver import Driver, now
from .scoring import draw_mushra, mushra_results
from .testfile import REFERENCE, ListeningTest

RATING_RANGE = (0, 100)


class MushraTest(Driver):
    """A MUSHRA test over the conditions of ``test`` (see :class:`~rtq.listen.driver.Driver`
    for the arguments)."""

    reference_name = REFERENCE

    def __init__(self, test: ListeningTest, **options):
        if test.type != "mushra":
            raise ValueError(f"MushraTest runs mushra tests; {test.path} is an {test.type} test")
        self.item_ratings: list[list[int]] = []     # per finished item, slot order
        super().__init__(test, **options)

    @property
    def item(self) -> int:
        """The current item (0-based); after the end, the number of items."""
        return len(self.item_ratings)

    @property
    def slots(self) -> int:
        """How many conditions each item shows."""
        return len(self.test.conditions)

    def play_reference(self) -> None:
        """Play the open reference."""
        self._select("reference", REFERENCE)

    def play(self, slot: int | None) -> None:
        """Play the condition on ``slot`` (0-based; None: silence)."""
        if slot is None:
            self._select(None, None)
            return
        self._check_slot(slot)
        self._select(str(slot + 1), self.assignments[self.item][slot])

    def stop(self) -> None:
        self.play(None)

    def rate(self, slot: int, rating: int) -> None:
        """Rate ``slot`` 0 to 100 (whole numbers, as webMUSHRA's sliders)."""
        self._check_slot(slot)
        lo, hi = RATING_RANGE
        if isinstance(rating, bool) or not isinstance(rating, int) or not lo <= rating <= hi:
            raise ValueError(f"a rating is a whole number from {lo} to {hi}, got {rating!r}")
        self.ratings[slot] = rating

    @property
    def complete(self) -> bool:
        """Whether every slot of the current item has a rating."""
        return not self.done and None not in self.ratings

    def next(self) -> list[str] | None:
        """Log the current item's ratings (fsync-ed) and go to the next item (or end the
        test); returns each slot's condition in a practice test, else None."""
        if self.done:
            raise RuntimeError("the test has ended")
        if not self.complete:
            missing = ", ".join(str(slot + 1) for slot, rating in enumerate(self.ratings) if rating is None)
            raise ValueError(f"rate every condition before going on (not rated: {missing})")
        order = self.assignments[self.item]
        record = {"record": "ratings", "item": self.item, "ratings": list(self.ratings), "played": self._played(),
                  "loop": list(self.loop), "seconds": self._elapsed(), "time": now()}
        if self.practice:
            record["order"] = order
        self._log.write(record)
        self.item_ratings.append(list(self.ratings))
        self._continue()
        return list(order) if self.practice else None

    def _check_slot(self, slot) -> None:
        if self.done:
            raise RuntimeError("the test has ended")
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < self.slots:
            raise ValueError(f"slots run from 0 to {self.slots - 1}, got {slot!r}")

    def _continue(self) -> None:
        if self.item == len(self.test.items):
            self._finish()
            return
        self.ratings: list[int | None] = [None] * self.slots
        self._open_item(self.item)
        self._begin()

    # -- Driver --------------------------------------------------------------------------

    def _draw(self) -> list[list[str]]:
        return draw_mushra(self.test.names, len(self.test.items))

    def _restore(self, records: list[dict]) -> None:
        self.item_ratings = [record["ratings"] for record in records if record["record"] == "ratings"]

    def _completed(self) -> int:
        return len(self.item_ratings)

    def _results(self) -> dict:
        return mushra_results(self.item_ratings, self.assignments, self.test.names, practice=self.practice)
