"""The fork server's preload for the worker processes of a ``--local-cluster``: Dask's
``distributed``, then :mod:`rtq.batch.warm`, with the cyclic collector off from the
first import (``warm`` says why, and turns it back on)."""
import gc

gc.disable()

import distributed  # noqa: E402, F401

from . import warm  # noqa: E402, F401
