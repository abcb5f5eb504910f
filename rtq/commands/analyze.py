"""``rtq analyze REFERENCE PROCESSED``: measure the error between two existing files.

PROCESSED is aligned to REFERENCE by cross-correlation over their first ``ALIGN_S``
seconds (lag within ``--max-lag``, gain by least squares, see
:func:`rtq.meter.align.align`), then both files are streamed block by block through an
:class:`~rtq.meter.measure.ErrorMeter` with ``x = gain * reference`` and
``y = processed`` over their overlap, so memory stays bounded for any length.  A gain
estimate within four standard deviations of unity, or under 0.01 dB with a level change
no larger than the error left after it, is taken as exactly unity (see ``_applied_gain``: applying
the estimate's own noise, or an error that follows the signal, would add a scaled copy
of the reference to the error or take part of the error away).

The error is therefore what PROCESSED holds beyond a scaled, delayed copy of
REFERENCE.  Its word length (for the figures in LSB, the histogram and bit usage) is
``--bits``, by default the one of PROCESSED's subtype (PCM_16 -> 16, ...; none for float
files).  The floor and target curves are those of plain TPDF dither at that word
length (a reference line: the actual dither is unknown).
"""
from __future__ import annotations

import argparse
import math
import sys

ALIGN_S = 30.0
BLOCK_FRAMES = 1 << 16
MAX_LAG_S = 60.0
# Samples read to align the files (both heads, as float64): 30 s of stereo at 48 kHz take
# 47 MB; many channels at high rates get a shorter head.
ALIGN_BYTES = 256 << 20
# Largest block measured at once (float64 samples of one file): fewer frames for many channels.
BLOCK_BYTES = 16 << 20
# Largest sample magnitude measured: +60 dBFS, far above any float file's headroom, and
# low enough that sums of squares over any file stay finite.
MAX_LEVEL = 1000.0
UNITY_SIGMAS = 4.0
UNITY_MAX_DB = 0.01   # smaller level changes may be an error that follows the signal
SUBTYPE_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze", help="measure the error of a processed file against its reference",
        description="Align PROCESSED to REFERENCE (lag and gain), then measure the error.")
    parser.add_argument("reference", metavar="REFERENCE", help="the original audio file")
    parser.add_argument("processed", metavar="PROCESSED", help="the processed audio file")
    parser.add_argument("--report", metavar="FILE", help="write the measurements as JSON")
    parser.add_argument("--plot", metavar="FILE",
                        help="draw error spectrum, histogram and level as PNG (needs rtq[plot])")
    parser.add_argument("--force", action="store_true",
                        help="replace the --report and --plot files if they exist")
    parser.add_argument("--bits", type=int, metavar="N",
                        help="word length of PROCESSED (default: from its subtype, PCM_16 -> 16)")
    parser.add_argument("--max-lag", type=float, default=1.0, metavar="SECONDS",
                        help=f"largest lag searched either way (default 1 s, at most {MAX_LAG_S:g} s)")
    parser.add_argument("--allow-short", action="store_true",
                        help="measure files that end before the length their header promises (truncated or "
                             "damaged); by default that is an error")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rtq.report import check_outputs, save

    check_outputs(args.report, args.plot, keep=[("REFERENCE", args.reference), ("PROCESSED", args.processed)],
                  force=args.force)
    result = analyze_files(args.reference, args.processed, bits=args.bits, max_lag_s=args.max_lag,
                           allow_short=args.allow_short)
    print_summary(result)
    for line in result["shortfalls"]:
        print(f"rtq: {line}", file=sys.stderr)
    if args.report or args.plot:
        save(result, "analyze", args.report, args.plot,
             title=f"rtq analyze {args.reference} {args.processed}", force=args.force)
    return 0


def _checked(block, what: str, path, first: int):
    """``block`` (read from frame ``first`` of ``path``) if its finite samples lie within
    +-:data:`MAX_LEVEL`; otherwise a one-line error: such a file is no audio signal, and
    its squares would overflow or swamp every figure."""
    import numpy as np

    from rtq.errors import UsageError

    magnitude = np.abs(block, where=np.isfinite(block), out=np.zeros_like(block))
    if magnitude.size and magnitude.max() > MAX_LEVEL:
        frame = first + int(np.argmax(magnitude.max(axis=1)))
        peak = float(magnitude.max())
        raise UsageError(f"{what} {path} holds a sample of {peak:.3g} ({20 * np.log10(peak):+.0f} dBFS) at frame "
                         f"{frame}: rtq measures samples within +-{MAX_LEVEL:g} ({20 * np.log10(MAX_LEVEL):+.0f} dBFS)")
    return block


def alignment_window(rate: int, channels: int, align_s: float, max_lag_s: float) -> tuple[int, int]:
    """Frames of REFERENCE read to align (the head) and the lag searched either way: the
    heads (REFERENCE's, and PROCESSED's, longer by the lag) fit in :data:`ALIGN_BYTES`,
    so the head is shorter than ``align_s`` for many channels at high rates.  A lag that
    leaves less than a second of head is a one-line usage error naming the largest."""
    from rtq.errors import UsageError

    budget = ALIGN_BYTES // (8 * channels)          # frames of both heads together
    max_lag = int(round(max_lag_s * rate))
    head = min(int(round(align_s * rate)), (budget - max_lag) // 2)
    if head < min(rate, int(round(align_s * rate))):
        most = max((budget - 2 * rate) / rate, 0.0)
        raise UsageError(f"--max-lag {max_lag_s:g} s leaves less than 1 s to align {channels}-channel files at "
                         f"{rate} Hz in {ALIGN_BYTES >> 20} MiB; at most {most:.3g} s here")
    return head, max_lag


def analyze_files(reference, processed, *, bits: int | None = None, max_lag_s: float = 1.0,
                  align_s: float = ALIGN_S, block_frames: int = BLOCK_FRAMES, allow_short: bool = False) -> dict:
    """Align and measure; returns a report dict (one entry in ``stages``) with
    ``alignment`` (``lag_samples``, ``lag_ms``, ``gain_db``, ``frames``, ...) and
    ``shortfalls`` (lines on files taken short, with ``allow_short``).

    The files are :class:`~rtq.files.audio.AudioInput`: at rates rtq runs, read with
    errors that name them, and checked against the length their headers promise."""
    import numpy as np

    from rtq.errors import UsageError
    from rtq.files.audio import AudioInput
    from rtq.meter.align import AlignedReference, align, fractional_lag, whole_or_fractional
    from rtq.meter.delay import ERROR_FLOOR_DB
    from rtq.meter.chain_meter import LevelHistory
    from rtq.meter.measure import ErrorMeter
    from rtq.spec import requirement

    if bits is not None and not 1 <= bits <= 32:
        raise UsageError(f"--bits must be in 1..32, got {bits}")
    problem = requirement(max_lag_s, 0, MAX_LAG_S)
    if problem is not None:
        raise UsageError(f"--max-lag {problem} seconds, got {max_lag_s}")
    with AudioInput(reference, allow_short=allow_short) as ref, AudioInput(processed, allow_short=allow_short) as proc:
        if ref.samplerate != proc.samplerate:
            raise UsageError(f"sample rates differ: {reference} is {ref.samplerate} Hz, "
                             f"{processed} is {proc.samplerate} Hz; resample first")
        if ref.channels != proc.channels:
            raise UsageError(f"channel counts differ: {reference} has {ref.channels}, "
                             f"{processed} has {proc.channels}")
        rate, channels = ref.samplerate, ref.channels
        bits_source = "--bits"
        if bits is None:
            bits = SUBTYPE_BITS.get(proc.subtype)
            bits_source = proc.subtype
        head, max_lag = alignment_window(rate, channels, align_s, max_lag_s)
        ref_head = _checked(ref.read(min(head, ref.frames)), "REFERENCE", reference, 0)
        proc_head = _checked(proc.read(min(head + max_lag, proc.frames)), "PROCESSED", processed, 0)
        whole, gain_db, ref_aligned, proc_aligned = align(ref_head, proc_head, rate, max_lag_s)
        fraction, lag_sigma = fractional_lag(ref_aligned, proc_aligned)
        lag = whole_or_fractional(whole, fraction, lag_sigma)
        # processed frames m measured against reference[m - lag]
        start = max(math.ceil(lag), 0)
        total = max(min(proc.frames, math.floor(lag) + ref.frames) - start, 0)
        if lag != whole:     # the gain, measured again at the sub-sample alignment
            n = max(min(len(proc_head), math.floor(lag) + len(ref_head)) - start, 0)
            ref_aligned = AlignedReference(ref_head, lag, start).read(n)
            proc_aligned = proc_head[start:start + n]
            gain_db = 20.0 * np.log10(np.sum(ref_aligned * proc_aligned) / np.sum(ref_aligned ** 2))
        gain, sigma = _applied_gain(ref_aligned, proc_aligned, 10.0 ** (gain_db / 20.0))
        del ref_head, proc_head, ref_aligned, proc_aligned
        meter = ErrorMeter(rate, channels, bits, "tpdf" if bits else "none", index=0,
                           stage="processed - gain x reference")
        history = LevelHistory(rate, channels)
        aligned = AlignedReference(ref, lag, start)
        proc.seek(start)
        done = 0
        while done < total:
            n = min(block_frames, max(BLOCK_BYTES // (8 * channels), 1), total - done)
            y = _checked(proc.read(n), "PROCESSED", processed, start + done)
            n = len(y)
            if n == 0:
                break
            x = _checked(aligned.read(n), "REFERENCE", reference, start + done - round(lag)) * gain
            meter.update(x, y)
            e = y - x
            history.update(np.where(np.isfinite(e), e, 0.0))
            done += n
        entry = meter.result()
        entry["level_history"] = history.result()
        entry["bits_source"] = bits_source if bits else None
        delay = aligned.fractional
        alignment = {
            "lag_samples": int(lag) if lag == whole else lag, "lag_sigma_samples": lag_sigma,
            "lag_ms": 1000.0 * lag / rate,
            "fractional_delay": None if delay is None else {"taps": len(delay.taps),
                                                            "error_floor_db": ERROR_FLOOR_DB},
            "gain_db": gain_db,
            "gain_sigma_db": 20.0 * np.log10(1.0 + sigma),
            "gain_applied_db": 20.0 * np.log10(gain),
            "frames": int(done), "reference_frames": int(ref.frames),
            "processed_frames": int(proc.frames), "align_frames": int(min(head, ref.frames)),
        }
        files = {"reference": {"path": str(reference), "subtype": ref.subtype, "format": ref.format},
                 "processed": {"path": str(processed), "subtype": proc.subtype, "format": proc.format}}
        shortfalls = [f.shortfall for f in (ref, proc) if f.shortfall]
    return {"sample_rate": float(rate), "channels": channels, "window": "integrated",
            "files": files, "alignment": alignment, "stages": [entry], "shortfalls": shortfalls}


def _applied_gain(ref, proc, gain: float) -> tuple[float, float]:
    """The gain to apply and the estimate's standard deviation (linear).

    The least-squares gain ``g`` is off by ``sum(ref e) / sum(ref^2)``, with standard
    deviation ``sigma = sqrt(mean(e^2) / sum(ref^2))`` for an error ``e`` uncorrelated
    with the reference.  Applying that small error would add ``(g - 1) ref`` to the
    measured error -- enough to fill the deep notches of a noise-shaped error spectrum
    by a few dB.  So a gain within ``UNITY_SIGMAS`` sigma of 1 counts as unity (the
    process did not change the level) and 1 is applied exactly.

    An error that follows the signal (undithered quantization of a tone) moves ``g`` far
    more than sigma: up to ``rms(e) / rms(ref)``, and the fitted gain then takes that part
    of the error away (a 16-bit rounding of a 1 kHz tone at 48 kHz read -103.6 dBFS
    instead of its -101.0).  So a gain under :data:`UNITY_MAX_DB` whose contribution
    ``|g - 1| rms(ref)`` is no larger than the error left after it counts as unity too,
    and is measured as part of the error: such an error moves ``g`` by thousandths of a
    dB (0.0004 dB there), while gain settings go in steps of 0.01 dB or more, and a real
    gain before a coarse quantizer (-1 dB, then 4 bits) may contribute less than the
    error and is still applied.
    """
    import numpy as np

    energy = float(np.sum(ref * ref))
    residual = proc - gain * ref
    mean_square = float(np.mean(residual * residual))
    sigma = float(np.sqrt(mean_square / energy)) if energy > 0 else 0.0
    within_error = (abs(20.0 * np.log10(gain)) < UNITY_MAX_DB
                    and abs(gain - 1.0) * np.sqrt(energy / ref.size) <= np.sqrt(mean_square))
    return (1.0 if abs(gain - 1.0) <= UNITY_SIGMAS * sigma or within_error else gain), sigma


def _fmt(values, unit: str = "", digits: int = 2, exact=None) -> str:
    """Values joined by `` / ``; a None reads ``-inf`` in the channels where ``exact`` is
    true (a level of no error at all), else ``n/a``."""
    if values is None:
        return "n/a"
    if not isinstance(values, list):
        values = [values]
    exact = exact or [False] * len(values)
    text = " / ".join(("-inf" if same else "n/a") if v is None else f"{v:.{digits}f}"
                      for v, same in zip(values, exact))
    return text + (f" {unit}" if unit else "")


def _lag_text(a: dict) -> str:
    """The lag, to the digits its precision holds (whole lags as integers)."""
    lag, sigma = a["lag_samples"], a["lag_sigma_samples"]
    if isinstance(lag, int):
        return str(lag)
    digits = min(max(1 - math.floor(math.log10(sigma)), 1), 9) if sigma > 0 else 9
    return f"{lag:.{digits}f} +-{sigma:.1g}"


def _lag_precision(a: dict) -> str:
    if a["fractional_delay"] is not None:
        return f"; the fraction through a {a['fractional_delay']['taps']}-tap fractional-delay filter"
    if a["lag_sigma_samples"] > 0:
        return f"; whole to within its precision (+-{a['lag_sigma_samples']:.1g} samples)"
    return ""


def print_summary(result: dict, stream=None) -> None:
    """A short human summary of :func:`analyze_files`'s result."""
    from rtq.meter.measure import ENOB_DEFINITION, ITU468_DETECTOR

    stream = stream or sys.stdout
    a, m = result["alignment"], result["stages"][0]
    rate = result["sample_rate"]
    if a["lag_samples"] > 0:
        which = "processed is late"
    elif a["lag_samples"] < 0:
        which = "processed is early"
    else:
        which = "aligned"
    lines = [
        f"lag:         {_lag_text(a)} samples ({a['lag_ms']:.3f} ms, {which})" + _lag_precision(a),
        f"gain:        {a['gain_db']:+.3f} dB (processed vs reference, +-{a['gain_sigma_db']:.1g} dB)"
        + ("; taken as unity (within the estimate's noise or the error), none applied"
           if a["gain_applied_db"] == 0.0 and a["gain_db"] != 0.0 else ""),
        f"measured:    {a['frames']} frames ({a['frames'] / rate:.3f} s) at {rate:g} Hz, "
        f"{result['channels']} channel{'s' if result['channels'] > 1 else ''}",
    ]
    if m["bits"]:
        in_use = [sum(row) for row in m["bits_in_use"]]
        lines.append(f"bits:        {m['bits']} (from {m['bits_source']}), in use "
                     + " / ".join(str(n) for n in in_use))
    else:
        lines.append(f"bits:        none detected ({result['files']['processed']['subtype']}; "
                     "use --bits N)")
    # No error at all in a channel: processed is gain x reference there, sample for
    # sample (non-finite samples, zeroed for the figures, do not count as equal).
    exact = [a["frames"] > 0 and mse == 0.0 and not bad for mse, bad in zip(m["mse"], m["nonfinite"])]
    if all(exact):
        how = [f"aligned at {a['lag_samples']} samples"] if a["lag_samples"] else []
        how += [f"scaled by {a['gain_applied_db']:+.3f} dB"] if a["gain_applied_db"] != 0.0 else []
        lines.append(f"error:       none: processed equals reference in all {a['frames']} measured frames"
                     + (f" ({', '.join(how)})" if how else ""))
    else:
        def level(key):
            return _fmt(m[key], "dBFS", exact=exact)

        lines += [
            f"error rms:   {level('rms_dbfs')}   peak {level('peak_dbfs')}",
            f"A-weighted:  {level('a_weighted_dbfs')}",
            f"ITU-R 468:   {level('itu468_dbfs')} ({ITU468_DETECTOR})",
            f"SNR:         {_fmt(m['snr_db'], 'dB')}",
        ]
    if any(v is not None for v in m["sinad_db"]):
        lines.append(f"SINAD:       {_fmt(m['sinad_db'], 'dB')}   ENOB {_fmt(m['enob'], 'bits')} ({ENOB_DEFINITION})")
    if m["dc_lsb"] is not None:
        lines.append(f"DC:          {_fmt(m['dc_lsb'], 'LSB', 4)}")
    if any(m["nonfinite"]):
        lines.append(f"non-finite:  {' / '.join(str(n) for n in m['nonfinite'])} samples")
    print("\n".join(lines), file=stream)
