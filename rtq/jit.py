"""The one way rtq compiles its audio kernels.

``kernel`` is ``numba.njit`` with the real-time settings every audio-path function
needs: ``cache=True`` (no compiling at start-up once the cache is warm), ``nogil=True``
(offline threads and the live callback run without the GIL) and
``error_model="numpy"`` (no Python exception paths: a division by zero gives inf/nan
instead of taking the GIL to raise).
"""
from numba import njit

kernel = njit(cache=True, nogil=True, error_model="numpy")
