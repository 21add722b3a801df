"""The ``pytexsynth`` command's entry point, outside the ``pytexsynth`` package on purpose.

Importing ``pytexsynth`` imports torch (and numpy), which takes a second or two; a Ctrl-C in that
time ended in a traceback: KeyboardInterrupt, or an ImportError when it landed inside numpy's C
module initialisation. This module imports nothing heavy; it holds a Ctrl-C back until the
import is complete (a handler that only notes it) and then exits with ``pytexsynth: interrupted``
and status 130; later ones are handled by :func:`pytexsynth.cli.main`'s error policy.
"""

from __future__ import annotations

import signal
import sys

__all__ = ["main"]


def _import_cli():
    """:func:`pytexsynth.cli.main`, or None when Ctrl-C was pressed while importing it."""
    pressed = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    except ValueError:  # not the main thread: no handler to install
        previous = None
    try:
        from pytexsynth.cli import main as run
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return None if pressed else run


def main() -> int:
    """Imports and runs :func:`pytexsynth.cli.main`; a Ctrl-C at any moment is one line and 130."""
    try:
        run = _import_cli()
        if run is not None:
            return run()
    except KeyboardInterrupt:
        pass
    print("pytexsynth: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
