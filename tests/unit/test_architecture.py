"""The architecture, read from the source with `ast` (nothing here imports the modules it checks).

* The domain package `llmproxy/` imports no framework (flask, celery, kombu) and neither process (web, worker),
  except kombu in llmproxy/jobs/broker.py: the Redis transport both processes' Celery apps use.
* `web` and `worker` never import each other.
* The modules of `web/` import each other without a cycle.
* No source file of llmproxy/, web/ or worker/ is longer than 300 lines.

An import is any `import`/`from … import` statement, at module level, inside a function or under
`if TYPE_CHECKING:`, and any `importlib.import_module("…")`/`__import__("…")` with a literal name.
A module name inside some other string (a subprocess command line, say) is not an import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 300
FRAMEWORKS = {"flask", "celery", "kombu"}


@dataclass(frozen=True)
class Import:
    """One import in a source file: the module it names and, for `from module import a, b`, the names."""

    line: int
    module: str
    names: tuple[str, ...] = ()


def module_name(path: Path, root: Path = ROOT) -> str:
    """`web/openai_api/chat.py` → `web.openai_api.chat`; a package's `__init__.py` → the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_files(top: str, root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / top).rglob("*.py") if "__pycache__" not in p.parts)


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def imports_of(path: Path, name: str) -> list[Import]:
    """Every import in the file of module `name`, relative ones resolved to absolute module names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: max(0, package.count(".") + 1 - (node.level - 1))]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(Import(node.lineno, base, tuple(alias.name for alias in node.names)))
        elif (
            isinstance(node, ast.Call)
            and _is_dynamic_import(node.func)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Import(node.lineno, node.args[0].value))
    return found


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def offences(top: str, forbidden: set[str], root: Path = ROOT) -> list[str]:
    """`path:line imports module` for every import under `top/` of a package in `forbidden`."""
    return [
        f"{path.relative_to(root)}:{imp.line} imports {imp.module}"
        for path in python_files(top, root)
        for imp in imports_of(path, module_name(path, root))
        if _top(imp.module) in forbidden
    ]


def import_graph(top: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Module → the modules of the same top package it imports (`from web import x` is web.x when x is a module)."""
    modules = {module_name(path, root): path for path in python_files(top, root)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for imp in imports_of(path, name):
            submodules = {f"{imp.module}.{n}" for n in imp.names} & modules.keys()
            targets |= submodules
            if imp.module in modules and (not imp.names or len(submodules) < len(imp.names)):
                targets.add(imp.module)  # the module itself, for the names that are not submodules
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path a → … → a) through each group of modules that import each other."""
    found: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _describe(items: Iterable[str]) -> str:
    return "\n  " + "\n  ".join(items)


# -- the rules ---------------------------------------------------------------------------


# The one exception: kombu's Redis transport subclass, which web and worker share (see its docstring).
KOMBU_TRANSPORT = "llmproxy/jobs/broker.py"


def test_the_domain_package_imports_no_framework_and_neither_process():
    found = [
        offence
        for offence in offences("llmproxy", FRAMEWORKS | {"web", "worker"})
        if not (offence.startswith(KOMBU_TRANSPORT + ":") and offence.split(" imports ")[1].startswith("kombu"))
    ]
    assert not found, "llmproxy/ must not depend on Flask, Celery or the processes:" + _describe(found)


def test_web_and_worker_never_import_each_other():
    found = offences("web", {"worker"}) + offences("worker", {"web"})
    assert not found, "web/ and worker/ must stay independent:" + _describe(found)


def test_the_web_modules_import_each_other_without_a_cycle():
    graph = import_graph("web")
    assert "web" in graph and len(graph) > 5  # the scan found the package
    found = cycles(graph)
    assert not found, "import cycles among the web modules:" + _describe(" → ".join(c) for c in found)


def feature_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded to the domain's features (`llmproxy.jobs.store` → `llmproxy.jobs`)."""
    folded: dict[str, set[str]] = {}
    for module, targets in graph.items():
        feature = ".".join(module.split(".")[:2])
        folded.setdefault(feature, set()).update(".".join(t.split(".")[:2]) for t in targets)
    return {feature: targets - {feature} for feature, targets in folded.items()}


def test_the_domain_modules_and_features_depend_on_each_other_one_way():
    graph = import_graph("llmproxy")
    assert "llmproxy.jobs.execution" in graph  # the scan found the package
    found = cycles(graph) + cycles(feature_graph(graph))
    assert not found, "import cycles in llmproxy/ (modules, or features such as jobs ↔ ops):" + _describe(
        " → ".join(c) for c in found
    )


def test_no_source_file_is_longer_than_300_lines():
    long = [
        f"{path.relative_to(ROOT)}: {count} lines"
        for top in ("llmproxy", "web", "worker")
        for path in python_files(top)
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not long, f"files longer than {MAX_LINES} lines (split them by responsibility):" + _describe(long)


# -- the scanner finds what it must (so the rules above cannot pass by seeing nothing) ----------


def test_the_scanner_sees_imports_anywhere_and_only_imports(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/top.py": "import flask.json\n",
            "pkg/inner.py": "def f():\n    from celery import Celery\n    return Celery\n",
            "pkg/typing_only.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kombu\n",
            "pkg/dynamic.py": "import importlib\nmod = importlib.import_module('web.app')\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/rel.py": "from .. import top\nfrom ..top import flask\n",
            "pkg/strings.py": "CMD = ['celery', '-A', 'worker.main', 'worker']\nAPP = 'web:create_app()'\n",
        },
    )
    found = offences("pkg", FRAMEWORKS | {"web", "worker"}, tmp_path)
    assert found == [
        "pkg/dynamic.py:2 imports web.app",
        "pkg/inner.py:2 imports celery",
        "pkg/top.py:1 imports flask.json",
        "pkg/typing_only.py:3 imports kombu",
    ]
    # relative imports resolve inside the package: `flask` here is a name of pkg.top, not the framework
    assert imports_of(tmp_path / "pkg/sub/rel.py", "pkg.sub.rel") == [
        Import(1, "pkg", ("top",)),
        Import(2, "pkg.top", ("flask",)),
    ]


def test_the_graph_resolves_submodules_and_relative_imports_and_finds_cycles(tmp_path):
    _write(
        tmp_path,
        {
            "app/__init__.py": "from app import routes\n",
            "app/routes.py": "from app import services, VERSION\n",
            "app/services.py": "def f():\n    from .session import current\n",
            "app/session.py": "import app.services\n",
            "app/api/__init__.py": "",
            "app/api/chat.py": "from ..services import f\nfrom . import helpers\n",
            "app/api/helpers.py": "",
        },
    )
    graph = import_graph("app", tmp_path)
    assert graph == {
        "app": {"app.routes"},
        "app.routes": {"app", "app.services"},
        "app.services": {"app.session"},
        "app.session": {"app.services"},
        "app.api": set(),
        "app.api.chat": {"app.services", "app.api.helpers"},
        "app.api.helpers": set(),
    }
    assert cycles(graph) == [["app", "app.routes", "app"], ["app.services", "app.session", "app.services"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
