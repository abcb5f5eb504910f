"""rtq's modules import one another without a circle, and the public API is small.

The import graph is read statically (with ``ast``), imports inside functions included:
an import moved into a function to dodge a circle is still a circle.  An edge goes to the
module an import names (``from .stages import walk`` -> ``rtq.stages``; ``from . import
base`` -> ``rtq.base`` when that is a module).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rtq"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            else:
                continue
            graph[name].update(target for target in targets if target in modules and target != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_is_read():
    graph = import_graph()
    assert {"rtq.processor", "rtq.stages.base"} <= graph["rtq.stages.oversample"]
    assert "rtq.stages" in graph["rtq.chain"] and "rtq.presets" in graph["rtq.chain"]


def test_no_import_circle_in_rtq():
    """chain, processor and stages imported one another (held together by imports inside
    functions); plot and report did too."""
    assert cycles(import_graph()) == []


def test_a_circle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=PACKAGE.parent, timeout=120).stdout.strip()


def test_the_public_api():
    """``from rtq import ...`` gives the API users need, without loading the live engine
    (which initialises PortAudio) or Numba until a name is used."""
    loaded = run_python(
        "import sys, rtq\n"
        "print(sorted(m for m in ('rtq.live.session', 'rtq.live.portaudio', 'numba', 'rtq.chain') if m in sys.modules))\n"
        "from rtq import Chain, Gain, Requantize, Quantize, Oversample, load_preset, RtqError\n"
        "print('rtq.live.session' in sys.modules, 'rtq.live.portaudio' in sys.modules)\n"
        "print(Chain.__module__, Requantize.__module__, load_preset.__module__, RtqError.__module__)\n"
        "print(sorted(rtq.__all__))")
    lines = loaded.splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "False False"
    assert lines[2] == "rtq.chain rtq.stages.requantize rtq.presets rtq.errors"
    assert lines[3] == str(sorted(["Chain", "Gain", "Requantize", "Quantize", "BlockCompand", "Oversample", "Lowpass",
                                   "LiveSession",
                                   "Source", "load_preset", "RtqError", "listen", "batch"]))


@pytest.mark.audio
def test_live_session_is_loaded_when_asked_for():
    assert run_python("from rtq import LiveSession; print(LiveSession.__module__)") == "rtq.live.session"


def test_an_unknown_name_is_an_attribute_error():
    import rtq

    with pytest.raises(AttributeError, match="module 'rtq' has no attribute 'Chian'"):
        rtq.Chian
