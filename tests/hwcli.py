"""Run ``naas-hw`` in-process for the CLI tests: exit code and captured output, or the parsed ``--json``."""

from __future__ import annotations

import json

from hwmodel.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys, *argv: str) -> dict:
    rc, out, err = run(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)
