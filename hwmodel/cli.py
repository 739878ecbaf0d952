"""``naas-hw``: evaluate networks on accelerators from the command line.

Each subcommand is one ``_add_<name>(subparsers)`` function that builds its parser and sets ``func`` to the
function running it (``args -> exit code``); register it in :data:`SUBCOMMANDS`. Shared argument groups
(:func:`add_workload_args`, :func:`add_accelerator_arg`, :func:`add_output_args`) and their readers
(:func:`load_workload`, :func:`emit_report`) are for reuse by new subcommands.

Bad input (a ``ValueError`` or an unreadable/unwritable file) exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hwmodel.accelerator import Accelerator, load_accelerator
from hwmodel.layer import Layer
from hwmodel.presets import PRESETS
from hwmodel.templates import DATAFLOWS

EXIT_BAD_INPUT = 2


# --- shared argument groups ---------------------------------------------------------------------------
def add_workload_args(parser: argparse.ArgumentParser) -> None:
    """``--model NAME | --onnx FILE | --layer SPEC`` (repeatable) and their options."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", metavar="NAME", help="torchvision classification model, e.g. resnet50 (no weights)")
    group.add_argument("--onnx", metavar="FILE", help="ONNX graph (shapes only; weights may be external or absent)")
    group.add_argument(
        "--layer",
        metavar="SPEC",
        action="append",
        help='one layer "N=1,G=1,K=64,C=64,P=56,Q=56,R=3,S=3,stride=1" (optional name=..., count=...; repeatable)',
    )
    parser.add_argument("--resolution", type=int, default=224, help="input pixels (square) for --model (default 224)")
    parser.add_argument("--batch", type=int, default=1, help="batch size N for --model (default 1)")
    parser.add_argument(
        "--input-shape", metavar="N,C,H,W", help="shape of the graph input for --onnx when it has symbolic dims"
    )


def add_accelerator_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--accelerator",
        required=True,
        metavar="SPEC",
        help=f"preset ({', '.join(PRESETS)}), systolic:RxC, or a JSON/YAML accelerator file",
    )


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON report to FILE (atomically)")


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"--input-shape must be integers like 1,3,224,224, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise ValueError(f"--input-shape sizes must be >= 1, got {text!r}")
    return shape


def load_workload(args: argparse.Namespace) -> list[Layer]:
    """The layers named by :func:`add_workload_args` (merged by shape; every layer named)."""
    if args.layer:
        layers = []
        for i, spec in enumerate(args.layer):
            layer = Layer.parse(spec)
            if not layer.name:
                layer = Layer.from_dict({**layer.to_dict(), "name": f"layer{i}" if len(args.layer) > 1 else "layer"})
            layers.append(layer)
        names = [layer.name for layer in layers]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"--layer name {dup!r} is used twice; give each layer a unique name=...")
        return layers
    if args.resolution < 1 or args.batch < 1:
        raise ValueError(f"--resolution and --batch must be >= 1, got {args.resolution} and {args.batch}")
    from hwmodel import workloads  # torch / onnx are imported only here

    if args.model:
        return workloads.model_layers(args.model, resolution=args.resolution, batch=args.batch)
    shape = _parse_shape(args.input_shape) if args.input_shape else None
    if not os.path.isfile(args.onnx):
        raise ValueError(f"--onnx file {args.onnx} does not exist")
    return workloads.from_onnx(args.onnx, input_shape=shape)


def emit_report(args: argparse.Namespace, report: dict[str, Any], table: Callable[[], str]) -> None:
    """Write ``--out``, then print the JSON (``--json``) or ``table()``."""
    from hwmodel.report import write_json_atomic

    if args.out:
        write_json_atomic(args.out, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table())
        if args.out:
            print(f"wrote {args.out}")


# --- evaluate -----------------------------------------------------------------------------------------
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="cost of a network or layer on an accelerator",
        description="Per-layer cycles, energy, EDP, utilization and lower bounds, with totals. Default mapping: "
        "per layer, the lowest-EDP of the ws/os/is/rs templates.",
    )
    add_workload_args(p)
    add_accelerator_arg(p)
    how = p.add_mutually_exclusive_group()
    how.add_argument("--dataflow", choices=list(DATAFLOWS), help="use this template for every layer")
    how.add_argument(
        "--mapping",
        metavar="FILE",
        help='mapping JSON: one mapping for all layers, or {"layers": [{"name", "mapping"}, ...]} '
        "(e.g. a previous --json report)",
    )
    add_output_args(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hwmodel.mapping import load_mapping
    from hwmodel.report import format_report, network_report, select_mappings

    accel = load_accelerator(args.accelerator)
    layers = load_workload(args)
    if not layers:
        raise ValueError("the workload has no Conv/Linear/MatMul layers to evaluate")
    given = load_mapping(args.mapping) if args.mapping else None
    mappings, labels = select_mappings(layers, accel, dataflow=args.dataflow, mapping=given)
    report = network_report(layers, accel, mappings)
    emit_report(args, report, lambda: format_report(report, labels, unit=accel.energy.unit))
    return 0


# --- presets ------------------------------------------------------------------------------------------
def _add_presets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list the accelerator presets")
    p.add_argument("--json", action="store_true", help="print the presets as JSON")
    p.set_defaults(func=cmd_presets)


def _preset_row(accel: Accelerator) -> list[str]:
    l1 = (
        "/".join(str(v) for v in accel.l1_partition) + " (w/i/o)"
        if accel.l1_partition is not None
        else f"{accel.l1_words} shared"
    )
    l2 = f"{accel.l2_bytes // 1024} KB" if accel.l2_bytes % 1024 == 0 else f"{accel.l2_bytes} B"
    return [
        accel.name,
        "x".join(map(str, accel.array)) + (" systolic" if accel.systolic else ""),
        " | ".join("".join(axis) for axis in accel.connectivity),
        l1,
        l2,
        f"{accel.noc_bandwidth:g}",
        f"{accel.dram_bandwidth:g}",
        f"{accel.word_bits}/{accel.psum_bits}",
        accel.energy_table,
    ]


def cmd_presets(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({name: a.to_dict() for name, a in PRESETS.items()}, indent=2))
        return 0
    headers = ["preset", "array", "connectivity", "L1 entries/PE", "L2", "NoC w/cyc", "DRAM w/cyc", "bits w/psum", "energy"]
    rows = [headers, *(_preset_row(a) for a in PRESETS.values())]
    widths = [max(len(r[c]) for r in rows) for c in range(len(headers))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    print("also: systolic:RxC (any R x C systolic array; ws/os/is)")
    return 0


#: Parser builders, one per subcommand, in help order.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_evaluate, _add_presets]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="naas-hw", description="Analytical accelerator cost model (hwmodel).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``naas-hw``; returns the exit code (0 ok, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"naas-hw {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"naas-hw {args.command}: error: {exc.strerror or _one_line(exc)}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
