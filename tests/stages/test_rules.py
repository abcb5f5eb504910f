"""Python-built stages follow exactly the rules presets follow: one case per rule, each
checked both ways, as preset text (``file:line:column: message``) and as a Python call
(a ValueError with the same message).  Before one schema served both, the Python
constructors missed some of these (``Requantize(16, shaping={"coefficients": [0.01] *
100})`` was accepted: the preset reader's 64-tap limit was its own), and worded others
their own way."""
from __future__ import annotations

import re

import pytest

from rtq.chain import Chain
from rtq.errors import PresetError
from rtq.presets import parse_preset
from rtq.stages import Gain, Oversample, Quantize, Requantize
from rtq.stages.limits import MAX_OVERSAMPLING, MAX_STAGES, MAX_WORK_BLOCKS

# (id, the stage as preset YAML, the same stage in Python, the message both give)
RULES = [
    ("gain-range", "gain: {db: 30}", lambda: Gain(30), "gain.db must be a finite number from -120 to 24, got 30"),
    ("gain-number", "gain: {db: loud}", lambda: Gain("loud"),
     "gain.db must be a finite number from -120 to 24, got 'loud'"),
    ("gain-unknown-key", "gain: {db: 0, dB: 1}", lambda: Gain.checked({"db": 0, "dB": 1}),
     "unknown key 'dB' in gain; did you mean 'db'?"),
    ("bits-range", "requantize: {bits: 33}", lambda: Requantize(33),
     "requantize.bits must be an integer from 1 to 32, got 33"),
    ("bits-integer", "requantize: {bits: 16.5}", lambda: Requantize(16.5),
     "requantize.bits must be an integer from 1 to 32, got 16.5"),
    ("dither-name", "requantize: {bits: 16, dither: tdpf}", lambda: Requantize(16, "tdpf"),
     "requantize.dither must be one of none, rpdf, tpdf, tpdf-hp, gaussian, got 'tdpf'; did you mean 'tpdf'?"),
    ("dither-case", "requantize: {bits: 16, dither: TPDF}", lambda: Requantize(16, "TPDF"),
     "requantize.dither must be one of none, rpdf, tpdf, tpdf-hp, gaussian, got 'TPDF'; did you mean 'tpdf'?"),
    ("dither-type", "requantize: {bits: 16, dither: {type: blue, amplitude: 0.5}}",
     lambda: Requantize(16, "blue", 0.5),
     "requantize.dither.type must be one of none, rpdf, tpdf, tpdf-hp, gaussian, got 'blue'"),
    ("dither-amplitude", "requantize: {bits: 16, dither: {type: tpdf, amplitude: -0.5}}",
     lambda: Requantize(16, "tpdf", -0.5), "requantize.dither.amplitude must be a finite number >= 0, got -0.5"),
    ("dither-key", "requantize: {bits: 16, dither: {amplitud: 2}}", lambda: Requantize(16, {"amplitud": 2}),
     "unknown key 'amplitud' in requantize.dither; did you mean 'amplitude'?"),
    ("shaping-name", "requantize: {bits: 16, shaping: shibta}", lambda: Requantize(16, shaping="shibta"),
     "requantize.shaping must be one of none, first-order, lipshitz, f-weighted, modified-e-weighted, "
     "improved-e-weighted, gesemann, shibata, low-shibata, high-shibata, got 'shibta'; did you mean 'shibata'?"),
    ("fir-taps", "requantize: {bits: 16, shaping: {coefficients: [%s]}}" % ", ".join(["0.01"] * 100),
     lambda: Requantize(16, shaping={"coefficients": [0.01] * 100}),
     "requantize.shaping.coefficients must be a list of 1 to 64 finite numbers, got a list of 100 items"),
    ("fir-no-taps", "requantize: {bits: 16, shaping: {coefficients: []}}",
     lambda: Requantize(16, shaping={"coefficients": []}),
     "requantize.shaping.coefficients must be a list of 1 to 64 finite numbers, got an empty list"),
    ("fir-number", "requantize: {bits: 16, shaping: {coefficients: [1.0, x]}}",
     lambda: Requantize(16, shaping={"coefficients": [1.0, "x"]}),
     "requantize.shaping.coefficients[1] must be a finite number, got 'x'"),
    ("ntf-order", "requantize: {bits: 16, shaping: {order: 8}}", lambda: Requantize(16, shaping={"order": 8}),
     "requantize.shaping.order must be an integer from 1 to 7, got 8"),
    ("ntf-band", "requantize: {bits: 16, shaping: {order: 3, band_hz: 0.5}}",
     lambda: Requantize(16, shaping={"order": 3, "band_hz": 0.5}),
     "requantize.shaping.band_hz must be a finite number >= 1, got 0.5"),
    ("fir-or-ntf", "requantize: {bits: 16, shaping: {coefficients: [1], order: 2}}",
     lambda: Requantize(16, shaping={"coefficients": [1], "order": 2}),
     "requantize.shaping takes 'coefficients' or 'order', not both"),
    ("band-without-order", "requantize: {bits: 16, shaping: {coefficients: [1], band_hz: 100}}",
     lambda: Requantize(16, shaping={"coefficients": [1], "band_hz": 100}),
     "requantize.shaping.band_hz applies only to a designed filter ('order')"),
    ("shaping-needs", "requantize: {bits: 16, shaping: {band_hz: 100}}",
     lambda: Requantize(16, shaping={"band_hz": 100}),
     "requantize.shaping needs 'coefficients' (an FIR filter) or 'order' (a designed filter)"),
    ("shaping-key", "requantize: {bits: 16, shaping: {order: 3, bandhz: 5}}",
     lambda: Requantize(16, shaping={"order": 3, "bandhz": 5}),
     "unknown key 'bandhz' in requantize.shaping; did you mean 'band_hz'?"),
    ("law", "quantize: {law: ulaw}", lambda: Quantize("ulaw"),
     "quantize.law must be one of mu-law, a-law, lloyd-max, got 'ulaw'; did you mean 'mu-law'?"),
    ("law-bits", "quantize: {law: a-law, bits: 16}", lambda: Quantize("a-law", 16), "quantize.bits must be 8, got 16"),
    ("factor", "oversample: {factor: 3, chain: [gain: {db: 0}]}", lambda: Oversample(3, [Gain(0)]),
     "oversample.factor must be one of 2, 4, 8, 16, 32, 64, got 3"),
    ("phase", "oversample: {factor: 2, phase: min, chain: [gain: {db: 0}]}",
     lambda: Oversample(2, [Gain(0)], "min"),
     "oversample.phase must be one of linear, minimum, got 'min'; did you mean 'minimum'?"),
    ("quality", "oversample: {factor: 2, quality: best, chain: [gain: {db: 0}]}",
     lambda: Oversample(2, [Gain(0)], quality="best"), "oversample.quality must be one of high, normal, draft, got 'best'"),
    ("integer-latency", "oversample: {factor: 2, integer_latency: 1, chain: [gain: {db: 0}]}",
     lambda: Oversample(2, [Gain(0)], integer_latency=1), "oversample.integer_latency must be true or false, got 1"),
    ("inner-chain", "oversample: {factor: 2, chain: []}", lambda: Oversample(2, []),
     "oversample.chain must be a non-empty list of stages, got an empty list"),
]

LOCATION = re.compile(r"^p\.yaml:\d+:\d+: ")


@pytest.mark.parametrize("text, make, message", [case[1:] for case in RULES], ids=[case[0] for case in RULES])
def test_a_preset_and_a_python_call_are_refused_alike(text, make, message):
    with pytest.raises(PresetError) as from_preset:
        parse_preset(f"chain:\n  - {text}\n", "p.yaml")
    assert LOCATION.match(str(from_preset.value)), from_preset.value
    assert LOCATION.sub("", str(from_preset.value)) == message
    with pytest.raises(ValueError) as from_python:
        make()
    assert str(from_python.value) == message


def nested(factors) -> tuple[str, object]:
    """Oversample stages nested ``factors`` deep around a gain: as YAML and in Python."""
    text = "gain: {db: 0}"
    for factor in reversed(factors):
        text = f"oversample: {{factor: {factor}, chain: [{text}]}}"
    return text, lambda: _build(factors)


def _build(factors):
    stage = Gain(0)
    for factor in reversed(factors):
        stage = Oversample(factor, [stage])
    return stage


# (id, the chain as preset YAML items, the same chain in Python, what both say after the location)
LIMITS = [
    ("total-oversampling", nested([16, 16, 16, 16, 16])[0], lambda: Chain([nested([16, 16, 16, 16, 16])[1]()]),
     f"total oversampling 4096x (256x outside, x16 here) is above rtq's limit of {MAX_OVERSAMPLING}x"),
    ("work-buffers", "\n  - ".join(["oversample: {factor: 64, chain: [gain: {db: 0}]}"] * 16),
     lambda: Chain([Oversample(64, [Gain(0)]) for _ in range(16)]),
     f"the chain's work buffers would hold 1088 blocks (17 rate levels of up to 64x the block), above rtq's limit "
     f"of {MAX_WORK_BLOCKS}"),
    ("stages", "\n  - ".join(["gain: {db: 0}"] * (MAX_STAGES + 1)), lambda: Chain([Gain(0)] * (MAX_STAGES + 1)),
     f"the chain has more than {MAX_STAGES} stages, rtq's limit"),
]


@pytest.mark.parametrize("text, make, message", [case[1:] for case in LIMITS], ids=[case[0] for case in LIMITS])
def test_limits_on_a_tree_of_stages_hold_for_presets_and_python_alike(text, make, message):
    """A preset nesting 16x five deep validated 'ok' (an inner rate of 50 GHz), then render
    died allocating 768 GiB and live grew to 22 GB: the limits refuse such trees, in
    validation, in one line naming the limit."""
    with pytest.raises(PresetError) as from_preset:
        Chain.from_spec(parse_preset(f"chain:\n  - {text}\n", "p.yaml"))
    assert LOCATION.match(str(from_preset.value)) and LOCATION.sub("", str(from_preset.value)) == message
    with pytest.raises(ValueError) as from_python:
        make()
    assert str(from_python.value).endswith(": " + message)


def test_the_limits_allow_what_real_chains_need():
    """256x in all (DSD256 from 44.1 kHz: 64 x 4), 1000 stages."""
    text = nested([64, 4])[0]
    assert Chain.from_spec(parse_preset(f"chain:\n  - {text}\n", "p.yaml")).stages[0].stages[0].factor == 4
    Chain([Gain(0)] * MAX_STAGES)
    Chain([Oversample(64, [Gain(0)]) for _ in range(15)])    # 16 levels of 64x: 1024 blocks


def test_an_edited_parameter_no_longer_points_into_the_preset():
    """``session.set_shaping('lipshitz')`` at 48 kHz reported its error at the shipped
    preset's line, which the user never wrote: an edited stage names the parameter."""
    chain = Chain.from_preset("cd-16-shibata")
    stage = chain.stages[1]
    assert stage.location("shaping").endswith("cd-16-shibata.yaml:9:16")
    edited = stage.replaced(shaping="lipshitz")
    assert edited.location("shaping") == "requantize.shaping"
    assert edited.location("bits") == stage.location("bits")          # unchanged: still the file's
    with pytest.raises(PresetError) as caught:
        Chain([edited]).check(48000)
    assert str(caught.value).startswith("requantize.shaping: shaping 'lipshitz' has no table for 48000 Hz")
    with pytest.raises(PresetError) as built_in_python:
        Chain([Requantize(16, shaping="lipshitz")]).check(48000)
    assert str(built_in_python.value).startswith("requantize.shaping: ")
    with pytest.raises(ValueError, match="requantize.dither must be one of"):
        stage.replaced(dither="blue")


def test_dither_and_shaping_names_are_defined_once_and_known_everywhere():
    """rtq.dsp defines the names; presets and constructors take them from there, and the
    meter has the theory of every dither (a new one fails here until it does)."""
    from rtq.dsp.requantize import DITHER_CODES, DITHER_TYPES
    from rtq.dsp.shaping import SHAPING_NAMES, TABLE_NAMES
    from rtq.meter.measure import _DITHER_PSD_LSB2

    assert DITHER_TYPES == tuple(DITHER_CODES) and set(_DITHER_PSD_LSB2) == set(DITHER_TYPES)
    assert SHAPING_NAMES == ("none", *TABLE_NAMES)
    for dither in DITHER_TYPES:
        assert Requantize(16, dither).dither == dither
    for name in SHAPING_NAMES:
        assert parse_preset(f"chain: [requantize: {{bits: 16, shaping: {name}}}]", "p.yaml").chain[0].params[
            "shaping"] == ({"kind": "none"} if name == "none" else {"kind": "table", "name": name})
