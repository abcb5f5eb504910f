"""Every shipped preset's output, pinned by SHA-256: through ``Chain(...)(x, rate)`` and
through ``rtq render``, over a fixed signal.

This guards bit-identity through refactoring: a change that moves any output sample of
any shipped preset fails here.  A change that alters output on purpose updates the
hashes below, and its commit message says why.

The signal is made here from integer arithmetic alone (no library random generator,
whose stream may change between versions): 3 s of stereo at 44100 Hz (every shipped
preset runs at that rate, the 44.1 kHz-only tables included), a sine per channel at
-12 / -14 dBFS peak plus triangular noise at about -60 dBFS RMS, float32-exact so the
file ``rtq render`` reads holds exactly what the chain is given.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile as sf

from rtq.chain import Chain
from rtq.cli import main
from rtq.presets import PRESET_DIR

RATE = 44100
SECONDS = 3


def splitmix64(n: int, seed: int) -> np.ndarray:
    """``n`` outputs of the SplitMix64 generator (Steele et al.), in uint64 arithmetic."""
    z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def pinned_signal() -> np.ndarray:
    n = RATE * SECONDS
    t = np.arange(n) / RATE
    x = np.empty((n, 2))
    for channel, (hz, peak) in enumerate(((997.0, 0.25), (1499.0, 0.2))):
        u1, u2 = ((splitmix64(n, 2 * channel + k) >> np.uint64(11)) * 2.0 ** -53 for k in (0, 1))
        noise = (u1 + u2 - 1.0) * np.sqrt(6.0) * 1e-3          # TPDF, RMS 1e-3 (-60 dBFS)
        x[:, channel] = peak * np.sin(2.0 * np.pi * hz * t) + noise
    return x.astype(np.float32).astype(np.float64)


def digest(samples: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float64).tobytes()).hexdigest()


# preset: (SHA-256 of Chain(...)(x, 44100), of the file rtq render writes, read back as
# float64); the two differ where the file is FLOAT (float32 rounds the chain's output).
PINNED = {
    "bitcrush-4bit-oversampled": (
        "d838796e7ab9c3cf448b0dc5f2b259cb4c404f2e2b5aad3128e39eeee8c809d3",
        "bd24bf93e28c31ee238fb593f90c18c2db2d66b92b099d610bdcc407a12ce5d5"),
    "cd-16-f-weighted": (
        "05518c899201986870ef1a0854f18a1fb0cc4681ced349043a51bb33687e61c0",
        "05518c899201986870ef1a0854f18a1fb0cc4681ced349043a51bb33687e61c0"),
    "cd-16-gesemann": (
        "5acb450afbdc27b354d6b7ae1f68f613078673e1ce0d6b2de17df208b2fdafb9",
        "5acb450afbdc27b354d6b7ae1f68f613078673e1ce0d6b2de17df208b2fdafb9"),
    "cd-16-high-shibata": (
        "2167db2387f774a332076669fbb4047ebaa70d25ade77e9b903ad4e4829a3ec3",
        "2167db2387f774a332076669fbb4047ebaa70d25ade77e9b903ad4e4829a3ec3"),
    "cd-16-improved-e-weighted": (
        "af12c501ce2839fa0a490552c1cee89890d3fe3b31c1d32b8f8c79b1ad7aefed",
        "af12c501ce2839fa0a490552c1cee89890d3fe3b31c1d32b8f8c79b1ad7aefed"),
    "cd-16-lipshitz": (
        "37caec208001ca5f83995fd1060bda1f9a37c9a00338a8532f58d3080794317f",
        "37caec208001ca5f83995fd1060bda1f9a37c9a00338a8532f58d3080794317f"),
    "cd-16-low-shibata": (
        "aa7b8cc9d79f7dfba2eadbea8de95f9e70f9162b832de6be6308e8d22ff52311",
        "aa7b8cc9d79f7dfba2eadbea8de95f9e70f9162b832de6be6308e8d22ff52311"),
    "cd-16-modified-e-weighted": (
        "f121e0c7f3f5556139eadc9944a5acf9018baedf4dee51836180812b2d896a61",
        "f121e0c7f3f5556139eadc9944a5acf9018baedf4dee51836180812b2d896a61"),
    "cd-16-shibata": (
        "4040e2908c9c76cf97a0b316ed215e7d902ea34006995308796bada686bac179",
        "4040e2908c9c76cf97a0b316ed215e7d902ea34006995308796bada686bac179"),
    "converter-8bit-8x": (
        "05182be1ac183508d8c9ebf6addb17933a28400d75d7e948c296e85b8f863111",
        "a81bfc24a84625b9d027e8cc721904af4cb842197bac4dbda5de8b9d12afb70a"),
    "dsd64-1bit": (
        "a2b82b82c5591c9fe727933f5f681a66b3d22a24e2a59665d8a5b64abed01b68",
        "e637ddd0d93c2001095cf405e6afcbd6225d13e6a1cdde4de1f913b17437a7f2"),
    "lofi-6": (
        "cbc4b51610bbc6b27f5b56521daa70d7fda0b87fc0207eff29bfc7e71cfd0a48",
        "cbc4b51610bbc6b27f5b56521daa70d7fda0b87fc0207eff29bfc7e71cfd0a48"),
    "lowpass-3500": (
        "4653fbf86027f74bd5c8e38601c8482d093de998fc8da07f7dfdff4e5ec3b77c",
        "008c0f4363d7cfbeaecd1989565d81b2e04c8d4ef2bda347935837df6e2c6b56"),
    "lowpass-7000": (
        "999d4df2f9f411815e2e429040029733a35281e1342365b1567f2e2e289e45e5",
        "381314f51ed495405fc9fea47a6fea43b4a61d1c3915ae9afd5414051e2729ba"),
    "mastering-16-auto-blank": (
        "08467cd8d8ebedaa3d971b1fad66a628218da7ea4a516b55bbfac2772452ddfe",
        "08467cd8d8ebedaa3d971b1fad66a628218da7ea4a516b55bbfac2772452ddfe"),
    "nicam-14-10": (
        "4cdb07ae4679a5ae63490bb9f7f78a2428f9178bab44a28507e75989b722f695",
        "4cdb07ae4679a5ae63490bb9f7f78a2428f9178bab44a28507e75989b722f695"),
    "speech-lloyd-max-4": (
        "b1553a3fdb0c96aa51b7fa015ca49f8be9f9a76af6db279e32acdfbd35bd6031",
        "b1553a3fdb0c96aa51b7fa015ca49f8be9f9a76af6db279e32acdfbd35bd6031"),
    "telephone-alaw": (
        "979ae17ae9d32473673e19eb7f95b3267b71897d16506c1855febfa18cafaf1f",
        "979ae17ae9d32473673e19eb7f95b3267b71897d16506c1855febfa18cafaf1f"),
    "telephone-mulaw": (
        "a0e50e4d5645ed0eb38f2a74122788c1201cd7696ef3ba93c3e955d4168f23c3",
        "a0e50e4d5645ed0eb38f2a74122788c1201cd7696ef3ba93c3e955d4168f23c3"),
    "tpdf-16": (
        "437d3628b0aac34bdbbb4f86aa45950b48a08e28ecd43597dca2367c85afb4a4",
        "437d3628b0aac34bdbbb4f86aa45950b48a08e28ecd43597dca2367c85afb4a4"),
    "tpdf-24": (
        "7232c15f91067c2923009a19282a5c5e68ec09ff7477b4f94ced46dbbee05110",
        "7232c15f91067c2923009a19282a5c5e68ec09ff7477b4f94ced46dbbee05110"),
    "undithered-8": (
        "309b947324dcf48ff4c67cd2742625220233b1e8a903527ffad065de73cedccc",
        "309b947324dcf48ff4c67cd2742625220233b1e8a903527ffad065de73cedccc"),
}

PRESETS = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def test_every_shipped_preset_is_pinned():
    assert sorted(PINNED) == PRESETS


@pytest.fixture(scope="module")
def signal_file(tmp_path_factory):
    x = pinned_signal()
    path = tmp_path_factory.mktemp("pinned") / "in.wav"
    sf.write(str(path), x, RATE, subtype="FLOAT")
    assert np.array_equal(sf.read(str(path))[0], x)
    return x, path


@pytest.mark.parametrize("preset", PRESETS)
def test_shipped_preset_output_is_unchanged(preset, signal_file, tmp_path, capsys):
    x, path = signal_file
    chained = digest(Chain.from_preset(preset)(x, RATE))
    out = tmp_path / "out.wav"
    assert main(["render", preset, str(path), str(out)]) == 0, capsys.readouterr().err
    rendered = digest(sf.read(str(out), dtype="float64")[0])
    assert (chained, rendered) == PINNED.get(preset), f"{preset!r}: ({chained!r}, {rendered!r}),"
