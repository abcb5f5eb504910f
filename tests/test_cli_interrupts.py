"""Ctrl-C always stops a command (rtq.commands.interrupts_kept)."""
from __future__ import annotations

import ctypes
import signal
import sys

import pytest

from rtq.commands import interrupts_kept

# A C caller of Python code, as llvmlite's object cache is while Numba compiles: an
# exception raised in the callback never reaches the caller.
def press_ctrl_c_inside_a_ctypes_callback() -> None:
    ctypes.CFUNCTYPE(None)(lambda: signal.raise_signal(signal.SIGINT))()


def test_a_ctrl_c_that_ctypes_drops_still_stops_the_block(capfd):
    went_on = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_kept():
            press_ctrl_c_inside_a_ctypes_callback()
            went_on.append(True)  # the dropped interrupt did not stop the code here
    assert went_on == [True]
    assert "Exception ignored" not in capfd.readouterr().err


def test_without_the_block_ctypes_drops_the_ctrl_c(monkeypatch):
    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: dropped.append(type(info.exc_value)))
    press_ctrl_c_inside_a_ctypes_callback()  # no KeyboardInterrupt here: it is lost
    assert dropped == [KeyboardInterrupt]


def test_nested_blocks_stop_at_the_inner_one():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_kept():
            with interrupts_kept():
                press_ctrl_c_inside_a_ctypes_callback()
            reached.append("outer")
    assert reached == []


def test_an_error_raised_because_of_the_ctrl_c_becomes_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        with interrupts_kept():
            press_ctrl_c_inside_a_ctypes_callback()
            raise RuntimeError("a compiler wrapped the interrupt")


def test_other_errors_handled_interrupts_and_quiet_blocks_pass_through():
    with pytest.raises(ValueError):
        with interrupts_kept():
            raise ValueError("not an interrupt")
    with interrupts_kept():
        try:
            signal.raise_signal(signal.SIGINT)  # delivered, and handled by the code
        except KeyboardInterrupt:
            pass
    with interrupts_kept():
        pass
