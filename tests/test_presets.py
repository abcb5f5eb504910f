"""The preset loader: shipped presets, normalisation, round trips and error messages."""
from __future__ import annotations

import dataclasses
import math
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rtq.errors import PresetError
from rtq.dsp.requantize import DITHER_TYPES
from rtq.dsp.shaping import TABLE_NAMES as SHAPING_TABLES
from rtq.presets import (
    PRESET_DIR,
    load_preset,
    parse_preset,
    preset_to_dict,
    shipped_presets,
)
from rtq.spec import PresetSpec, StageSpec

SHIPPED = {
    "tpdf-16",
    "lowpass-3500",
    "lowpass-7000",
    "tpdf-24",
    "cd-16-lipshitz",
    "cd-16-f-weighted",
    "cd-16-modified-e-weighted",
    "cd-16-improved-e-weighted",
    "cd-16-gesemann",
    "cd-16-shibata",
    "cd-16-low-shibata",
    "cd-16-high-shibata",
    "undithered-8",
    "telephone-mulaw",
    "telephone-alaw",
    "lofi-6",
    "dsd64-1bit",
    "converter-8bit-8x",
    "bitcrush-4bit-oversampled",
    "speech-lloyd-max-4",
    "nicam-14-10",
    "mastering-16-auto-blank",
}
TPDF = {"type": "tpdf", "amplitude": 1.0}
NO_DITHER = {"type": "none", "amplitude": 1.0}
NO_SHAPING = {"kind": "none"}


def parse(text: str, filename: str = "p.yaml") -> PresetSpec:
    return parse_preset(textwrap.dedent(text), filename)


def stage(kind: str, **params) -> StageSpec:
    return StageSpec(kind, params)


def round_trip(preset: PresetSpec) -> PresetSpec:
    again = parse_preset(yaml.safe_dump(preset_to_dict(preset), sort_keys=False), "again.yaml")
    return dataclasses.replace(again, source=preset.source)


# ----------------------------------------------------------------------------- shipped presets


def test_shipped_presets_are_all_there_and_sorted():
    presets = shipped_presets()
    assert [p.name for p in presets] == sorted(SHIPPED)
    assert {path.stem for path in PRESET_DIR.glob("*.yaml")} == SHIPPED


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_preset_loads_by_name_and_path(name):
    by_name = load_preset(name)
    assert by_name == load_preset(PRESET_DIR / f"{name}.yaml")
    assert by_name.name == name
    assert by_name.description and "\n" not in by_name.description
    assert by_name.chain
    assert round_trip(by_name) == by_name


def test_cd_16_shibata_is_the_documented_example():
    preset = load_preset("cd-16-shibata")
    assert preset == PresetSpec(
        name="cd-16-shibata",
        description="24-bit master to 16-bit CD, TPDF dither, Shibata noise shaping",
        chain=(
            stage("gain", db=-0.1),
            stage("requantize", bits=16, dither=TPDF, shaping={"kind": "table", "name": "shibata"}),
        ),
        seed=1,
        source=str(PRESET_DIR / "cd-16-shibata.yaml"),
    )
    path = preset.source
    requantize = preset.chain[1]
    assert requantize.where == {
        "": f"{path}:6:5",
        "bits": f"{path}:7:13",
        "dither": f"{path}:8:15",
        "shaping": f"{path}:9:16",
    }
    assert requantize.location("shaping") == f"{path}:9:16"


@pytest.mark.parametrize("table", [t for t in SHAPING_TABLES if t != "first-order"])
def test_cd_16_presets_use_their_shaping_table_with_headroom(table):
    gain, requantize = load_preset(f"cd-16-{table}").chain
    assert gain.kind == "gain" and -1.0 <= gain.params["db"] < 0
    assert requantize == stage("requantize", bits=16, dither=TPDF, shaping={"kind": "table", "name": table})


@pytest.mark.parametrize(
    "name, chain",
    [
        ("tpdf-16", (stage("requantize", bits=16, dither=TPDF, shaping=NO_SHAPING),)),
        ("tpdf-24", (stage("requantize", bits=24, dither=TPDF, shaping=NO_SHAPING),)),
        ("undithered-8", (stage("requantize", bits=8, dither=NO_DITHER, shaping=NO_SHAPING),)),
        ("lofi-6", (stage("requantize", bits=6, dither=NO_DITHER, shaping=NO_SHAPING),)),
        ("telephone-mulaw", (stage("gain", db=-1.0), stage("quantize", law="mu-law", bits=8))),
        ("telephone-alaw", (stage("gain", db=-1.0), stage("quantize", law="a-law", bits=8))),
        ("nicam-14-10", (stage("requantize", bits=14, dither=TPDF, shaping=NO_SHAPING),
                         stage("blockcompand", bits=10, block=32, range_bits=14, dither=NO_DITHER,
                               shaping=NO_SHAPING))),
        ("mastering-16-auto-blank", (stage("requantize", bits=16, dither=TPDF,
                                           shaping={"kind": "table", "name": "shibata"}, auto_blank=0.5,
                                           limit=True),)),
    ],
)
def test_plain_shipped_presets(name, chain):
    assert load_preset(name).chain == chain


# ----------------------------------------------------------------------------- normalisation


def test_defaults_are_filled():
    preset = parse("chain:\n  - requantize: {bits: 1}\n", "dir/my-preset.yaml")
    assert preset == PresetSpec(
        name="my-preset",
        description="",
        chain=(stage("requantize", bits=1, dither=TPDF, shaping=NO_SHAPING),),
        seed=None,
        source="dir/my-preset.yaml",
    )


def test_every_parameter_form_is_normalised():
    preset = parse(
        """\
        name: everything
        description: all the forms
        seed: 0
        chain:
          - gain: {db: -3}
          - requantize: {bits: 24, dither: {type: gaussian, amplitude: 0.5}, shaping: {coefficients: [1, -0.5]}}
          - requantize: {bits: 16, dither: {amplitude: 2}, shaping: {order: 3}}
          - requantize: {bits: 16, dither: rpdf, shaping: {order: 5, band_hz: 20000}}
          - requantize: {bits: 12, dither: tpdf-hp, shaping: first-order}
          - quantize: {law: a-law}
          - oversample:
              factor: 4
              chain:
                - requantize: {bits: 8, dither: tpdf, shaping: {order: 3}}
                - oversample:
                    {factor: 64, phase: minimum, quality: draft, integer_latency: true, chain: [gain: {db: 1.5}]}
        """
    )
    assert preset.seed == 0 and preset.name == "everything" and preset.description == "all the forms"
    assert preset.chain == (
        stage("gain", db=-3.0),
        stage("requantize", bits=24, dither={"type": "gaussian", "amplitude": 0.5},
              shaping={"kind": "fir", "coefficients": (1.0, -0.5)}),
        stage("requantize", bits=16, dither={"type": "tpdf", "amplitude": 2.0},
              shaping={"kind": "design", "order": 3, "band_hz": None}),
        stage("requantize", bits=16, dither={"type": "rpdf", "amplitude": 1.0},
              shaping={"kind": "design", "order": 5, "band_hz": 20000.0}),
        stage("requantize", bits=12, dither={"type": "tpdf-hp", "amplitude": 1.0},
              shaping={"kind": "table", "name": "first-order"}),
        stage("quantize", law="a-law", bits=8),
        stage("oversample", factor=4, phase="linear", quality="high", integer_latency=False, chain=(
            stage("requantize", bits=8, dither=TPDF, shaping={"kind": "design", "order": 3, "band_hz": None}),
            stage("oversample", factor=64, phase="minimum", quality="draft", integer_latency=True,
                  chain=(stage("gain", db=1.5),)),
        )),
    )
    assert type(preset.chain[0].params["db"]) is float
    assert all(type(c) is float for c in preset.chain[1].params["shaping"]["coefficients"])
    assert round_trip(preset) == preset


def test_where_records_stage_and_parameter_positions_in_nested_chains():
    preset = parse(
        """\
        chain:
          - oversample:
              factor: 2
              chain:
                - requantize: {bits: 8, shaping: {order: 2}}
        """
    )
    oversample = preset.chain[0]
    assert oversample.where == {"": "p.yaml:2:5", "factor": "p.yaml:3:15", "chain": "p.yaml:5:9"}
    nested = oversample.params["chain"][0]
    assert nested.where == {"": "p.yaml:5:11", "bits": "p.yaml:5:30", "shaping": "p.yaml:5:42"}
    assert nested.location("dither") == "p.yaml:5:11"  # defaults point at the stage


def test_dates_and_explicit_string_tags_are_text():
    preset = parse("description: 2024-05-01\nname: !!str 16\nchain: [gain: {db: 0}]\n")
    assert (preset.name, preset.description) == ("16", "2024-05-01")


def test_aliases_are_followed():
    preset = parse("chain:\n  - &g {gain: {db: -1}}\n  - requantize: {bits: 8}\n  - *g\n")
    assert [s.kind for s in preset.chain] == ["gain", "requantize", "gain"]


# ----------------------------------------------------------------------------- errors

BROKEN = [
    pytest.param(
        """\
        name: cd
        description: 24-bit master to 16-bit CD
        seed: 1
        chain:
          - gain: {db: -0.1}
          - requantize:
              bits: sixteen
        """,
        "bad.yaml:7:13: requantize.bits must be an integer from 1 to 32, got 'sixteen'",
        id="bits-not-a-number",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 33}\n",
        "bad.yaml:2:24: requantize.bits must be an integer from 1 to 32, got 33",
        id="bits-too-big",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 0}\n",
        "bad.yaml:2:24: requantize.bits must be an integer from 1 to 32, got 0",
        id="bits-zero",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16.0}\n",
        "bad.yaml:2:24: requantize.bits must be an integer from 1 to 32, got 16.0",
        id="bits-float",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: true}\n",
        "bad.yaml:2:24: requantize.bits must be an integer from 1 to 32, got true",
        id="bool-as-int",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: !!int sixteen}\n",
        "bad.yaml:2:24: cannot read 'sixteen' as !!int",
        id="explicit-int-tag-on-text",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16, dither: tdpf}\n",
        "bad.yaml:2:36: requantize.dither must be one of none, rpdf, tpdf, tpdf-hp, gaussian, got 'tdpf'; "
        "did you mean 'tpdf'?",
        id="bad-dither-name",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16, dither: {type: tpdf, amplitude: -0.5}}\n",
        "bad.yaml:2:60: requantize.dither.amplitude must be a finite number >= 0, got -0.5",
        id="negative-amplitude",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16, dither: {amplitud: 2}}\n",
        "bad.yaml:2:37: unknown key 'amplitud' in requantize.dither; did you mean 'amplitude'?",
        id="unknown-dither-key",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16, shaping: shibta}\n",
        "bad.yaml:2:37: requantize.shaping must be one of none, first-order, lipshitz, f-weighted, "
        "modified-e-weighted, improved-e-weighted, gesemann, shibata, low-shibata, high-shibata, got 'shibta'; "
        "did you mean 'shibata'?",
        id="bad-shaping-name",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16, shaping: {coefficients: [1.0, .inf]}}\n",
        "bad.yaml:2:58: requantize.shaping.coefficients[1] must be a finite number, got .inf",
        id="non-finite-coefficient",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16, shaping: {coefficients: []}}\n",
        "bad.yaml:2:52: requantize.shaping.coefficients must be a list of 1 to 64 finite numbers, got an empty list",
        id="no-coefficients",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16, shaping: {order: 8}}\n",
        "bad.yaml:2:45: requantize.shaping.order must be an integer from 1 to 7, got 8",
        id="shaping-order-too-high",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16, shaping: {coefficients: [1], order: 2}}\n",
        "bad.yaml:2:37: requantize.shaping takes 'coefficients' or 'order', not both",
        id="coefficients-and-order",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16, shaping: {ordr: 2}}\n",
        "bad.yaml:2:37: requantize.shaping needs 'coefficients' (an FIR filter) or 'order' (a designed filter)\n"
        "bad.yaml:2:38: unknown key 'ordr' in requantize.shaping; did you mean 'order'?",
        id="misspelt-shaping-key",
    ),
    pytest.param(
        """\
        chain:
          - requantize:
              bits: 16
              ditherr: tpdf
        """,
        "bad.yaml:4:7: unknown key 'ditherr' in requantize; did you mean 'dither'?",
        id="unknown-parameter",
    ),
    pytest.param(
        "chain:\n  - requantize: {bits: 16, zzz: 1}\n",
        "bad.yaml:2:28: unknown key 'zzz' in requantize (valid keys: bits, dither, shaping, auto_blank, passthrough_exact, limit)",
        id="unknown-parameter-no-close-match",
    ),
    pytest.param(
        "descripton: x\nchain:\n  - gain: {db: 0}\n",
        "bad.yaml:1:1: unknown key 'descripton' at top level; did you mean 'description'?",
        id="unknown-top-level-key",
    ),
    pytest.param(
        "chain:\n  - requantise: {bits: 8}\n",
        "bad.yaml:2:5: unknown stage 'requantise' in chain[0]; did you mean 'requantize'?",
        id="unknown-stage",
    ),
    pytest.param(
        "chain:\n  - gain: {db: -1}\n    requantize: {bits: 16}\n",
        "bad.yaml:2:5: chain[0] must have exactly one key (the stage kind), got 2: gain, requantize "
        "(start each stage with '- ')",
        id="two-keys-in-one-stage",
    ),
    pytest.param(
        "chain:\n  - requantize: {dither: tpdf}\n",
        "bad.yaml:2:5: requantize is missing required key 'bits'",
        id="missing-bits",
    ),
    pytest.param(
        "name: x\n",
        "bad.yaml:1:1: preset is missing required key 'chain'",
        id="no-chain",
    ),
    pytest.param(
        "chain: []\n",
        "bad.yaml:1:8: chain must be a non-empty list of stages, got an empty list",
        id="empty-chain",
    ),
    pytest.param(
        "chain:\n  - gain: {db: 30}\n",
        "bad.yaml:2:16: gain.db must be a finite number from -120 to 24, got 30",
        id="gain-out-of-range",
    ),
    pytest.param(
        "chain:\n  - gain: {db: .nan}\n",
        "bad.yaml:2:16: gain.db must be a finite number from -120 to 24, got .nan",
        id="gain-nan",
    ),
    pytest.param(
        "chain:\n  - quantize: {law: ulaw, bits: 17}\n",
        "bad.yaml:2:21: quantize.law must be one of mu-law, a-law, lloyd-max, got 'ulaw'; did you mean 'mu-law'?\n"
        "bad.yaml:2:33: quantize.bits must be an integer from 1 to 16, got 17",
        id="bad-quantize",
    ),
    pytest.param(
        "seed: -1\nchain:\n  - gain: {db: 0}\n",
        "bad.yaml:1:7: seed must be an integer from 0 to 18446744073709551615, got -1",
        id="negative-seed",
    ),
    pytest.param(
        "seed: 18446744073709551616\nchain:\n  - gain: {db: 0}\n",
        "bad.yaml:1:7: seed must be an integer from 0 to 18446744073709551615, got 18446744073709551616",
        id="seed-beyond-64-bits",
    ),
    pytest.param(
        "chain:\n  - gain: {db: 1e1}\n  - gain: {db: '1e1'}\n",
        "bad.yaml:2:16: gain.db must be a finite number from -120 to 24, got '1e1'; YAML reads it as text: "
        "write the exponent as in 1.0e-3 or 1.0e+3\n"
        "bad.yaml:3:16: gain.db must be a finite number from -120 to 24, got '1e1'",
        id="exponent-read-as-text",
    ),
    pytest.param(
        "name: [a]\nchain:\n  - gain: {db: 0}\n",
        "bad.yaml:1:7: name must be text, got a list of 1 item",
        id="name-not-text",
    ),
    pytest.param(
        "chain:\n  - gain: {db: -1\n",
        "bad.yaml:3:1: invalid YAML: while parsing a flow mapping, expected ',' or '}', but got '<stream end>'",
        id="syntax-error",
    ),
    pytest.param(
        "chain:\n  - gain\n    db: 1\n",
        "bad.yaml:3:7: invalid YAML: mapping values are not allowed here",
        id="syntax-error-mapping-value",
    ),
    pytest.param(
        "chain:\n  - gain: {db: 1}\n  - gain: {db: \x00}\n",
        "bad.yaml:3:16: invalid YAML: unacceptable character #x0000: special characters are not allowed",
        id="control-character",
    ),
    pytest.param(
        "chain: " + "[" * 5000 + "]" * 5000,
        "bad.yaml:1:1: invalid YAML: nested too deeply",
        id="absurdly-deep-nesting",
    ),
    pytest.param(
        "chain:\n  - gain: {db: 1}\n---\nchain: []\n",
        "bad.yaml:3:1: invalid YAML: expected a single document in the stream, but found another document",
        id="two-documents",
    ),
    pytest.param(
        "chain:\n  - requantize:\n      bits: 16\n      bits: 24\n",
        "bad.yaml:4:7: duplicate key 'bits' in requantize (first at line 3)",
        id="duplicate-key",
    ),
    pytest.param(
        "chain:\n  - gain: !!python/object/apply:os.system [echo hi]\n",
        "bad.yaml:2:11: unsupported YAML tag '!!python/object/apply:os.system': presets hold only plain values",
        id="python-tag",
    ),
    pytest.param(
        "chain:\n  - gain: {db: !custom 1}\n",
        "bad.yaml:2:16: unsupported YAML tag '!custom': presets hold only plain values",
        id="custom-tag",
    ),
    pytest.param(
        "a: &x [*x]\nchain:\n  - gain: {db: 0}\n",
        "bad.yaml:1:4: an alias refers to a node that contains it (recursive structure)",
        id="recursive-alias",
    ),
    pytest.param(
        "chain:\n  - oversample: {factor: 3, chain: [gain: {db: 0}]}\n",
        "bad.yaml:2:26: oversample.factor must be one of 2, 4, 8, 16, 32, 64, got 3",
        id="bad-oversample-factor",
    ),
    pytest.param(
        "chain:\n  - oversample: {factor: 2, phase: min, chain: []}\n",
        "bad.yaml:2:36: oversample.phase must be one of linear, minimum, got 'min'; did you mean 'minimum'?\n"
        "bad.yaml:2:48: oversample.chain must be a non-empty list of stages, got an empty list",
        id="bad-oversample-phase-and-empty-nested-chain",
    ),
    pytest.param(
        """\
        chain:
          - oversample:
              factor: 4
              integer_latency: 1
              chain:
                - requantize: {bits: 8, dither: tpdf, shaping: {order: 3}}
                - oversample:
                    factor: 2
                    chain:
                      - requantize: {bits: 40}
        """,
        "bad.yaml:4:24: oversample.integer_latency must be true or false, got 1\n"
        "bad.yaml:10:36: oversample.chain[1].oversample.chain[0].requantize.bits "
        "must be an integer from 1 to 32, got 40",
        id="nested-error-path",
    ),
    pytest.param(
        "chain:\n  - 3\n",
        "bad.yaml:2:5: chain[0] must be a mapping, got 3",
        id="stage-not-a-mapping",
    ),
    pytest.param(
        "chain:\n  - gain:\n",
        "bad.yaml:2:10: gain must be a mapping, got null",
        id="stage-without-parameters",
    ),
    pytest.param(
        "- gain: {db: 1}\n",
        "bad.yaml:1:1: preset must be a mapping, got a list of 1 item",
        id="document-not-a-mapping",
    ),
    pytest.param(
        "",
        "bad.yaml:1:1: preset is empty (expected a mapping with a 'chain' list)",
        id="empty",
    ),
    pytest.param(
        "# only a comment\n",
        "bad.yaml:1:1: preset is empty (expected a mapping with a 'chain' list)",
        id="only-comments",
    ),
]


@pytest.mark.parametrize("text, message", BROKEN)
def test_broken_preset_message(text, message):
    with pytest.raises(PresetError) as caught:
        parse(text, "bad.yaml")
    assert str(caught.value) == message


def test_all_problems_in_a_file_are_reported_in_file_order():
    text = """\
    chian: []
    chain:
      - gain: {db: 99}
      - requantize: {bits: 0, dither: foo}
      - wobble: {}
    """
    with pytest.raises(PresetError) as caught:
        parse(text, "many.yaml")
    assert str(caught.value).splitlines() == [
        "many.yaml:1:1: unknown key 'chian' at top level; did you mean 'chain'?",
        "many.yaml:3:16: gain.db must be a finite number from -120 to 24, got 99",
        "many.yaml:4:24: requantize.bits must be an integer from 1 to 32, got 0",
        "many.yaml:4:35: requantize.dither must be one of none, rpdf, tpdf, tpdf-hp, gaussian, got 'foo'",
        "many.yaml:5:5: unknown stage 'wobble' in chain[2] (stages: gain, requantize, quantize, blockcompand, lowpass, oversample)",
    ]


# ----------------------------------------------------------------------------- files


def test_load_preset_from_a_file(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text("chain:\n  - requantize: {bits: 8}\n")
    assert load_preset(path).name == "mine"
    assert load_preset(str(path)).source == str(path)


def test_load_preset_reports_file_problems_with_the_given_name(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text("chain:\n  - requantize: {bits: 99}\n")
    Path("latin1.yaml").write_bytes("description: caf\xe9\n".encode("latin-1"))
    Path("empty.yaml").write_text("")
    Path("folder.yaml").mkdir()
    cases = {
        "bad.yaml": "bad.yaml:2:24: requantize.bits must be an integer from 1 to 32, got 99",
        "missing.yaml": "missing.yaml: cannot read preset: No such file or directory",
        "latin1.yaml": "latin1.yaml: cannot read preset: not UTF-8 text",
        "empty.yaml": "empty.yaml:1:1: preset is empty (expected a mapping with a 'chain' list)",
        "folder.yaml": "folder.yaml: cannot read preset: Is a directory",
    }
    for source, message in cases.items():
        with pytest.raises(PresetError) as caught:
            load_preset(source)
        assert str(caught.value) == message


@pytest.mark.parametrize(
    "name, message",
    [
        ("shibata", "unknown preset 'shibata'; closest shipped presets: cd-16-shibata, cd-16-low-shibata, "
                    "cd-16-high-shibata"),
        ("tpdf16", "unknown preset 'tpdf16'; closest shipped presets: tpdf-16, tpdf-24"),
        ("zzz", "unknown preset 'zzz'; shipped presets: " + ", ".join(sorted(SHIPPED))),
    ],
)
def test_unknown_preset_name_lists_closest_shipped_names(name, message):
    with pytest.raises(PresetError) as caught:
        load_preset(name)
    assert str(caught.value) == message


# ----------------------------------------------------------------------------- properties

finite = st.floats(min_value=-4.0, max_value=4.0, allow_nan=False)
shaping_forms = st.one_of(
    st.sampled_from(("none",) + SHAPING_TABLES),
    st.builds(lambda c: {"coefficients": c}, st.lists(finite, min_size=1, max_size=64)),
    st.builds(lambda k: {"order": k}, st.integers(1, 7)),
    st.builds(lambda k, b: {"order": k, "band_hz": b}, st.integers(1, 7), st.floats(1.0, 96000.0)),
)
dither_forms = st.one_of(
    st.sampled_from(DITHER_TYPES),
    st.builds(lambda t, a: {"type": t, "amplitude": a}, st.sampled_from(DITHER_TYPES), st.floats(0.0, 8.0)),
)


@settings(max_examples=200, deadline=None)
@given(bits=st.integers(1, 32), dither=dither_forms, shaping=shaping_forms, seed=st.none() | st.integers(0, 2**64 - 1))
def test_any_valid_requantize_stage_round_trips(bits, dither, shaping, seed):
    data = {"chain": [{"requantize": {"bits": bits, "dither": dither, "shaping": shaping}}]}
    if seed is not None:
        data["seed"] = seed
    preset = parse_preset(yaml.safe_dump(data), "prop.yaml")
    params = preset.chain[0].params
    assert params["bits"] == bits and preset.seed == seed
    assert params["dither"]["type"] == (dither if isinstance(dither, str) else dither["type"])
    assert math.isfinite(params["dither"]["amplitude"])
    assert round_trip(preset) == preset


vocabulary = st.sampled_from(
    ["chain", "name", "seed", "gain", "db", "requantize", "bits", "dither", "shaping", "type", "amplitude",
     "coefficients", "order", "band_hz", "quantize", "law", "oversample", "factor", "phase", "quality",
     "integer_latency", "tpdf", "shibata", "mu-law", "x"]
)
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-100, 100) | st.floats() | vocabulary,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(vocabulary, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(plain_values)
def test_any_plain_document_either_loads_or_raises_preset_error(value):
    try:
        parse_preset(yaml.safe_dump(value), "fuzz.yaml")
    except PresetError as err:
        assert all(line.startswith("fuzz.yaml:") for line in str(err).splitlines())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
@example("0\n\n0")  # a multi-line scalar: its value must not break the one-line message
def test_any_text_either_loads_or_raises_preset_error(text):
    try:
        parse_preset(text, "fuzz.yaml")
    except PresetError as err:
        assert all(line.startswith("fuzz.yaml:") for line in str(err).splitlines())


def test_other_yaml_files_of_rtq_are_read_as_presets_are():
    """parse_document serves files that are not presets (listening tests): the same
    safety, limits and file:line:column messages, their own rules and name."""
    from rtq.presets import parse_document
    from rtq.schema import Fields, Integer, Text

    rules = Fields({"name": Text(), "trials": Integer(1, 100).optional(16)})
    assert parse_document("name: t\n", "t.yaml", rules, "test") == {"name": "t", "trials": 16}
    with pytest.raises(PresetError) as caught:
        parse_document("trials: 0\nnmae: x\n", "t.yaml", rules, "test")
    assert str(caught.value).splitlines() == [
        "t.yaml:1:1: test is missing required key 'name'",
        "t.yaml:1:9: trials must be an integer from 1 to 100, got 0",
        "t.yaml:2:1: unknown key 'nmae' at top level; did you mean 'name'?",
    ]
    with pytest.raises(PresetError, match=r"^t.yaml:1:1: test is empty \(expected a mapping\)$"):
        parse_document("", "t.yaml", rules, "test")
