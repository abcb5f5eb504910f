"""Imported by every batch worker process before its first job: loads the renderer and
links its compiled entry points (from rtq's native cache, compiling them only if this
machine has none), so the first job costs what the others do.

Local workers fork from a server process that imported this module once
(``multiprocessing``'s forkserver preload), so they start with all of it in place;
Dask workers of ``--local-cluster`` import it as a preload when they start.

Imports make next to no cyclic garbage, but their many allocations trigger the cyclic
collector over and over (about a tenth of the imports' time), so collection is off
while they run.  At the end what they loaded is frozen (``gc.freeze``): it lives as long
as the process, so the collections of a long-lived worker need not walk it again, and a
process forked from the server does not write to its pages when it collects.
"""
import gc

gc.disable()

from ..program import process_in_place  # noqa: E402
from ..files.pcm import decode_entry, encode_entry  # noqa: E402
from . import worker  # noqa: E402, F401  (the job function's module)

process_in_place.ctypes
decode_entry.ctypes
encode_entry.ctypes
gc.freeze()
gc.enable()
