"""rtq's one way into PortAudio: sounddevice, imported quietly and under rtq's JACK name.

Importing sounddevice initialises PortAudio, and PortAudio's JACK host API opens its
JACK client right then, under the name given beforehand to ``PaJack_SetClientName``
(else "PortAudio").  rtq gives it :data:`JACK_CLIENT_NAME`, so a patchbay (qjackctl,
Carla, ``jack_lsp``) shows rtq's ports as ``rtq:in_0`` ... ``rtq:out_1``
(:data:`JACK_PORTS`).  Start-up also probes every host API, and libjack and ALSA print
noise to stderr when there is no server or no card; it is silenced here, so rtq's own
one-line notice stands alone.

Every rtq module takes ``sd`` from here.  In a process that imported sounddevice
before rtq, PortAudio is initialised already and keeps its own name.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

from .quiet import silenced_stderr

# PortAudio keeps the pointer, not a copy: a module constant outlives every stream.
JACK_CLIENT_NAME = b"rtq"
#: rtq's JACK ports: PortAudio opens its client when it starts, so every process that
#: initialised it holds one, and JACK names the second ``rtq-01`` (and so on).
JACK_PORTS = r"^rtq(-[0-9]+)?:"


def _name_jack_client() -> None:
    if "sounddevice" in sys.modules:
        return   # PortAudio is initialised: too late to name its client
    path = ctypes.util.find_library("portaudio")   # the library sounddevice loads on Linux
    try:
        set_name = ctypes.CDLL(path).PaJack_SetClientName if path else None
    except (OSError, AttributeError):   # a PortAudio built without JACK
        set_name = None
    if set_name is not None:
        set_name.argtypes, set_name.restype = [ctypes.c_char_p], ctypes.c_int
        set_name(JACK_CLIENT_NAME)


_name_jack_client()
with silenced_stderr():
    import sounddevice as sd  # noqa: E402

__all__ = ["JACK_CLIENT_NAME", "JACK_PORTS", "sd"]
