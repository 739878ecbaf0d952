"""The ``naas-train`` console script: thread defaults first (they must precede loading torch), then the CLI."""

from __future__ import annotations

from naas_train.threads import apply_thread_defaults


def main() -> None:
    """Console script ``naas-train``: :func:`naas_train.threads.apply_thread_defaults`, then
    :func:`naas_train.cli.main`."""
    apply_thread_defaults()
    from naas_train.cli import main as cli_main

    cli_main()
