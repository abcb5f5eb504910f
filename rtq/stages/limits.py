"""Limits on a tree of stages, so that no preset or Python chain can exhaust the machine.

Each is far beyond any real use (the largest shipped preset has 2 stages and runs at
64x) and is checked when a chain or an oversample stage is built (``rtq validate``
says so in one line):

``MAX_STAGES``
    stages in a chain, nested ones included;
``MAX_OVERSAMPLING``
    the total oversampling factor, the product over nested ``oversample`` stages (256x
    is DSD256 from a 44.1 kHz stream);
``MAX_WORK_BLOCKS``
    the program's work buffers, in blocks: one buffer per rate level (the stream rate
    and one per oversample stage), each as long as a block at the highest rate.  At the
    1024 allowed, ``rtq render``'s 8192-frame pieces take at most 64 MiB per channel.

The memory a prepared program takes (channels and block size included) is bounded at
prepare time too (:data:`rtq.program.MAX_PROGRAM_BYTES`).
"""
from __future__ import annotations

from .base import walk

MAX_STAGES = 1000
MAX_OVERSAMPLING = 256
MAX_WORK_BLOCKS = 1024
TOO_MANY_STAGES = f"the chain has more than {MAX_STAGES} stages, rtq's limit"


def check_tree(stages) -> None:
    """Refuse a tree of stages beyond the limits: a ValueError naming the parameter, or
    for a stage read from a preset a :class:`~rtq.errors.PresetError` at its place in the
    file (:meth:`Stage.refuse <rtq.stages.base.Stage.refuse>`)."""
    levels, top = 1, 1
    for count, place in enumerate(walk(stages), 1):
        stage = place.stage
        if count > MAX_STAGES:
            stage.refuse("", TOO_MANY_STAGES)
        if stage.rate_factor == 1:
            continue
        total = place.factor * stage.rate_factor
        if total > MAX_OVERSAMPLING:
            stage.refuse("factor", f"total oversampling {total}x ({place.factor}x outside, x{stage.rate_factor} "
                                   f"here) is above rtq's limit of {MAX_OVERSAMPLING}x")
        levels, top = levels + 1, max(top, total)
        if levels * top > MAX_WORK_BLOCKS:
            stage.refuse("factor", f"the chain's work buffers would hold {levels * top} blocks ({levels} rate "
                                   f"levels of up to {top}x the block), above rtq's limit of {MAX_WORK_BLOCKS}")
