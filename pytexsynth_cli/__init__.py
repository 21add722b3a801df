"""The ``pytexsynth`` command's entry point, outside the ``pytexsynth`` package on purpose.

Importing ``pytexsynth`` imports torch, which takes a second or two; a Ctrl-C in that time used
to end in a KeyboardInterrupt traceback, because the command's error policy
(:func:`pytexsynth.cli.main`) was not running yet. This module imports nothing heavy, so the
interrupt is caught from the first instruction: ``pytexsynth: interrupted`` and exit status 130.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    """Imports and runs :func:`pytexsynth.cli.main`; a Ctrl-C at any moment is one line and 130."""
    try:
        from pytexsynth.cli import main as run

        return run()
    except KeyboardInterrupt:
        print("pytexsynth: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
