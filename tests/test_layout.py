"""The repository layout keeps the standard library's ``platform`` importable."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_platform_source_root_is_not_a_package():
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_import_platform_resolves_to_stdlib_with_repo_root_on_path():
    code = ("import sys; sys.path.insert(0, {root!r}); import platform, latentnas; "
            "print(platform.__file__); print(platform.python_version())").format(root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert not out[0].startswith(str(ROOT / "platform"))
    assert out[1] == ".".join(map(str, sys.version_info[:3]))


def test_packages_import_under_their_names():
    import encoders  # noqa: F401
    import latentnas
    import searchers  # noqa: F401

    assert pathlib.Path(latentnas.__file__).parent == ROOT / "platform" / "latentnas"


def _first_party_imports() -> dict[str, set[str]]:
    """Module -> first-party modules it imports, at module level or inside functions."""
    import ast

    roots = {"latentnas": ROOT / "platform" / "latentnas", "encoders": ROOT / "encoders",
             "searchers": ROOT / "searchers"}
    files = {}
    for package, folder in roots.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            files[".".join((package, *parts))] = path

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {resolve(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                edges |= {resolve(f"{node.module}.{a.name}") or resolve(node.module)
                          for a in node.names}
        graph[module] = edges - {None, module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_among_first_party_modules():
    graph = _first_party_imports()
    assert "latentnas.models" in graph["latentnas.benchmarks"]      # the graph is read
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_encoders_and_searchers_do_not_import_the_platform():
    graph = _first_party_imports()
    leaks = {m: sorted(d for d in deps if d.startswith("latentnas"))
             for m, deps in graph.items() if not m.startswith("latentnas")}
    assert {m: d for m, d in leaks.items() if d} == {}
