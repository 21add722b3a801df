"""The ``pytexsynth`` command (also ``python -m pytexsynth``).

One module per command group, each adding its commands to the sub-parsers with one function:
:mod:`~pytexsynth.cli.synthesis` (texture, demo), :mod:`~pytexsynth.cli.stylize` (stylize, all
methods), :mod:`~pytexsynth.cli.networks` (train-texture, train-stylizer, generate,
train-inverse); ``info`` is here. :mod:`~pytexsynth.cli.common` holds the shared options and the
error policy that :func:`main` applies: one line ``pytexsynth: error: ...`` and exit status 1
for a failure, the command's usage and exit status 2 for options that do not go together (as
argparse does for its own errors), 130 for Ctrl-C; ``pytexsynth --debug COMMAND ...`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Tuple

from .common import USER_ERRORS, CLIError, UsageError, apply_threads, default_threads
from .distributed import process_group
from .networks import add_network_commands
from .stylize import add_stylize_command
from .synthesis import add_synthesis_commands, demo_inputs

__all__ = ["main", "build_parser", "demo_inputs", "default_threads", "apply_threads", "CLIError"]


def _cmd_info(args: argparse.Namespace) -> int:
    from .._info import format_info, info

    print(format_info(info()))
    return 0


def _parser_and_commands() -> Tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="pytexsynth", description="Neural texture synthesis and style transfer.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (before the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="versions, compiled kernels, devices and VGG weights").set_defaults(func=_cmd_info)
    add_stylize_command(sub)
    add_synthesis_commands(sub)
    add_network_commands(sub)
    return parser, sub.choices


def build_parser() -> argparse.ArgumentParser:
    """The ``pytexsynth`` argument parser with every command."""
    return _parser_and_commands()[0]


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line ``argv`` (default sys.argv[1:]); returns the exit status."""
    parser, commands = _parser_and_commands()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        apply_threads(args)
        with process_group(args):
            return args.func(args)
    except UsageError as exc:
        if args.debug:
            raise
        commands[args.command].error(str(exc))  # prints the command's usage; exits with status 2
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"pytexsynth: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("pytexsynth: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug or an environment failure: one line, the traceback on --debug
        if args.debug:
            raise
        print(f"pytexsynth: error: {type(exc).__name__}: {exc} (unexpected: `pytexsynth --debug {args.command} ...` "
              "shows the traceback; please report it)", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
