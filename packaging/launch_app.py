"""Frozen entry point of the window (`Verdict`): the same as `python -m app`."""
import sys

from app.main import main

sys.exit(main())
