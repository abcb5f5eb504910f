"""Key presses from a terminal (rtq.ui.keys): decoding, cbreak mode and its restoration."""
from __future__ import annotations

import io
import os
import pty
import termios
import time

import pytest

from rtq.ui.keys import KeyReader, decode_keys


def test_decode_keys():
    assert decode_keys("+-dq") == ["+", "-", "d", "q"]
    assert decode_keys("\x1b[A\x1b[B\x1bOC\x1b[D") == ["up", "down", "right", "left"]
    assert decode_keys("\t\x1b[Z\r") == ["tab", "shift-tab", "enter"]
    assert decode_keys("\x1b") == ["esc"]
    assert decode_keys("\x1b[15~m") == ["m"]          # F5: skipped whole
    assert decode_keys("\x1b[1;5Ax") == ["x"]         # ctrl-up: skipped whole
    assert decode_keys("\x01?") == ["?"]              # control characters dropped


def test_key_reader_cbreak_and_restore():
    master, slave = pty.openpty()
    try:
        with open(slave, "rb", buffering=0, closefd=False) as stream:
            before = termios.tcgetattr(slave)
            assert before[3] & termios.ICANON and before[3] & termios.ECHO
            with KeyReader(stream) as reader:
                assert reader.active
                mode = termios.tcgetattr(slave)
                assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO
                assert mode[3] & termios.ISIG                 # Ctrl-C still interrupts
                assert reader.read() == []                    # nothing typed: no wait
                os.write(master, b"-\x1b[Aq")
                deadline = time.monotonic() + 2
                keys = []
                while len(keys) < 3 and time.monotonic() < deadline:
                    keys += reader.read()
                    time.sleep(0.01)
                assert keys == ["-", "up", "q"]
            assert termios.tcgetattr(slave) == before
            # Restored on an exception too.
            with pytest.raises(KeyboardInterrupt):
                with KeyReader(stream):
                    raise KeyboardInterrupt
            assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_key_reader_without_terminal():
    with KeyReader(io.StringIO()) as reader:
        assert not reader.active
        assert reader.read() == []
