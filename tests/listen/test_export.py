"""``rtq listen export``: webMUSHRA stimuli and configuration.

The configuration is checked against webMUSHRA's own rules, restated from its source
(``lib/webmushra/misc/MushraValidator.js``, as ``MushraPage.prototype.init`` in
``lib/webmushra/pages/MushraPage.js`` applies them): at most 12 ``stimuli`` on a page,
the reference at most 12 s long, and the reference and every stimulus at one sample
rate, length and channel count.  The stimuli must equal what the live comparison plays
(its first pass through the loop), sample for sample, and be loudness-matched."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import yaml

from rtq.errors import UsageError
from rtq.listen.comparison import Comparison
from rtq.listen.export import export
from rtq.listen.level import loudness_lufs
from rtq.listen.testfile import Condition, Item, ListeningTest
from rtq.live.nullstream import NullStream
from rtq.presets import load_preset, parse_preset

from live.expected import FADE, RATE, music

QUIETER = parse_preset("name: quieter\nchain:\n  - gain: {db: -4}\n  - requantize: {bits: 16}\n", "quieter.yaml")
LOOP = (0.5, 2.5)


def mushra(path, loop=LOOP, extra=0, **changes) -> ListeningTest:
    conditions = (Condition("reference", "original", None, "reference"),
                  Condition("shaped", "cd-16-shibata", load_preset("cd-16-shibata")),
                  Condition("quieter", "quieter.yaml", QUIETER),
                  *(Condition(f"tpdf-{k}", "tpdf-16", load_preset("tpdf-16")) for k in range(extra)),
                  Condition("lowpass-3500", "lowpass-3500", load_preset("lowpass-3500"), "anchor"),
                  Condition("lowpass-7000", "lowpass-7000", load_preset("lowpass-7000"), "anchor"))
    fields = dict(name="anchors-test", type="mushra", items=(Item(str(path), loop),), conditions=conditions, seed=7)
    fields.update(changes)
    return ListeningTest(**fields)


@pytest.fixture
def item(tmp_path):
    path = tmp_path / "item.wav"
    sf.write(str(path), music(3 * RATE), RATE, subtype="FLOAT")
    return path


def webmushra_problems(config: dict, root) -> list[str]:
    """What webMUSHRA's MushraValidator would report for the mushra pages of ``config``
    (stimulus paths resolved under ``root``, webMUSHRA's folder)."""
    problems = []
    for page in config["pages"]:
        if page["type"] != "mushra":
            continue
        if len(page["stimuli"]) > 12:                                     # checkNumConditions
            problems.append(f"{page['id']}: {len(page['stimuli'])} conditions")
        reference = sf.info(str(root / page["reference"]))
        if reference.frames / reference.samplerate > 12.0:                # checkStimulusDuration
            problems.append(f"{page['id']}: reference longer than 12 s")
        for name, path in page["stimuli"].items():                        # checkConditionConsistency
            info = sf.info(str(root / path))
            if (info.samplerate, info.frames, info.channels) != (reference.samplerate, reference.frames,
                                                                  reference.channels):
                problems.append(f"{page['id']}: {name} differs from the reference")
        if page.get("createAnchor35") or page.get("createAnchor70"):
            problems.append(f"{page['id']}: webMUSHRA's own anchors asked for")
    return problems


def test_the_export_passes_webmushras_rules_and_matches_loudness(item, tmp_path):
    root = tmp_path / "webmushra"
    (root / "configs" / "resources" / "audio").mkdir(parents=True)
    config_path = export(mushra(item), root / "configs" / "resources" / "audio" / "anchors")
    config = yaml.safe_load(config_path.read_text())
    page = config["pages"][0]
    assert page["type"] == "mushra" and config["pages"][-1]["type"] == "finish"
    assert set(page["stimuli"]) == {"shaped", "quieter", "lowpass-3500", "lowpass-7000"}
    assert page["reference"] == "configs/resources/audio/anchors/item1/reference.wav"
    assert webmushra_problems(config, root) == []
    reference, rate = sf.read(str(root / page["reference"]))
    assert rate == RATE and reference.shape == (2 * RATE, 2)
    target = loudness_lufs(reference, RATE)
    for name, path in page["stimuli"].items():
        audio, _ = sf.read(str(root / path))
        assert abs(loudness_lufs(audio, RATE) - target) < 0.1, name


def test_stimuli_are_the_samples_the_live_test_plays(item, tmp_path):
    """One comparison of the same test, switching (cut) from condition to condition along
    its first pass through the loop: each stretch equals that condition's stimulus."""
    test = mushra(item)
    directory = tmp_path / "stimuli"
    export(test, directory, prefix="")
    names = test.names
    with Comparison({c.name: c.preset for c in test.conditions}, str(item), loop=LOOP, switch="cut",
                    reference="reference", seed=test.seed,
                    stream=lambda callback, words: NullStream(callback, samplerate=RATE, blocksize=64,
                                                              user_words=words)) as comparison:
        d = comparison.latency
        stretch = 240 * 64            # 0.32 s per condition, from the first input heard on
        blocks = (d + len(names) * stretch) // 64 + 1
        call, ctl = comparison.engine.stream._callback.ctypes, comparison.engine.stream.ctl.ctypes.data
        out = np.zeros((blocks * 64, 2), np.float32)
        for b in range(blocks):
            k = min(max(b * 64 - d, 0) // stretch, len(names) - 1)
            comparison.select(names[k])
            block = out[b * 64:(b + 1) * 64]
            call(block.ctypes.data, block.ctypes.data, 64, 0, 0, ctl)
    for k, name in enumerate(names):
        stimulus, _ = sf.read(str(directory / "item1" / f"{name}.wav"), dtype="float32")
        first = k * stretch + (FADE if k == 0 else 64)     # past the first input's rise, and the cut's block
        last = (k + 1) * stretch - 64
        assert np.array_equal(out[d + first:d + last], stimulus[first:last]), name


def test_what_webmushra_would_refuse_is_refused_before_writing(item, tmp_path):
    long_item = tmp_path / "long.wav"
    sf.write(str(long_item), music(13 * RATE), RATE, subtype="FLOAT")
    cases = [(mushra(long_item, loop=(0.0, 12.5)), "its loop lasts 12.5 s; webMUSHRA plays stimuli of at most 12 s"),
             (mushra(item, extra=9), "13 conditions besides the reference .* at most 12"),
             (mushra(item, items=(Item("live", None),)), "item 1 is the sound card's input")]
    for test, message in cases:
        with pytest.raises(UsageError, match=message):
            export(test, tmp_path / "out")
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    export(mushra(item), tmp_path / "full")
    config = (tmp_path / "full" / "anchors-test.yaml").read_text()
    with pytest.raises(UsageError, match="anchors-test.yaml exists; use --force to replace it"):
        export(mushra(item), tmp_path / "full")
    export(mushra(item, seed=8), tmp_path / "full", force=True)
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"
    assert (tmp_path / "full" / "anchors-test.yaml").read_text() == config and (tmp_path / "full" / "levels.json").exists()
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["anchors-test.yaml", "item1", "levels.json",
                                                                     "mine.txt"]


def test_abx_exports_a_paired_comparison_page(item, tmp_path):
    test = ListeningTest(name="ab", type="abx", items=(Item(str(item), LOOP),),
                         conditions=(Condition("A", "cd-16-shibata", load_preset("cd-16-shibata")),
                                     Condition("B", "tpdf-16", load_preset("tpdf-16"))))
    config = yaml.safe_load(export(test, tmp_path / "ab").read_text())
    page = config["pages"][0]
    assert page["type"] == "paired_comparison" and page["reference"].endswith("item1/A.wav")
    assert list(page["stimuli"]) == ["B"]
