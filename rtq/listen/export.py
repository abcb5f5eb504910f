"""``rtq listen export TEST.yaml DIR``: a test's stimuli for browser-based tests.

Every condition of every item is rendered over the item's loop region by the same
chains with the same seed as the live test (``chain(x, rate)``: latency compensated),
so each stimulus holds exactly the samples the live comparison plays on its first pass
through the loop (after its alignment); it is loudness-matched as the live test is
(:func:`rtq.listen.level.level_matched`: the same gains) and written as 32-bit float
WAV, which holds those samples exactly.  Beside them goes a webMUSHRA configuration
(one page per item: ``mushra`` for a MUSHRA test, ``paired_comparison`` for ABX), and
``levels.json``: each item's level-matching gains and loudness, as the live test logs them.

webMUSHRA's own rules, which the export checks before writing anything (webMUSHRA,
``lib/webmushra/misc/MushraValidator.js``, called from ``MushraPage.prototype.init`` in
``lib/webmushra/pages/MushraPage.js``): at most 12 entries in a page's ``stimuli``
(``checkNumConditions``; the hidden reference is added by webMUSHRA itself, from
``reference``); a stimulus at most 12 s long (``checkStimulusDuration``, on the
reference); the reference and every stimulus of a page at one sample rate, length and
channel count (``checkConditionConsistency``), and that rate the browser's
(``checkSamplerate``): so every file of the export shares one rate, length (per item)
and channel count.  rtq's own anchors are rendered as stimuli (``createAnchor35`` and
``createAnchor70`` off: webMUSHRA's built-in ones are fixed filters at a few rates).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from ..errors import UsageError
from ..files.audio import open_output, output_failure
from ..files.destination import Destination, write_atomic
from ..live.sources import Source
from .comparison import MIN_LOOP_SECONDS, condition_chain
from .level import level_matched, linear
from .testfile import ListeningTest

WEBMUSHRA_MAX_STIMULI = 12        # MushraValidator.checkNumConditions
WEBMUSHRA_MAX_SECONDS = 12.0      # MushraValidator.checkStimulusDuration
SUBTYPE = "FLOAT"
CHANNELS = 2                      # what the live test plays (a mono file on both channels)


def export(test: ListeningTest, directory, *, force: bool = False, prefix: str | None = None) -> Path:
    """Render ``test``'s stimuli and webMUSHRA configuration into ``directory`` (one
    page per item; MUSHRA: the ``reference`` condition as the page's reference, every
    other condition, anchors included, as its stimuli; ABX: A as the reference, B as
    the stimulus).

    ``prefix`` is the path the configuration gives the stimuli, relative to webMUSHRA's
    folder (default: ``configs/resources/audio/<directory name>/``: copy ``directory``
    there, its YAML into ``configs/``).  Refuses (one line, nothing written) what
    webMUSHRA would refuse.  Every file appears complete or not at all, and replaces an
    existing one only with ``force`` (:mod:`rtq.files.destination`); items are rendered
    one at a time (memory holds one item's stimuli), and the configuration is written
    last, so an export that was interrupted has none.  Returns the configuration's path.
    """
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a directory")
    if not target.parent.is_dir():
        raise UsageError(f"{target}: no such directory {target.parent}")
    prefix = f"configs/resources/audio/{target.name}/" if prefix is None else prefix
    stimuli_count = len(test.conditions) - 1
    if stimuli_count > WEBMUSHRA_MAX_STIMULI:
        raise UsageError(f"{test.path}: {stimuli_count} conditions besides the reference (anchors included); a "
                         f"webMUSHRA page takes at most {WEBMUSHRA_MAX_STIMULI}")
    sources = [_checked_item(k, item) for k, item in enumerate(test.items, 1)]
    rates = {source.samplerate for source, _ in sources}
    if len(rates) > 1:
        raise UsageError(f"the items run at {', '.join(f'{r:g}' for r in sorted(rates))} Hz; webMUSHRA plays every "
                         "stimulus at the browser's one rate: resample them to one rate")
    config_name = f"{_file_name(test.name)}.yaml"
    planned = [target / config_name, target / "levels.json"] + [
        target / _stimulus(k, c.name) for k in range(1, len(sources) + 1) for c in test.conditions]
    taken = [path for path in planned if path.exists()]
    if taken and not force:
        raise UsageError(f"{taken[0]} exists; use --force to replace it")
    pages, levels = [], {}
    for k, ((source, (start, end)), item) in enumerate(zip(sources, test.items), 1):
        stimuli, levels[f"item{k}"] = _render(test, k, item, source.data[start:end], source.samplerate)
        files = {}
        for name, audio in stimuli.items():
            path = target / _stimulus(k, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_wav(path, audio, source.samplerate, force)
            files[name] = prefix + _stimulus(k, name)
        pages.append(_page(test, k, files))
    config = {"testname": test.name, "testId": test.name, "bufferSize": 2048, "stopOnErrors": True,
              "showButtonPreviousPage": True, "remoteService": "service/write.php",
              "pages": pages + [{"type": "finish", "name": "Thank you", "content": "Thank you for taking part.",
                                 "showResults": False, "writeResults": True}]}
    write_atomic(target / "levels.json", json.dumps(levels, indent=2), force=force)
    return write_atomic(target / config_name, yaml.safe_dump(config, sort_keys=False), force=force)


def _stimulus(k: int, name: str) -> str:
    return f"item{k}/{_file_name(name)}.wav"


def _reference(test: ListeningTest) -> str:
    """The loudness reference and the page's reference: MUSHRA's ``reference``
    condition, else the first (ABX: A)."""
    return next((c.name for c in test.conditions if c.role == "reference"), test.conditions[0].name)


def _checked_item(k: int, item) -> tuple[Source, tuple[int, int]]:
    """Item ``k``'s file and loop region (frames), checked: one line for what cannot be
    rendered or what webMUSHRA would refuse."""
    if item.input == "live":
        raise UsageError(f"item {k} is the sound card's input (`live`): there is nothing to render")
    source = Source.file(item.input).for_channels(CHANNELS)
    rate = source.samplerate
    frames = len(source.data)
    start_s, end_s = item.loop if item.loop is not None else (0.0, frames / rate)
    start, end = round(start_s * rate), round(end_s * rate)
    if not (0 <= start < end <= frames) or end - start < MIN_LOOP_SECONDS * rate:
        raise UsageError(f"item {k} ({item.input}): loop [{start_s:g}, {end_s:g}] s must lie within the file's "
                         f"{frames / rate:g} s and last at least {MIN_LOOP_SECONDS:g} s")
    if end - start > WEBMUSHRA_MAX_SECONDS * rate:
        raise UsageError(f"item {k} ({item.input}): its loop lasts {(end - start) / rate:g} s; webMUSHRA plays "
                         f"stimuli of at most {WEBMUSHRA_MAX_SECONDS:g} s: shorten the loop")
    return source, (start, end)


def _render(test: ListeningTest, k: int, item, region: np.ndarray, rate: float):
    """({condition: float32 samples}, level log) of item ``k``'s loop ``region``."""
    chains = {c.name: condition_chain(c.name, c.preset, test.seed) for c in test.conditions}
    outputs, gains, lufs = level_matched(chains, region, rate, _reference(test), test.level_match,
                                         f"item {k} ({item.input})")
    stimuli = {name: (linear(gains[name]) * outputs[name]).astype(np.float32) for name in chains}
    return stimuli, {"gains_db": gains, "loudness_lufs": lufs}


def _page(test: ListeningTest, k: int, files: dict[str, str]) -> dict:
    reference = _reference(test)
    others = {name: path for name, path in files.items() if name != reference}
    page = {"type": "mushra" if test.type == "mushra" else "paired_comparison", "id": f"item{k}",
            "name": f"{test.name}: item {k}", "content": test.description, "showWaveform": True,
            "enableLooping": True, "reference": files[reference]}
    if test.type == "mushra":
        page.update({"createAnchor35": False, "createAnchor70": False})
    else:
        page["unforced"] = None
    page["stimuli"] = others
    return page


def _file_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def _write_wav(path: Path, audio: np.ndarray, rate: float, force: bool) -> None:
    with Destination(path, force=force) as destination:
        out = open_output(destination, int(rate), audio.shape[1], SUBTYPE, "WAV")
        try:
            out.write(audio)
            out.close()
        except (OSError, sf.LibsndfileError) as err:
            raise output_failure(out, path, err) from None
        destination.publish()
