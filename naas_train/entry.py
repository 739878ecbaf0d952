"""The ``naas-train`` console script: thread defaults first (they must precede loading torch), then the CLI under
one top-level error handler.

Errors of the input or the environment (``ValueError``, ``OSError`` such as a missing file, a full disk or a
permission, and their subclasses) print one line ``naas-train: error: <message>`` on stderr and exit 2; any other
exception prints one line and a hint, and exits 1. Under several processes only global rank 0 prints; the other
ranks exit quietly with the same status. ``--debug`` (anywhere on the command line) or ``NAAS_DEBUG=1`` lets the
exception through with its traceback. Usage errors of the argument parsers (exit 2) and ``SystemExit`` (including
:class:`naas_train.preemption.Preempted`) pass unchanged.
"""

from __future__ import annotations

import os
import sys

from naas_train.threads import apply_thread_defaults

#: Command-line flag and environment variable that show the traceback instead of the one-line error.
DEBUG_FLAG = "--debug"
DEBUG_ENV = "NAAS_DEBUG"
#: Exit status of an error in the input or the environment (as argparse's usage errors).
EXIT_ERROR = 2
#: Exit status of any other exception (a bug: run with NAAS_DEBUG=1 for the traceback).
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
#: Exceptions whose message is the whole story: the input or the environment is at fault.
KNOWN_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def debug_requested(args: list[str]) -> bool:
    return DEBUG_FLAG in args or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def error_line(exc: BaseException) -> str:
    """``exc`` as one line: its first non-empty message line (a parser may append a whole config dump)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def report(exc: BaseException) -> int:
    """Print ``exc`` as one line on stderr (global rank 0 only) and return the exit status for it."""
    from naas_train.distributed import is_global_zero

    if isinstance(exc, KeyboardInterrupt):
        code, line = EXIT_INTERRUPTED, "interrupted"
    elif isinstance(exc, KNOWN_ERRORS):
        code, line = EXIT_ERROR, error_line(exc)
    else:
        code = EXIT_INTERNAL
        line = (f"{type(exc).__name__}: {error_line(exc)} (an internal error: run with {DEBUG_ENV}=1 for the "
                "traceback)")
    if is_global_zero():
        print(f"naas-train: error: {line}", file=sys.stderr, flush=True)
    return code


def main(args: list[str] | None = None) -> None:
    """Console script ``naas-train``: :func:`naas_train.threads.apply_thread_defaults`, then
    :func:`naas_train.cli.main` under the error handler described in the module docstring."""
    args = list(sys.argv[1:] if args is None else args)
    debug = debug_requested(args)
    if debug:
        os.environ[DEBUG_ENV] = "1"  # ranks a launcher starts see it too
        args = [a for a in args if a != DEBUG_FLAG]
    apply_thread_defaults()
    try:
        from naas_train.cli import main as cli_main

        cli_main(args)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the one top-level handler
        if debug:
            raise
        raise SystemExit(report(exc)) from None
