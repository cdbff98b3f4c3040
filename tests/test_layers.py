"""The layers of docs/ARCHITECTURE.md ("Layers"), enforced by reading every module's imports (an AST scan: no module
is imported, so nothing runs):

- vitspec.spec imports no other vitspec package;
- vitspec.reference imports only vitspec.spec;
- vitspec.impl imports only vitspec.spec (never the reference: it writes its own formulas);
- the suite (vitspec.tests) imports spec, reference and impl; only the files that test the tool import the tool,
  and the plugin imports no tool module, not even through the suite's own helpers;
- the tool imports anything; nothing below imports it;
- no import cycles between packages.

Every import statement counts, also those inside functions. Each rule is its own test, and a failure lists the
offending imports as file:line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the checkout, or the installed vitspec package's folder
SUITE = Path(__file__).resolve().parent
LAYERS = ("spec", "reference", "impl", "suite", "tool")
SUBPACKAGES = {"spec": "spec", "reference": "reference", "impl": "impl", "tests": "suite"}
ALLOWED = {
    "spec": {"spec"},
    "reference": {"spec", "reference"},
    "impl": {"spec", "impl"},
    "suite": {"spec", "reference", "impl", "suite"},
    "tool": set(LAYERS),
}
# the suite's files that test the tool, and so may import it (report: the verify runner those tests share)
TOOL_TESTS = {
    "report",
    "test_cli",
    "test_cli_arguments",
    "test_mutants",
    "test_specmd",
    "test_plot",
    "test_ports",
    "test_adapter_tour",
    "test_upstream_hf",
    "test_invariants_catalogue",
    "test_verify",
    "test_adapter_hf",
    "test_adapter_mlx_vlm",
    "test_adapter_vllm",
    "test_adapter_llama_cpp",
    # children/: the planted ports and the module-loading probe the adapter tests run in child processes
    "planted_hf_port",
    "planted_hf4_port",
    "hf_release_layout",
    "mlx_video_layout",
    "mlx_qwen2_vl_segments",
    "planted_mlx_port",
    "mlx_loaded_modules",
}


def source_folders() -> dict[str, Path]:
    """{layer: folder} in this layout: the checkout's top-level folders, or the installed package's subpackages."""
    if (ROOT / "pyproject.toml").is_file():  # a checkout: spec/, reference/, impl/, tests/ beside vitspec/
        return {
            "spec": ROOT / "spec",
            "reference": ROOT / "reference",
            "impl": ROOT / "impl",
            "suite": SUITE,
            "tool": ROOT / "vitspec",
        }
    return {"spec": ROOT / "spec", "reference": ROOT / "reference", "impl": ROOT / "impl", "suite": SUITE, "tool": ROOT}


def modules() -> list[tuple[str, str, Path]]:
    """(layer, dotted module name, path) of every module of the five layers."""
    folders = source_folders()
    prefix = {
        "spec": "vitspec.spec",
        "reference": "vitspec.reference",
        "impl": "vitspec.impl",
        "suite": "vitspec.tests",
        "tool": "vitspec",
    }
    inner = {p.resolve() for layer, p in folders.items() if layer != "tool"}
    out = []
    for layer, folder in folders.items():
        for path in sorted(folder.rglob("*.py")):
            if layer == "tool" and any(parent.resolve() in inner for parent in path.parents):
                continue  # the subpackages' own files when the tool's folder holds them (an installed package)
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out.append((layer, ".".join([prefix[layer], *parts]), path))
    return out


def layer_of(name: str) -> str | None:
    """The layer a module name belongs to (None: not vitspec, or the bare vitspec package itself)."""
    parts = name.split(".")
    if parts[0] in ("spec", "reference", "impl"):  # the layout's old top-level names
        return SUBPACKAGES[parts[0]]
    if parts[0] != "vitspec" or len(parts) == 1:
        return None
    return SUBPACKAGES.get(parts[1], "tool")


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module name) of every import in `source`; relative imports resolved against `module`;
    ``from vitspec import reference`` counts as vitspec.reference."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out.append((node.lineno, base))  # and each name, which may be a submodule
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return out


def violations(layer: str, module: str, path, source: str, is_package: bool = False) -> list[str]:
    """The imports of one module that break its layer's rule, as 'path:line: imports name (layer)'."""
    bad, seen = [], set()
    for line, name in imports(source, module, is_package):
        target = layer_of(name)
        if target is None or target in ALLOWED[layer] or (line, target) in seen:
            continue
        if layer == "suite" and target == "tool" and Path(path).stem in TOOL_TESTS:
            continue
        seen.add((line, target))  # one line per import statement
        bad.append(f"{path}:{line}: imports {name} ({target})")
    return bad


def scan() -> dict[str, list[str]]:
    """{layer: violations} over every module."""
    out: dict[str, list[str]] = {layer: [] for layer in LAYERS}
    for layer, module, path in modules():
        out[layer] += violations(layer, module, path.relative_to(ROOT), path.read_text(), path.name == "__init__.py")
    return out


def package_of(name: str, known: dict) -> str | None:
    """The package of the vitspec module `name` names (a module, or a name inside one): vitspec.spec, ...,
    vitspec.tests, vitspec (the tool's own modules), vitspec.adapters, vitspec.mutants. vitspec.tests.children (the
    modules the suite's tests run in child processes) counts as vitspec.tests: they are the suite's own files."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    if not name:
        return None
    path = known[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return "vitspec.tests" if package == "vitspec.tests.children" else package


def edges() -> dict[tuple[str, str], list[str]]:
    """{(package, imported package): [where]} between different packages. The tool tests' imports of the tool are
    left out: they stand above the tool (they test it), as the tool stands above the suite it runs."""
    known = {module: path for _, module, path in modules()}
    out: dict = {}
    for layer, module, path in modules():
        mine = package_of(module, known)
        for line, name in imports(path.read_text(), module, path.name == "__init__.py"):
            theirs = package_of(name, known)
            if theirs is None or theirs == mine or theirs == "vitspec" and name == "vitspec":
                continue
            if layer == "suite" and layer_of(name) == "tool" and path.stem in TOOL_TESTS:
                continue
            out.setdefault((mine, theirs), []).append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
    return out


def cycles(graph: dict[tuple[str, str], list]) -> list[list[str]]:
    """Cycles of the layer graph, each as [a, b, ..., a] (each found once, from its smallest member)."""
    succ: dict[str, set] = {}
    for a, b in graph:
        succ.setdefault(a, set()).add(b)
    found = []

    def walk(start, node, path):
        for nxt in sorted(succ.get(node, ())):
            if nxt == start:
                found.append(path + [start])
            elif nxt not in path and nxt > start:
                walk(start, nxt, path + [nxt])

    for start in sorted(succ):
        walk(start, start, [start])
    return found


def closure(start: str) -> dict[str, str]:
    """{module: the module that imports it} of the vitspec modules `start` imports, directly or not."""
    known = {module: path for _, module, path in modules()}
    seen, todo = {start: ""}, [start]
    while todo:
        module = todo.pop()
        path = known.get(module)
        if path is None:
            continue
        for _, name in imports(path.read_text(), module, path.name == "__init__.py"):
            if name in known and name not in seen:
                seen[name] = module
                todo.append(name)
    return seen


@pytest.mark.parametrize("layer", ["spec", "reference", "impl", "suite"])
def test_layer_imports_only_what_it_may(layer):
    """spec: nothing above; reference: spec; impl: spec (never the reference); suite: not the tool, except its
    tool tests."""
    found = scan()[layer]
    assert not found, f"{layer} may import only {sorted(ALLOWED[layer])}:\n" + "\n".join(found)


def test_the_plugin_reaches_no_tool_module():
    """The plugin and everything it imports from vitspec, followed module by module: no tool module."""
    reached = closure("vitspec.tests.plugin")
    tool = [f"{m} (imported by {reached[m]})" for m in reached if layer_of(m) == "tool"]
    assert "vitspec.tests.checks" in reached, sorted(reached)  # the walk follows the suite's helpers
    assert not tool, "the plugin reaches tool modules: " + ", ".join(tool)


def test_no_cycles_between_packages():
    graph = edges()
    assert ("vitspec.tests", "vitspec.reference") in graph and ("vitspec", "vitspec.tests") in graph, sorted(graph)
    found = cycles(graph)
    assert not found, "import cycles between packages: " + "; ".join(
        " -> ".join(c) + " (" + "; ".join(graph[(a, b)][0] for a, b in zip(c, c[1:])) + ")" for c in found
    )


def test_every_layer_is_scanned():
    found = {layer: [m for lay, m, _ in modules() if lay == layer] for layer in LAYERS}
    assert all(found.values()), {k: len(v) for k, v in found.items()}
    for name in (
        "vitspec.spec.protocol",
        "vitspec.reference.rope",
        "vitspec.impl.tower",
        "vitspec.tests.plugin",
        "vitspec.verify",
        "vitspec.cli",
    ):
        assert name in {m for ms in found.values() for m in ms}, name


# --- negative controls: planted module texts ------------------------------------------------------------------

PLANTED = {
    "spec": (
        "vitspec.spec.planted",
        "import numpy\nfrom vitspec.reference.rope import inv_freq\n",
        "imports vitspec.reference.rope (reference)",
    ),
    "reference": ("vitspec.reference.planted", "from ..impl import rope\n", "imports vitspec.impl (impl)"),
    "impl": (
        "vitspec.impl.planted",
        "def f():\n    from vitspec import reference\n",
        "imports vitspec.reference (reference)",
    ),
    "suite": ("vitspec.tests.test_planted", "from vitspec.cli import main\n", "imports vitspec.cli (tool)"),
}


@pytest.mark.negative_control
@pytest.mark.parametrize("layer", sorted(PLANTED))
def test_planted_violation_is_reported(layer):
    module, source, expected = PLANTED[layer]
    path = module.replace(".", "/") + ".py"
    found = violations(layer, module, path, source)
    assert len(found) == 1 and found[0].endswith(expected), found
    allowed = "from vitspec.spec import configs\nimport numpy as np\n"
    assert violations(layer, module, path, allowed) == []


@pytest.mark.negative_control
def test_planted_tool_import_in_a_tool_test_is_allowed_and_elsewhere_not():
    source = "from vitspec.cli import main\n"
    assert violations("suite", "vitspec.tests.test_cli", "tests/test_cli.py", source) == []
    assert violations("suite", "vitspec.tests.plugin", "tests/plugin.py", source) != []


@pytest.mark.negative_control
def test_planted_cycle_is_reported():
    graph = {
        ("reference", "spec"): ["a"],
        ("impl", "reference"): ["b"],
        ("reference", "impl"): ["c"],
        ("tool", "impl"): ["d"],
        ("tool", "tool.mutants"): ["e"],
    }
    assert cycles(graph) == [["impl", "reference", "impl"]]
    del graph[("reference", "impl")]
    assert cycles(graph) == []
