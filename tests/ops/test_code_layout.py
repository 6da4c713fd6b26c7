"""The code's shape: names say what the code does (the seed documents' numbers stay in
docs, tests and the API contract), registry/ and events/ modules stay small, the
events floors do not import each other both ways, and the Celery task names that
queued messages and the beat carry still resolve."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("core", "config_hub", "tenants", "flags", "registry", "events", "releases", "changes")
SEED_NUMBER = re.compile(r"seed[ _-]?00\d", re.IGNORECASE)
MAX_LINES = 400
# A longer module says why at its top (in its docstring), with these words.
LONG_REASON = "Why this module is long:"


def _production_modules(*apps: str) -> list[Path]:
    return sorted(p for app in apps if (ROOT / app).is_dir()
                  for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts)


def test_production_code__mentions_no_seed_number():
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in _production_modules(*APPS)
             for n, line in enumerate(p.read_text().splitlines(), 1) if SEED_NUMBER.search(line)]

    assert found == []


def test_production_code__no_class_or_function_named_after_a_seed():
    named = [f"{p.relative_to(ROOT)}: {node.name}"
             for p in _production_modules(*APPS)
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name.lower().lstrip("_").startswith("seed")]

    assert named == []


def test_application_modules__at_most_400_lines_or_say_why():
    too_long = [f"{p.relative_to(ROOT)}: {len(p.read_text().splitlines())} lines"
                for p in _production_modules(*APPS)
                if len(p.read_text().splitlines()) > MAX_LINES
                and LONG_REASON not in (ast.get_docstring(ast.parse(p.read_text())) or "")]

    assert too_long == []


def _imported_modules(path: Path, package: str) -> set[str]:
    """Every module a file imports, anywhere in it (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package}.{base}" if base else package
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_events_dispatch__imports_no_task_module():
    imported = _imported_modules(ROOT / "events" / "dispatch.py", "events")

    assert "events.tasks" not in imported


def test_celery_task_names__unchanged_and_registered():
    from config_hub.celery import app

    app.loader.import_default_modules()
    expected = {
        "registry.sweep": "registry.tasks", "registry.active_checks": "registry.tasks",
        "registry.heartbeat_flush": "registry.tasks", "events.dispatch": "events.tasks",
        "events.deliver": "events.tasks", "events.outbox_sweep": "events.tasks",
        "events.dispatch_batch": "events.tasks", "events.deliver_batch": "events.tasks",
    }

    assert {name: app.tasks[name].__module__ for name in expected if name in app.tasks} == expected


# --- the import contract (.importlinter) ------------------------------------------------


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=tree, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    """The packages and the contract, copied: a test may break them there."""
    tree = tmp_path_factory.mktemp("tree")
    for app in APPS:
        shutil.copytree(ROOT / app, tree / app, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    return tree


def test_import_contract__the_tree_as_it_is__kept(tree_copy):
    result = _lint_imports(tree_copy)

    assert result.returncode == 0, result.stdout
    assert "Contracts: 3 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("core/errors.py", "import tenants.models", "core imports no app of the project BROKEN"),
    ("registry/sweep.py", "from flags import models", "all on core BROKEN"),  # registry and flags are independent
    ("events/services.py", "from tenants import selectors", "all on core BROKEN"),  # events sits below tenants
    ("core/api/renderers.py", "from core.api import lean", "No import cycle between the modules of an app BROKEN"),
])
def test_import_contract__an_import_added_on_purpose__fails_the_check(tree_copy, module, line, broken):
    path = tree_copy / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # added by the test\n")
    try:
        result = _lint_imports(tree_copy)
    finally:
        path.write_text(original)

    assert result.returncode != 0
    assert broken in result.stdout.replace("\n", " ")
