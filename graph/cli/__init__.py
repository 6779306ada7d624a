"""The `phigate` command: `main` (graph/cli/main.py) and one module per command group."""

from graph.cli.main import main

__all__ = ["main"]
