"""The layering rules of docs/DESIGN.md ("Layers"), checked on the source with `ast`.

- gridctl/core/ imports only gridctl.core and the standard library (no numpy, ccxt, peewee);
- gridctl/sim/ imports only gridctl.core (plus the standard library and numpy);
- gridctl.worker and gridctl.control never import gridctl.supervisor;
- no import cycle among gridctl modules;
- every gridctl module imports on its own in a fresh interpreter.

What counts as an import edge, and why:
- module-level *and* function-local imports count: a circle hidden inside a
  function is still a circle, it only fails later (at call time);
- imports under ``if TYPE_CHECKING:`` do not count: they never run, so they
  cannot half-initialise a module; they only let annotations name a type;
- importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``, so those are
  edges too, except for the importer's own ancestor packages (a submodule always
  runs after its package started initialising; that alone is not a circle);
- ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, and
  to ``pkg`` itself otherwise (the name is defined in pkg's ``__init__``) — even
  when pkg is the importer's own package: needing a name from a package whose
  ``__init__`` imports you back is a circle that only works by statement order.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent / "gridctl"
STDLIB = set(sys.stdlib_module_names)


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every import that can run, at any depth."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, []
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"line {node.lineno}: use absolute imports"
            yield node.lineno, node.module or "", [a.name for a in node.names]
        stack.extend(ast.iter_child_nodes(node))


def _ancestors(mod: str) -> list[str]:
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _targets(importer: str, module: str, names: list[str]) -> set[str]:
    """The gridctl modules whose code runs (or must have run) for this import."""
    mods: set[str] = set()
    explicit: set[str] = set()  # modules whose own names are imported
    for n in names:
        if f"{module}.{n}" in MODULES:
            mods.add(f"{module}.{n}")
        elif module in MODULES:
            explicit.add(module)
    if not names and module in MODULES:
        mods.add(module)
    for m in mods | explicit:
        mods.update(a for a in _ancestors(m) if a in MODULES)
    skip = set(_ancestors(importer)) | {importer}
    return {m for m in mods if m not in skip} | (explicit - {importer})


def _graph() -> tuple[dict[str, dict[str, int]], dict[str, list[tuple[int, str]]]]:
    """gridctl module → {gridctl module: line}, and module → [(line, external top-level package)]."""
    edges: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    external: dict[str, list[tuple[int, str]]] = {m: [] for m in MODULES}
    for mod, path in MODULES.items():
        for line, module, names in _imports(ast.parse(path.read_text(), str(path))):
            if module == "gridctl" or module.startswith("gridctl."):
                for t in _targets(mod, module, names):
                    edges[mod].setdefault(t, line)
            elif module != "__future__":
                external[mod].append((line, module.split(".")[0]))
    return edges, external


EDGES, EXTERNAL = _graph()


def _in(mod: str, pkg: str) -> bool:
    return mod == pkg or mod.startswith(pkg + ".")


def test_the_graph_sees_the_modules():
    assert "gridctl.core.engine" in MODULES and "gridctl.process.exits" in MODULES
    assert "gridctl.core.grid" in EDGES["gridctl.core.engine"]


def test_core_imports_only_core_and_stdlib():
    bad = [f"{m}: gridctl module {t} (line {ln})" for m in MODULES if _in(m, "gridctl.core")
           for t, ln in EDGES[m].items() if not _in(t, "gridctl.core")]
    bad += [f"{m}: {pkg} (line {ln})" for m in MODULES if _in(m, "gridctl.core")
            for ln, pkg in EXTERNAL[m] if pkg not in STDLIB]
    assert not bad, "gridctl/core must stay pure:\n" + "\n".join(bad)


def test_sim_imports_only_core():
    bad = [f"{m}: {t} (line {ln})" for m in MODULES if _in(m, "gridctl.sim")
           for t, ln in EDGES[m].items() if not (_in(t, "gridctl.core") or _in(t, "gridctl.sim"))]
    bad += [f"{m}: {pkg} (line {ln})" for m in MODULES if _in(m, "gridctl.sim")
            for ln, pkg in EXTERNAL[m] if pkg not in STDLIB and pkg != "numpy"]
    assert not bad, "gridctl/sim may import only gridctl.core, the stdlib and numpy:\n" + "\n".join(bad)


def test_worker_and_control_do_not_import_the_supervisor():
    bad = [f"{m}: {t} (line {ln})" for m in MODULES if _in(m, "gridctl.worker") or _in(m, "gridctl.control")
           for t, ln in EDGES[m].items() if _in(t, "gridctl.supervisor")]
    assert not bad, "process-wide pieces belong in gridctl.process:\n" + "\n".join(bad)


def _cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(edges[w])))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = _cycles(EDGES)
    lines = []
    for comp in found:
        lines.append(" <-> ".join(comp))
        lines += [f"    {a} -> {b} (line {EDGES[a][b]})" for a in comp for b in EDGES[a] if b in comp]
    assert not found, "import cycles among gridctl modules:\n" + "\n".join(lines)


def test_every_module_imports_on_its_own():
    """One fresh interpreter imports each module after forgetting every gridctl module loaded before."""
    script = (
        "import importlib, sys, traceback\n"
        "bad = []\n"
        f"for name in {sorted(m for m in MODULES if not m.endswith('__main__'))!r}:\n"
        "    for m in [m for m in sys.modules if m == 'gridctl' or m.startswith('gridctl.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        bad.append(name + ':\\n' + traceback.format_exc(limit=-3))\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                       cwd=ROOT.parent)
    assert r.returncode == 0, r.stdout + r.stderr


def test_missing_shared_data_skips_locally_and_fails_under_ci(tmp_path):
    """tests/shared_data.require: a CI run must not pass by skipping its real-data tests."""
    test = tmp_path / "test_needs.py"
    test.write_text("from pathlib import Path\nfrom shared_data import require\n\n"
                    "def test_x():\n    require(Path('/nonexistent/gridctl-data.csv'))\n")
    tests_dir = Path(__file__).resolve().parent
    base = {k: v for k, v in os.environ.items() if k != "CI"}
    base["PYTHONPATH"] = str(tests_dir)
    run = lambda env: subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],  # noqa: E731
                                     capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    local = run(base)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout
    ci = run({**base, "CI": "true"})
    assert ci.returncode == 1 and "shared data missing" in ci.stdout, ci.stdout
