"""rtq.listen is exported from rtq, lazily: naming it loads no audio library."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rtq_listen_loads_no_audio():
    code = ("import sys, rtq\n"
            "assert 'rtq.listen' not in sys.modules\n"
            "assert rtq.listen.binomial_p(12, 16) == 2517 / 65536\n"
            "rtq.listen.AbxTest, rtq.listen.MushraTest, rtq.listen.verify, rtq.listen.load_test\n"
            "loaded = [m for m in ('sounddevice', 'numba', 'rtq.live', 'rich') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_rtq_names_only_what_it_has():
    import pytest
    import rtq

    with pytest.raises(AttributeError):
        rtq.no_such_thing
