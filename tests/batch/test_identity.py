"""Job seeds follow the documented formula (SHA-256, first 8 bytes big-endian) and
nothing else; the preset's hash covers what changes samples, not its description."""
from __future__ import annotations

import dataclasses
import hashlib

from rtq.batch.identity import canonical_preset, derive_seed, file_sha256, preset_sha256
from rtq.presets import load_preset, parse_preset


def test_seed_is_the_documented_sha256_formula():
    # Written out from the README's words, not from the code.
    material = b"rtq-batch-seed-1\n" + b"7\n" + b"cd-16-shibata\n" + b"sub/take 1.wav"
    expected = int.from_bytes(hashlib.sha256(material).digest()[:8], "big")
    assert derive_seed(7, "cd-16-shibata", "sub/take 1.wav") == expected
    assert 0 <= expected < 2 ** 64


def test_every_part_of_the_job_changes_the_seed():
    seeds = {derive_seed(base, preset, path) for base in (0, 1, 2 ** 64 - 1)
             for preset in ("tpdf-16", "cd-16-shibata") for path in ("a.wav", "b.wav", "x/a.wav")}
    assert len(seeds) == 18


def test_non_utf8_file_names_hash_as_their_bytes():
    name = b"caf\xe9.wav".decode("utf-8", "surrogateescape")
    material = b"rtq-batch-seed-1\n0\np\ncaf\xe9.wav"
    assert derive_seed(0, "p", name) == int.from_bytes(hashlib.sha256(material).digest()[:8], "big")


def test_preset_hash_ignores_the_description_only():
    spec = load_preset("cd-16-shibata")
    assert preset_sha256(dataclasses.replace(spec, description="other words")) == preset_sha256(spec)
    assert preset_sha256(dataclasses.replace(spec, seed=99)) != preset_sha256(spec)
    changed = parse_preset("name: cd-16-shibata\nchain:\n  - requantize: {bits: 16, shaping: shibata}\n", "x.yaml")
    assert preset_sha256(changed) != preset_sha256(spec)
    assert canonical_preset(spec).startswith(b'{"chain":[')


def test_file_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 100000)
    assert file_sha256(path) == hashlib.sha256(b"abc" * 100000).hexdigest()
