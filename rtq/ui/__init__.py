"""The terminal side of ``rtq live``: the error meter's screen and its keys."""
