"""Quantization-error meter: the measurement math, off the audio thread.

* :mod:`rtq.meter.weighting` -- A and ITU-R BS.468 weighting curves;
* :mod:`rtq.meter.measure` -- :class:`ErrorMeter`, the streaming per-stage error meter;
* :mod:`rtq.meter.align` -- :func:`align`, lag and gain of a processed file against its
  reference (``rtq analyze``).
"""
from .align import align
from .measure import ErrorMeter, grid_step
from .weighting import a_weighting_db, itu468_weighting_db, power_weighting, white_noise_gain_db

__all__ = ["ErrorMeter", "a_weighting_db", "align", "grid_step", "itu468_weighting_db",
           "power_weighting", "white_noise_gain_db"]
