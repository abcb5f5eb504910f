"""Gain: every sample times a constant, in place."""
from ..jit import kernel


def pack(gain: float) -> dict:
    """A gain's op for :meth:`rtq.program.ProgramBuilder.add_op` (``params``: the linear
    gain), read back by :func:`gain_op`."""
    return {"params": [gain]}


@kernel
def gain_op(buf, n, params):
    """Multiply ``buf[:, :n]`` (channels, frames) by ``params[0]``."""
    g = params[0]
    for c in range(buf.shape[0]):
        for t in range(n):
            buf[c, t] *= g
