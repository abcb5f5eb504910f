"""Imported by every batch worker process before its first job: loads the renderer and
links its compiled entry points (from rtq's native cache, compiling them only if this
machine has none), so the first job costs what the others do.

Local workers fork from a server process that imported this module once
(``multiprocessing``'s forkserver preload), so they start with all of it in place;
Dask workers of ``--local-cluster`` import it as a preload when they start.
"""
from ..program import process_in_place
from ..files.pcm import decode_entry, encode_entry
from . import worker  # noqa: F401  (the job function's module)

process_in_place.ctypes
decode_entry.ctypes
encode_entry.ctypes
