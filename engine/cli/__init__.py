"""Interfaces only: the `verdict` command line (`main`), its row formats (`output`) and
`verdict bench`. Everything it does goes through `engine.pipeline` and the engine's public API."""
from engine.cli.main import main

__all__ = ["main"]
