"""Training quantizer levels (``rtq train``): Lloyd-Max designs for audio files, or for a
distribution, written as a levels file (:mod:`rtq.levels_file`).

Files are streamed in blocks of :data:`BLOCK_FRAMES` into a :class:`~rtq.dsp.lloyd_max.Histogram`
(per bin: count, sum, sum of squares), so memory is the histogram's whatever the files'
length: :func:`~rtq.dsp.lloyd_max.histogram_bins` bins per channel (1024 per level, at
most 2^22 and 256 MiB in all: 384 KiB for 4 bits, 96 MiB per channel from 12 bits).
The design then runs on the histogram (see :mod:`rtq.dsp.lloyd_max` for why Lloyd's
iteration on a histogram, started from an exact search, rather than an exact k-means
over the samples).  Beside each design, the figures of rtq's uniform grid with as many
levels, over the same data.

The levels are rounded to float32 values (a change of at most 3e-8 of full scale, far
below any design's MSE), so a float file holds the quantizer's output exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .dsp import lloyd_max
from .dsp.lloyd_max import Figures
from .dsp.requantize import grid_of
from .errors import UsageError
from .files.audio import AudioInput

BLOCK_FRAMES = 65536
CHANNEL_MODES = ("joint", "each")


@dataclass(frozen=True)
class Training:
    """What :func:`train_files` or :func:`train_pdf` made: per set of levels (one, or
    one per channel) the levels, the design's figures and the uniform grid's."""

    bits: int
    sets: tuple[tuple[float, ...], ...]
    designs: tuple[Figures, ...]
    uniform: tuple[Figures, ...]
    source: str                 # what it was trained on, for the file's comments
    samples: int = 0


def _float32_levels(levels: np.ndarray) -> tuple[float, ...]:
    rounded = np.unique(levels.astype(np.float32).astype(np.float64))
    if rounded.size != levels.size:
        raise UsageError("the design's levels are closer together than float32 can tell apart")
    return tuple(float(v) for v in rounded)


def train_files(paths, bits: int, *, channels: str = "joint", max_seconds: float | None = None) -> Training:
    """Lloyd-Max levels of ``2^bits`` for the samples of the audio files ``paths``:
    ``channels`` "joint" (one design over every channel) or "each" (one per channel:
    every file must have as many); ``max_seconds`` reads at most that much of each file."""
    if channels not in CHANNEL_MODES:
        raise UsageError(f"--channels must be one of {', '.join(CHANNEL_MODES)}, got {channels}")
    count = 2 ** bits
    hist = None
    seconds = 0.0
    for path in paths:
        with AudioInput(path) as src:
            if hist is None:
                width = src.channels if channels == "each" else 1
                hist = lloyd_max.Histogram(lloyd_max.histogram_bins(count, width), width)
                first = (path, src.channels)
            elif channels == "each" and src.channels != hist.channels:
                raise UsageError(f"{path} has {src.channels} channels and {first[0]} {first[1]}: "
                                 "--channels each trains one design per channel of files alike")
            limit = math.inf if max_seconds is None else int(round(max_seconds * src.samplerate))
            buf = np.empty((min(BLOCK_FRAMES, limit) if limit != math.inf else BLOCK_FRAMES, src.channels))
            done = 0
            while done < limit:
                n = src.read_into(buf[:int(min(buf.shape[0], limit - done))])
                if not n:
                    break
                if channels == "each":
                    hist.add(buf[:n])
                else:
                    hist.add(buf[:n], 0)
                done += n
            seconds += done / src.samplerate
    if hist is None or hist.samples == 0:
        raise UsageError("no samples to train on")
    sets, designs, uniform = [], [], []
    for c in range(hist.channels):
        try:
            design = lloyd_max.design_from_histogram(hist, count, c)
        except ValueError as err:
            raise UsageError(f"cannot design {count} levels{f' for channel {c + 1}' if hist.channels > 1 else ''}: "
                             f"{err}") from None
        sets.append(_float32_levels(design.levels))
        designs.append(Figures(_mse_on_histogram(hist, np.array(sets[-1]), c), design.power))
        uniform.append(Figures(lloyd_max.uniform_mse(hist, bits, c), design.power))
    names = ", ".join(str(p) for p in paths)
    source = (f"{hist.samples} samples ({seconds:.1f} s) of {names}"
              + (f", at most {max_seconds:g} s of each" if max_seconds is not None else ""))
    return Training(bits, tuple(sets), tuple(designs), tuple(uniform), source, hist.samples)


def _mse_on_histogram(hist, levels: np.ndarray, channel: int) -> float:
    """The MSE of ``levels`` over the histogram's samples (the bins holding a threshold
    split as the design splits them)."""
    c0, c1, c2 = hist.moments(channel)
    position = np.clip((lloyd_max.midpoints(levels) + 1.0) * (hist.bins / 2.0), 0.0, hist.bins)
    j = np.minimum(position.astype(np.int64), hist.bins - 1)
    f = position - j
    m = [np.diff(np.concatenate([[0.0], c[j] + f * (c[j + 1] - c[j]), [float(c[-1])]])) for c in (c0, c1, c2)]
    return float(np.sum(m[2] - 2.0 * levels * m[1] + levels * levels * m[0]) / c0[-1])


def train_pdf(pdf: str, bits: int, rms_dbfs: float) -> Training:
    """Lloyd-Max levels of ``2^bits`` for a zero-mean ``pdf`` of RMS ``rms_dbfs``,
    conditioned on full scale (what a file can hold)."""
    sigma = 10.0 ** (rms_dbfs / 20.0)
    design = lloyd_max.design_for_pdf(pdf, 2 ** bits, sigma, (-1.0, 1.0))
    levels = _float32_levels(design.levels)
    step, off, lo, hi = grid_of(bits)
    grid = (np.arange(lo, hi + 1) + off) * step
    figures = Figures(lloyd_max.pdf_mse(pdf, np.array(levels), sigma, (-1.0, 1.0)), design.power)
    uniform = Figures(lloyd_max.pdf_mse(pdf, grid, sigma, (-1.0, 1.0)), design.power)
    return Training(bits, (levels,), (figures,), (uniform,), f"a {pdf} distribution at {rms_dbfs:g} dBFS RMS "
                                                             "(within full scale)")


def report_lines(training: Training) -> list[str]:
    """What ``rtq train`` prints (and writes as the levels file's comments)."""
    lines = [f"Lloyd-Max, {2 ** training.bits} levels ({training.bits} bits), trained on {training.source}"]
    for k, (design, uniform) in enumerate(zip(training.designs, training.uniform)):
        who = f"channel {k + 1}: " if len(training.designs) > 1 else ""
        lines.append(f"{who}lloyd-max MSE {design.mse:.6g}, SNR {design.snr_db:.2f} dB, PSNR {design.psnr_db:.2f} dB")
        lines.append(f"{who}uniform {training.bits}-bit grid MSE {uniform.mse:.6g}, SNR {uniform.snr_db:.2f} dB, "
                     f"PSNR {uniform.psnr_db:.2f} dB (lloyd-max {design.snr_db - uniform.snr_db:+.2f} dB SNR)")
    return lines
