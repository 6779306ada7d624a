"""domain/ is plain Python: no framework, no I/O library, nothing of ours above it."""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
FORBIDDEN = {
    "strawberry", "sqlalchemy", "starlette", "asyncpg", "alembic", "uvicorn", "httpx",
    "structlog", "graph", "resolvers", "db", "os", "socket", "subprocess", "requests",
}  # fmt: skip


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_domain_imports_no_framework_or_io() -> None:
    modules = sorted(DOMAIN.glob("*.py"))
    assert modules, "domain/ has no modules"
    offenders = {path.name: imported_roots(path) & FORBIDDEN for path in modules}
    assert {name: bad for name, bad in offenders.items() if bad} == {}
