"""The ``rtq`` subcommands, one module each.

A subcommand module has ``add(subparsers)``, which declares its arguments and sets
``run`` (``run(args) -> int``, the exit status).  To add a subcommand, write such a module
and list it in :data:`rtq.cli.COMMANDS`.  Modules import their heavy dependencies
(NumPy and the DSP modules, rtq's compiled code, PortAudio) inside ``run``, so parsing stays fast and ``rtq presets``
never pays for them.
"""
from __future__ import annotations

import contextlib
import gc
import math
import sys

from rtq.errors import PresetError, RtqError, UsageError
from rtq.spec import MAX_SEED, checked_integer


def check_positive(value: float | None, option: str) -> None:
    """A number option (``--duration``) is finite and above zero, if given."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} must be a positive number, not {value:g}")


def check_seed(seed: int | None) -> None:
    """``--seed`` lies in the range presets and chains allow (0 to 2**64 - 1), if given."""
    if seed is not None:
        try:
            checked_integer(seed, "--seed", 0, MAX_SEED)
        except ValueError as err:
            raise UsageError(str(err)) from None


def add_web_options(parser, what: str) -> None:
    """``--web``, ``--host``, ``--port``: serve ``what`` as a page in a browser."""
    parser.add_argument("--web", action="store_true",
                        help=f"serve {what} as a page in a browser instead (prints its address; needs rtq[web])")
    parser.add_argument("--host", default=None, metavar="ADDRESS",
                        help="with --web: the interface to listen on (default 127.0.0.1, this machine only; "
                             "0.0.0.0 for a phone or tablet on the network)")
    parser.add_argument("--port", type=int, default=None, metavar="N",
                        help="with --web: the TCP port (default 0: a free one)")


def web_address(args) -> tuple[str, int]:
    """``(host, port)`` of the web options; one-line usage errors for ports out of range
    and for ``--host``/``--port`` without ``--web``."""
    if not args.web:
        for option, value in (("--host", args.host), ("--port", args.port)):
            if value is not None:
                raise UsageError(f"{option} serves the page of --web; add --web")
    port = 0 if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0 (a free port) to 65535, not {port}")
    return (args.host or "127.0.0.1"), port


def report_error(err: RtqError) -> None:
    """Print a user error to stderr: preset problems as they are (``file:line:col: ...``),
    others after ``rtq:``."""
    prefix = "" if isinstance(err, PresetError) and err.located else "rtq: "
    for line in str(err).splitlines():
        print(prefix + line, file=sys.stderr)


def sigma_delta_lines(stages, stream_rate: float) -> list[str]:
    """For each designed-NTF (sigma-delta) loop in ``stages`` at ``stream_rate``: its
    maximum stable amplitude and the peak a full-scale input reaches it at (through the
    gains before it), as a line for ``rtq info`` and ``rtq validate``, starting with
    ``warning:`` when a full-scale input goes above the loop's stable amplitude."""
    from rtq.stages import walk
    from rtq.ui.units import rate_text

    lines = []
    for place in walk(stages):
        msa = getattr(place.stage, "stable_amplitude", lambda *_: None)(stream_rate * place.factor, stream_rate)
        if msa is None:
            continue
        reach = _gain_before(stages, place.path)
        number = ".".join(str(i + 1) for i in place.path)
        text = (f"sigma-delta loop {number} is stable up to {msa:.3f} peak ({20 * math.log10(msa):+.1f} dB re full "
                f"scale, at {rate_text(stream_rate * place.factor)}); a full-scale input reaches it at {reach:.3f} "
                f"({20 * math.log10(reach):+.1f} dB)")
        if reach > msa:
            lines.append(f"warning: {text}: input peaks above {20 * math.log10(msa / reach):+.1f} dB re full scale "
                         "overload it and its noise floor collapses (counted as overloads)")
        else:
            lines.append(f"{text}, {20 * math.log10(msa / reach):.1f} dB below")
    return lines


def _gain_before(stages, path) -> float:
    """The linear gain from the chain's input to the stage at ``path``: the gains of the
    stages before it, at its level and at every level above it."""
    gain = 1.0
    for index in path:
        for stage in stages[:index]:
            gain *= stage.net_gain()
        stages = stages[index].children()
    return gain


@contextlib.contextmanager
def starting():
    """Run the block (a command's start: imports, its preset, its chain) with Python's
    cyclic collector off, then freeze what it made (``gc.freeze``: it lives as long as
    the command, and later collections need not walk it) and turn the collector back on.

    Imports make next to no cyclic garbage, but their allocations set the collector off
    over and over, walking every young object each time.  Blocks nest: only the
    outermost turns the collector back on, and only if it was on."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


@contextlib.contextmanager
def interrupts_kept():
    """Make sure a Ctrl-C within the block stops the command, even during a compile.

    Python raises ``KeyboardInterrupt`` wherever the main thread is.  When that is a
    Python function LLVM calls back through ctypes (llvmlite's object cache, while
    Numba compiles), ctypes drops it with an "Exception ignored" message and the
    compile goes on as if no key had been pressed (seen: a cold ``rtq live`` kept
    playing).  Within this block such a dropped interrupt is kept instead of printed,
    and raised again when the block ends (or replaces the exception the block ends
    with), not sooner: so the block should be the compile.  ``rtq live`` wraps the
    session's build; ``rtq.cli.main`` wraps every command, so that one dropped anywhere
    else still ends it with status 130, when the command is done.  Interrupts the code
    receives and handles are left alone.  Blocks nest.
    """
    dropped = []

    def unraisable(info, hook=sys.unraisablehook):
        if isinstance(info.exc_value, KeyboardInterrupt):
            dropped.append(info.exc_value)
        else:
            hook(info)

    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    except BaseException:
        if dropped:
            raise dropped[0] from None   # the same kind (Ctrl-C or SIGTERM: rtq.cli.Terminated)
        raise
    finally:
        sys.unraisablehook = hook
    if dropped:
        raise dropped[0]
