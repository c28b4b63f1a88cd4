"""The ``one2345`` command line: one module per command, registered the same way.

Every command exits non-zero with the whole reason and no traceback: 2 for bad input,
configuration or weights (what to fix is in the message), 1 for an internal error (set
ONE2345_DEBUG=1 for the traceback). Commands that write a result folder also write its
result.json with ``ok: false`` on failure.
"""

from __future__ import annotations

import argparse
import sys

from . import bag, convert, demo, elevation, reconstruct, reconstruct_views, ros_demo
from .common import EXIT_BAD_INPUT, EXIT_INTERNAL, debug, error_message

COMMANDS = (demo, ros_demo, reconstruct, reconstruct_views, elevation, bag, convert)
"""Each exposes ``add_parser(subparsers)``; the parser's ``func`` runs it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="one2345", description="One-2-3-45 single-image 3D reconstruction")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("one2345: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError) as exc:
        # InputError, ConfigError, DeviceError and the weight loaders' errors are ValueErrors
        # whose message names the problem and what to do.
        if debug():
            raise
        print(f"one2345 {args.command}: error: {error_message(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if debug():
            raise
        print(f"one2345 {args.command}: internal error: {type(exc).__name__}: {error_message(exc)} "
              "(ONE2345_DEBUG=1 shows the traceback)", file=sys.stderr)  # fmt: skip
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
