#!/usr/bin/env python3
"""Benchmark: the issue-20 quantizers against plain requantization, in one process.

Times, in alternating rounds (so a noisy machine slows them alike), the chain's
``process`` over a stereo float32 signal on one core, per sample per channel:

* requantize 16 bits, TPDF, Shibata (what cd-16-shibata runs; the reference)
* the same with auto_blank and limit (the guarded kernel variant)
* the same with passthrough_exact as well
* blockcompand 10 of 14 bits, blocks of 32, no dither (nicam-14-10's compander)
* quantize lloyd-max, 16 levels (speech-lloyd-max-4) and 65536 levels

and prints the best round of each, its ratio to the reference, and the CPU model.
Usage: ``python tools/bench_quantizers.py [--seconds 60] [--rounds 5]``.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def chains():
    from rtq import BlockCompand, Chain, Quantize, Requantize
    from rtq.dsp.lloyd_max import design_for_pdf

    wide = design_for_pdf("laplacian", 65536, 0.1, (-1.0, 1.0)).levels.astype(np.float32).astype(np.float64)
    return {
        "requantize 16 tpdf shibata": Chain([Requantize(16, "tpdf", shaping="shibata")]),
        "+ auto_blank, limit": Chain([Requantize(16, "tpdf", shaping="shibata", auto_blank=0.5, limit=True)]),
        "+ auto_blank, limit, passthrough": Chain([Requantize(16, "tpdf", shaping="shibata", auto_blank=0.5,
                                                              limit=True, passthrough_exact=True)]),
        "blockcompand 10/14, block 32": Chain([BlockCompand(10, 32, 14, "none")]),
        "lloyd-max 16 levels": Chain.from_preset("speech-lloyd-max-4"),
        "lloyd-max 65536 levels": Chain([Quantize("lloyd-max", levels=wide.tolist())]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="signal length at 44.1 kHz")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rate, block = 44100, 8192
    x = (np.random.default_rng(0).standard_normal((int(args.seconds * rate), 2)) * 0.1).astype(np.float32)
    prepared = {name: chain.prepare(rate, 2, block) for name, chain in chains().items()}
    best = {name: float("inf") for name in prepared}
    for _ in range(args.rounds):
        for name, chain in prepared.items():
            y = x.copy()
            start = time.perf_counter()
            for first in range(0, len(y), block):
                chain.process(y[first:first + block])
            best[name] = min(best[name], time.perf_counter() - start)
    reference = next(iter(best.values()))
    print(f"{cpu_model()}; {args.seconds:g} s of stereo at 44.1 kHz, one core, best of {args.rounds} alternating rounds")
    print(f"{'chain':<36}{'ns/sample/ch':>14}{'/ reference':>13}")
    for name, seconds in best.items():
        print(f"{name:<36}{seconds / x.size * 1e9:14.2f}{seconds / reference:13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
