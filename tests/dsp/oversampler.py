"""An offline up/down-sampler over the oversampling kernels, for tests and benchmarks
(it allocates its outputs; the real-time path calls the kernels on prepared buffers)."""
from __future__ import annotations

import numpy as np

from rtq.dsp.oversample import make_state, oversample_down, oversample_up, reset
from rtq.dsp.oversample_design import OversamplerDesign


class Oversampler:
    """Convenience wrapper owning a design and a state (offline use, tests, tools).

    Parameters
    ----------
    design : OversamplerDesign
    channels : int

    Notes
    -----
    ``up`` and ``down`` allocate their outputs; real-time code calls
    :func:`oversample_up` / :func:`oversample_down` on preallocated buffers instead.
    """

    def __init__(self, design: OversamplerDesign, channels: int):
        self.design = design
        self.channels = int(channels)
        self.state = make_state(design, channels)

    def reset(self) -> None:
        reset(self.state)

    def _planar(self, x: np.ndarray) -> np.ndarray:
        """``x`` (frames, C) or (frames,) as a C-contiguous planar (C, frames) copy."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[1]}")
        return np.ascontiguousarray(x.T)

    def up(self, x: np.ndarray) -> np.ndarray:
        """Stream rate ``(n, C)`` -> top rate ``(L n, C)``."""
        x = self._planar(x)
        out = np.empty((self.channels, x.shape[1] * self.design.factor))
        oversample_up(self.design.coeffs, x, x.shape[1], self.state, out)
        return out.T

    def down(self, y: np.ndarray) -> np.ndarray:
        """Top rate ``(L n, C)`` -> stream rate ``(n, C)``."""
        y = self._planar(y)
        n, r = divmod(y.shape[1], self.design.factor)
        if r:
            raise ValueError("top-rate frame count must be a multiple of the factor")
        out = np.empty((self.channels, n))
        oversample_down(self.design.coeffs, y, n, self.state, out)
        return out.T

    def round_trip(self, x: np.ndarray) -> np.ndarray:
        """Up then down (identity inner chain)."""
        return self.down(self.up(x))
