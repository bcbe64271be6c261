"""Verdict's desktop window (PySide6): a view over the engine, which never imports Qt."""
