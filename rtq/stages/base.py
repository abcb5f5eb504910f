"""What every stage kind shares: the :class:`Stage` base class and the one walk over a
tree of stages (nested ones included) that every caller uses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple

from ..errors import LimitError, PresetError
from ..processor import EmitContext, Processor, QuantizerInfo
from ..program import ProgramBuilder
from ..schema import ArgumentChecker, Fields


class Place(NamedTuple):
    """A stage and where it sits in a tree of stages."""

    path: tuple[int, ...]   # indices from the top chain down (the prepared chain's key)
    stage: "Stage"
    factor: int             # the rate it runs at, in stream rates


def walk(stages, path: tuple[int, ...] = (), factor: int = 1) -> Iterator[Place]:
    """Every stage of ``stages``, depth first in chain order, inner stages right after
    the stage that holds them, each with its :class:`Place`."""
    for index, stage in enumerate(stages):
        here = path + (index,)
        yield Place(here, stage, factor)
        yield from walk(stage.children(), here, factor * stage.rate_factor)


@dataclass(frozen=True)
class OutputGrid:
    """The grid a stage leaves its output on, for a file's sample format: values of the
    ``bits``-bit uniform grid (codes from ``-2^(bits-1)`` to ``2^(bits-1) - 1`` times
    ``2^(1-bits)``), and, for a G.711 compander, the ``law`` whose codes they are."""

    bits: int
    law: str | None = None

    def __str__(self) -> str:
        return f"{self.law} codes" if self.law else f"{self.bits}-bit grid"


class Stage(Processor):
    """Base class: one element of a chain; a processor on its own too.

    A kind (a subclass, one module each in :mod:`rtq.stages`) sets :attr:`kind` and its
    parameters' rules (:attr:`schema`, which presets and the constructor both follow),
    and says what it emits into the program (:meth:`emit`), how it is labelled and
    described, and what grid its output lies on.

    ``where`` maps parameter names (and ``""`` for the stage) to ``file:line:column``
    for a stage read from a preset (empty for one built in Python), so problems found
    later (at a stream rate) point into the file.
    """

    kind = ""
    schema = Fields({})
    is_quantizer = False
    rate_factor = 1          # the rate the stage's children run at, in its own rate

    def __init__(self, where: dict[str, str] | None = None):
        super().__init__()
        self.where = dict(where or {})

    @classmethod
    def checked(cls, params: dict) -> dict:
        """``params`` (in the preset grammar) checked by :attr:`schema` and normalised; a
        ValueError names the first problem (``requantize.bits must be ...``)."""
        checker = ArgumentChecker(cls.kind, Stage)
        result = cls.schema.check(params, (), checker)
        checker.raise_first()
        return result

    @classmethod
    def from_params(cls, params: dict, where: dict[str, str]) -> "Stage":
        """The stage validated preset parameters describe (nested stages already built)."""
        return cls(**params, where=where)

    def arguments(self) -> dict:
        """The constructor's arguments that build this stage again."""
        raise NotImplementedError

    def replaced(self, **changes) -> "Stage":
        """A new stage like this one with ``changes`` (constructor arguments), checked as
        the constructor checks them; the changed parameters no longer point into the
        preset this stage came from (problems with them name the parameter instead)."""
        where = dict(self.where)
        where.update({self._where_key(key): "" for key in changes})
        return type(self)(**{**self.arguments(), **changes}, where=where)

    def _where_key(self, argument: str) -> str:
        """The preset key a constructor argument is written under."""
        return argument

    def children(self) -> list["Stage"]:
        """Stages this one holds (run at :attr:`rate_factor` times its rate)."""
        return []

    def emit(self, builder: ProgramBuilder, ctx: EmitContext) -> QuantizerInfo | None:
        """Append the stage's ops to ``builder``; a quantizer returns what the meter needs
        to know about it (the prepared chain keeps it, not the stage)."""
        raise NotImplementedError

    @property
    def latency(self) -> float:
        """Delay the stage adds, in samples at the rate it runs at."""
        return 0.0

    def net_gain(self) -> float:
        """Linear gain the stage applies to the signal (quantizers: 1)."""
        return 1.0

    def rate_limits(self, factor: int = 1) -> list:
        """What limits the stream rate this stage can run at, when it runs at ``factor``
        times the stream rate (empty: any rate); see :mod:`rtq.stages.rates`."""
        return []

    def label(self) -> str:
        """A short label for the meter and the screen: ``requantize 16-bit tpdf shibata``."""
        return self.kind

    def info_line(self, rate: float, stream_rate: float) -> str:
        """One line for ``rtq info``, running at ``rate`` in a stream at ``stream_rate``."""
        return self.kind

    def output_grid(self) -> OutputGrid | None:
        """The grid the stage's output lies on, when a chain ends with it (None: none)."""
        return None

    def location(self, key: str = "") -> str:
        """Where parameter ``key`` was written: ``file:line:column`` (the stage's own place
        for a parameter left at its default), else its name (``requantize.shaping``)."""
        return self._file_location(key) or (f"{self.kind}.{key}" if key else self.kind)

    def _file_location(self, key: str) -> str | None:
        here = self.where.get(key)
        if here is None:        # not written: the stage's place ("" once changed in Python)
            here = self.where.get("")
        return here or None

    def refuse(self, key: str, message: str):
        """Raise a limit's refusal of parameter ``key``: a :class:`~rtq.errors.PresetError`
        at its place in the preset, or a :class:`~rtq.errors.LimitError` naming it."""
        here = self._file_location(key)
        if here:
            raise PresetError(f"{here}: {message}")
        raise LimitError(f"{self.location(key)}: {message}")
