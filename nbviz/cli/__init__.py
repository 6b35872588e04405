"""Command line: `nbviz demo`, `nbviz info RUN`, `nbviz export RUN ...`.

stdout carries only results (what was written, the run's description); progress bars and errors
go to stderr, bars only when it is a terminal. Exit codes: 0 done, 1 a bad or unreadable file or
a request the run cannot answer (the message says why and what would work), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys

from . import demo, export, info

COMMANDS = {"demo": demo, "info": info, "export": export}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="nbviz", description="See inside a PyTorch model: record, inspect and export runs."
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    command = COMMANDS[args.command]
    # Values argparse cannot check itself get its usage error too (exit 2), from the
    # subcommand's parser so that the usage shown is the subcommand's.
    command.check(args.parser, args)
    try:
        code: int = command.run(args)
        return code
    except (OSError, ValueError, KeyError, ImportError) as e:
        # Expected failures: a missing or damaged file, an unknown layer, ... Their messages are
        # written for the user; a traceback would bury them.
        print(f"nbviz {args.command}: error: {_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nbviz {args.command}: interrupted", file=sys.stderr)
        return 130


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    if isinstance(e, KeyError) and type(e) is KeyError and e.args:
        return str(e.args[0])  # a bare KeyError's str() quotes its message
    return str(e)
