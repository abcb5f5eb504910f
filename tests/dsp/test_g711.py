"""G.711 mu-law and A-law against Python's audioop (the ITU reference coder's behaviour),
code for code over every 16-bit input, both as scalar kernels and through a Chain."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from rtq.chain import Chain
from rtq.dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from rtq.stages import Gain, Quantize

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:                         # removed in Python 3.13
        audioop = None

pytestmark = pytest.mark.skipif(audioop is None, reason=f"no audioop in Python {sys.version_info[:2]}")

ALL16 = np.arange(-32768, 32768, dtype=np.int16)
LAWS = {
    "mu-law": (ulaw_encode, ulaw_decode, lambda b: audioop.lin2ulaw(b, 2), lambda b: audioop.ulaw2lin(b, 2)),
    "a-law": (alaw_encode, alaw_decode, lambda b: audioop.lin2alaw(b, 2), lambda b: audioop.alaw2lin(b, 2)),
}


def reference_codes(law):
    return np.frombuffer(LAWS[law][2](ALL16.tobytes()), dtype=np.uint8)


def reference_roundtrip(law, samples16):
    enc, dec = LAWS[law][2], LAWS[law][3]
    return np.frombuffer(dec(enc(np.asarray(samples16, dtype=np.int16).tobytes())), dtype=np.int16)


@pytest.mark.parametrize("law", LAWS)
def test_scalar_encoder_equals_audioop_for_all_65536_inputs(law):
    encode = LAWS[law][0]
    ours = np.array([encode(int(v)) for v in ALL16.tolist()], dtype=np.int64)
    ref = reference_codes(law).astype(np.int64)
    bad = np.flatnonzero(ours != ref)
    assert bad.size == 0, f"{bad.size} mismatches, first at {ALL16[bad[0]]}: {ours[bad[0]]:#x} vs {ref[bad[0]]:#x}"


@pytest.mark.parametrize("law", LAWS)
def test_scalar_decoder_equals_audioop_for_all_256_codes(law):
    decode, ref_decode = LAWS[law][1], LAWS[law][3]
    codes = np.arange(256, dtype=np.uint8)
    ref = np.frombuffer(ref_decode(codes.tobytes()), dtype=np.int16)
    ours = np.array([decode(int(c)) for c in codes], dtype=np.int64)
    assert np.array_equal(ours, ref.astype(np.int64))


@pytest.mark.parametrize("law", LAWS)
def test_quantize_stage_equals_audioop_roundtrip_code_for_code(law):
    x = ALL16.astype(np.float64) / 32768.0
    stage = Quantize(law)
    chain = Chain([stage])
    y = chain(x, 8000)
    ref = reference_roundtrip(law, ALL16)
    assert np.array_equal(y * 32768.0, ref.astype(np.float64))
    assert chain.program.counters[chain.quantizer_info[(0,)].op_index, 0, 0] == 0      # nothing clipped
    # the companding characteristic is monotonic and odd-ish: 255 (mu) / 256 (A) levels
    assert np.all(np.diff(y) >= 0.0)
    assert np.unique(y).size == (255 if law == "mu-law" else 256)


@pytest.mark.parametrize("law", LAWS)
def test_quantize_rounds_to_the_16_bit_grid_first_and_counts_clips(law):
    rng = np.random.default_rng(4)
    v = rng.integers(-32768, 32768, 50000)
    frac = rng.uniform(-0.4999, 0.4999, v.size)
    x = np.empty((v.size, 2))
    x[:, 0] = (v + frac) / 32768.0
    x[:, 1] = v / 32768.0
    x[:3, 1] = [1.5, -1.5, 1.0]                  # two beyond full scale, one at +1.0
    x[3, 0] = -1.0                                # exactly -full scale: no clip
    x[4, 0] = 40000 / 32768.0
    stage = Quantize(law)
    chain = Chain([stage])
    y = chain(x, 48000)
    sat = np.clip(np.rint(x * 32768.0), -32768, 32767)
    ref = np.stack([reference_roundtrip(law, sat[:, c]) for c in range(2)], axis=1)
    assert np.array_equal(y * 32768.0, ref.astype(np.float64))
    assert list(chain.program.counters[chain.quantizer_info[(0,)].op_index, :, 0]) == [1, 3]


def test_mu_law_after_gain_in_a_chain():
    x = np.linspace(-0.9, 0.9, 4001)
    g = 10.0 ** (-6.0 / 20.0)
    y = Chain([Gain(-6.0), Quantize("mu-law")])(x, 48000)
    s16 = np.clip(np.rint(x * g * 32768.0), -32768, 32767)
    assert np.array_equal(y * 32768.0, reference_roundtrip("mu-law", s16).astype(np.float64))


def test_quantize_rejects_other_word_lengths():
    with pytest.raises(ValueError):
        Quantize("mu-law", bits=16)
    with pytest.raises(ValueError):
        Quantize("c-law")
