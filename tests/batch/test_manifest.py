"""The manifest: one JSON line per record, durable on return; the last record of an
output wins; a line a killed run left unfinished is cut before the next record."""
from __future__ import annotations

import json

from rtq.batch.manifest import ManifestWriter, read_records


def test_last_record_of_each_output_wins(tmp_path):
    path = tmp_path / "m.jsonl"
    with ManifestWriter(path) as manifest:
        manifest.append([{"output": "/o/a.wav", "status": "failed"}])
        manifest.append([{"output": "/o/b.wav", "status": "done"}, {"output": "/o/a.wav", "status": "done"}])
        manifest.append([])
    records = read_records(path)
    assert records == {"/o/a.wav": {"output": "/o/a.wav", "status": "done"},
                       "/o/b.wav": {"output": "/o/b.wav", "status": "done"}}
    assert path.read_text().count("\n") == 3


def test_an_unfinished_last_line_is_ignored_then_cut(tmp_path):
    path = tmp_path / "m.jsonl"
    good = json.dumps({"output": "/o/a.wav", "status": "done"}) + "\n"
    path.write_text(good + '{"output": "/o/b.wav", "sta')
    assert list(read_records(path)) == ["/o/a.wav"]
    with ManifestWriter(path) as manifest:
        manifest.append([{"output": "/o/c.wav", "status": "done"}])
    assert path.read_text() == good + '{"output":"/o/c.wav","status":"done"}\n'


def test_missing_manifest_reads_as_empty(tmp_path):
    assert read_records(tmp_path / "none.jsonl") == {}
