"""The ``hvkit`` command.

Exit codes: 0 success; 1 other error; 2 invalid input; 3 not found; 4 state, conflict or name taken;
5 unsupported by the backend, or its SDK is not installed; 6 connection or authentication; 7 timeout;
8 a migration plan has problems (nothing was changed); 130 interrupted.
Errors print one line (``--debug`` shows the traceback); every command shares that one error path.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from . import demo, inventory, vm
from ._common import report_error

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    # Global options work before or after the command. The copy given to sub-commands defaults to
    # SUPPRESS, so a sub-command's parser never overwrites a value given before it.
    common = _global_options(argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS))
    parser = _global_options(argparse.ArgumentParser(prog="hvkit", description="One API over every hypervisor."))
    parser.add_argument("--version", action="version", version=f"hvkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    vm.register(sub, common)
    inventory.register(sub, common)
    demo.register(sub, common)
    _register_optional(sub, common)
    return parser


def _register_optional(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Commands of the fleet and migration packages."""
    from . import fleet, image, migrate, replicate

    migrate.register(sub)
    replicate.register(sub)
    fleet.register(sub)
    image.register(sub, common)


def _global_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--url", help="hypervisor URL (default: $HVKIT_URL, else the built-in sim://)")
    parser.add_argument("--profile", help="a profile from the config file ($HVKIT_CONFIG)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.func(args)
        return code
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as exc:
        return report_error(exc)
    except Exception as exc:  # HvkitError, a missing SDK (ImportError), a bug: one line each
        if args.debug:
            raise
        return report_error(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
