"""Frozen entry point of the command line (`verdict`): the same as `python -m engine.cli`."""
import sys

from engine.cli import main

sys.exit(main())
