"""The package layout: the import-linter contracts hold; lazy imports say why they are lazy."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "a2d_evo"


def test_import_contracts_hold() -> None:
    """Layers (lower never import upper), ops free of env/net code, no cycles in any subpackage."""
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: install the dev extra (import-linter)")
    out = subprocess.run(
        [exe, "--config", str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert out.stdout.count("KEPT") >= 4 and "BROKEN" not in out.stdout


def _lazy_internal_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, import text, comment found) of package imports inside functions of ``path``."""
    lines = path.read_text().splitlines()
    found = []
    for fn in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if not any(n == "a2d_evo" or n.startswith("a2d_evo.") for n in names):
                continue
            line = lines[node.lineno - 1]
            # the reason sits on the line, or in a comment right above this block of imports
            i = node.lineno - 2
            while i >= 0 and lines[i].strip().startswith(("from ", "import ")):
                i -= 1
            above = lines[i].strip() if i >= 0 else ""
            comment = line.partition("#")[2] or (above[1:] if above.startswith("#") else "")
            found.append((node.lineno, line.strip(), comment.strip()))
    return found


def test_every_lazy_package_import_gives_its_reason() -> None:
    """STYLE: an import inside a function only to keep torch off a light path, and it says so."""
    silent = [
        f"{path.relative_to(REPO)}:{line}: {text}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text, comment in _lazy_internal_imports(path)
        if not comment
    ]
    assert not silent, "package imports inside functions without a reason:\n" + "\n".join(silent)


def test_the_lazy_import_check_sees_a_silent_import(tmp_path: Path) -> None:
    mod = tmp_path / "m.py"
    mod.write_text(
        "def f():\n    from a2d_evo.nets import cost\n\n"
        "def g():\n    # torch stays off --help\n    from a2d_evo.nets import agent\n"
        "    from a2d_evo.nets import space\n"
    )
    assert [(n, c) for n, _, c in _lazy_internal_imports(mod)] == [
        (2, ""),
        (6, "torch stays off --help"),
        (7, "torch stays off --help"),
    ]


def test_light_paths_never_import_torch() -> None:
    """The CLI's parser, the config, the formats, the statistics, a run folder's report data and
    the export's module (torch comes in only when an export runs) stay torch-free."""
    code = (
        "import sys\n"
        "import a2d_evo.cli.parser, a2d_evo.config, a2d_evo.formats, a2d_evo.stats\n"
        "import a2d_evo.report.run_data, a2d_evo.report.front_export\n"
        "import a2d_evo.nets.space\n"
        "a2d_evo.cli.parser.build_parser()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
