"""``naas-hw``: evaluate networks on accelerators from the command line.

Each subcommand is one ``_add_<name>(subparsers)`` function that builds its parser and sets ``func`` to the
function running it (``args -> exit code``); register it in :data:`SUBCOMMANDS`. Shared argument groups
(:func:`add_workload_args`, :func:`add_accelerator_arg`, :func:`add_output_args`) and their readers
(:func:`load_workload`, :func:`emit_report`) are for reuse by new subcommands.

Bad input (a ``ValueError``, an unreadable/unwritable file, or a number / nesting / size beyond what can be
computed: ``OverflowError``, ``RecursionError``, ``MemoryError``) exits with code 2 and one line on stderr; any
other exception (a bug) prints one line and exits 1. ``--debug`` (anywhere on the command line) or ``NAAS_DEBUG=1``
lets the exception through with its traceback. Outputs are written atomically (:mod:`hwmodel.atomic`) and never
over something that is not a regular file (``--out`` of ``evaluate``) or a folder we wrote (``cosearch --out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hwmodel.accelerator import Accelerator
from hwmodel.layer import Layer, merge_layers
from hwmodel.loading import load_accelerator
from hwmodel.objectives import OBJECTIVES, objective_names
from hwmodel.presets import PRESETS
from hwmodel.templates import DATAFLOWS

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
DEBUG_FLAG = "--debug"
DEBUG_ENV = "NAAS_DEBUG"
OBJECTIVE_CHOICES = objective_names()
#: ``--objective`` help: each objective with its description (:mod:`hwmodel.objectives`).
OBJECTIVE_HELP = "what to minimise: " + "; ".join(f"{n} ({s.description})" for n, s in OBJECTIVES.items())
#: Bounds of the numeric options (searches are bounded in evaluations; shapes by hwmodel's layer bounds).
MAX_MAPPING_BUDGET = 10_000_000
MAX_GENERATIONS = 10_000
MAX_SEED = 2**32 - 1
MAX_SHAPE = 2**24
#: The file a ``cosearch --out`` folder holds: the sign that we wrote it (so a re-run may replace it).
COSEARCH_MARKER = "cosearch.json"


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
    group.add_argument(
        "--timeloop",
        nargs=2,
        metavar=("ARCH", "PROBLEM"),
        help="a Timeloop architecture and problem YAML (evaluate only; the architecture replaces --accelerator; "
        "--mapping then reads a Timeloop mapping YAML, --ert an Accelergy ERT)",
    )
    parser.add_argument("--resolution", type=int, default=224, help="input pixels (square) for --model (default 224)")
    parser.add_argument("--batch", type=int, default=1, help="batch size N for --model (default 1)")
    parser.add_argument(
        "--input-shape", metavar="N,C,H,W", help="shape of the graph input for --onnx when it has symbolic dims"
    )
    parser.add_argument(
        "--im2col",
        action="store_true",
        help="lower every layer to its im2col GEMM (pixels N*P*Q and reduction C*R*S each one flattened dim, as "
        "SCALE-Sim and TPU-style systolic arrays map them; inputs become the im2col matrix)",
    )
    parser.add_argument(
        "--bits", metavar="W,A",
        help="weight and input-activation bits of every layer that gives none (e.g. 8,8 or 4,8); layers of a "
        "QDQ ONNX graph or a 'weight_bits=' layer spec keep their own",
    )


def add_accelerator_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--accelerator",
        required=required,
        metavar="SPEC",
        help=f"preset ({', '.join(PRESETS)}), systolic:RxC, or a JSON/YAML accelerator file",
    )


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON report to FILE (atomically)")


def _parse_shape(text: str) -> tuple[int, ...]:
    import re

    from hwmodel.validate import show

    items = [v.strip() for v in text.replace("x", ",").split(",")]
    if not 1 <= len(items) <= 8 or not all(re.fullmatch(r"[0-9]{1,9}", v) for v in items):
        raise ValueError(f"--input-shape must be 1 to 8 integers like 1,3,224,224, got {show(text)}")
    shape = tuple(int(v) for v in items)
    if min(shape) < 1 or max(shape) > MAX_SHAPE:
        raise ValueError(f"--input-shape sizes must be 1..{MAX_SHAPE}, got {show(text)}")
    return shape


def _check_range(flag: str, value: int | None, lo: int, hi: int) -> None:
    if value is not None and value < lo:
        raise ValueError(f"{flag} must be >= {lo}, got {value}")
    if value is not None and value > hi:
        raise ValueError(f"{flag} must be <= {hi}, got {value}")


def check_output_file(path: str) -> None:
    """Fail before any work when ``--out FILE`` could not be written or would replace something that is not a
    regular file (a device node, FIFO, socket, folder): ``ValueError`` / ``OSError`` naming it."""
    from hwmodel.atomic import check_output_path

    target = check_output_path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(2, "No such file or directory", str(Path(path).parent))
    if not os.access(target.parent, os.W_OK):
        raise PermissionError(13, "Permission denied", str(Path(path).parent))


def check_output_folder(path: str) -> None:
    """Fail before any work when ``--out DIR`` exists and is not a folder, is a folder we did not write (not empty,
    no :data:`COSEARCH_MARKER`), or cannot be created (its nearest existing ancestor is not a writable folder)."""
    from hwmodel.atomic import check_output_directory

    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--out {path} exists and is not a folder; refusing to replace it")
    check_output_directory(path, overwrite=True, marker=COSEARCH_MARKER)
    ancestor = Path(os.path.realpath(path)).parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"--out {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(13, "Permission denied", str(ancestor))


def load_workload(args: argparse.Namespace) -> list[Layer]:
    """The layers named by :func:`add_workload_args` (merged by shape; every layer named; lowered with
    ``--im2col``)."""
    if getattr(args, "timeloop", None):
        raise ValueError("--timeloop ARCH PROBLEM applies to 'naas-hw evaluate' only")
    layers = _read_workload(args)
    if getattr(args, "bits", None):
        w, a = parse_bits(args.bits)
        layers = merge_layers([layer if layer.bits != (None, None, None) else layer.with_bits(w, a) for layer in layers])
    return [layer.im2col() for layer in layers] if getattr(args, "im2col", False) else layers


def parse_bits(text: str) -> tuple[int, int]:
    """``--bits W,A`` as two integers (one number: both)."""
    parts = [p.strip() for p in str(text).split(",")]
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"--bits must be W,A (weight and input-activation bits, e.g. 8,8), got {text!r}")
    w, a = int(parts[0]), int(parts[-1])
    return w, a


def _read_workload(args: argparse.Namespace) -> list[Layer]:
    if args.layer is not None:
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
    from hwmodel import workloads  # torch / onnx are imported only here

    _check_range("--resolution", args.resolution, 1, workloads.MAX_RESOLUTION)
    _check_range("--batch", args.batch, 1, workloads.MAX_BATCH)
    if args.model is not None:
        return workloads.model_layers(args.model, resolution=args.resolution, batch=args.batch)
    shape = _parse_shape(args.input_shape) if args.input_shape is not None else None
    if not os.path.isfile(args.onnx):
        raise ValueError(f"--onnx file {args.onnx} does not exist")
    return workloads.from_onnx(args.onnx, input_shape=shape)


def emit_report(args: argparse.Namespace, report: dict[str, Any], table: Callable[[], str]) -> None:
    """Write ``--out``, then print the JSON (``--json``) or ``table()``."""
    from hwmodel.atomic import atomic_write_json

    if args.out:
        atomic_write_json(args.out, report)
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
    add_accelerator_arg(p, required=False)
    p.add_argument("--ert", metavar="FILE", help="Accelergy ERT (*.ERT.yaml / *.ERT_summary.yaml) for --timeloop energies")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--dataflow", choices=list(DATAFLOWS), help="use this template for every layer")
    how.add_argument(
        "--mapping",
        metavar="FILE",
        help='mapping JSON: one mapping for all layers, or {"layers": [{"name", "mapping"}, ...]} '
        "(e.g. a previous --json report)",
    )
    how.add_argument(
        "--search",
        nargs="?",
        const="es",
        choices=("es", "optimal"),
        help="per layer, the best mapping found by mapping search on this fixed accelerator: 'es' (the default: "
        "evolution strategy + local polish, never worse than the best template) or 'optimal' (the whole encoded "
        "mapspace, capacity-pruned: the proven optimum, or with --time-limit the best so far and its gap to a "
        "certified bound); with --timeloop: the hierarchy mapper, or 'optimal' its exact enumeration "
        "(hwmodel.nest_optimal); the --json report re-runs as --mapping FILE",
    )
    search = p.add_argument_group("mapping search (with --search)")
    search.add_argument("--objective", choices=list(OBJECTIVE_CHOICES), help=f"{OBJECTIVE_HELP} (default edp)")
    search.add_argument(
        "--mapping-budget", type=int, metavar="N", help="evaluations per layer (default 2000, plus polish)"
    )
    search.add_argument("--seed", type=int, help="search seed (default 0; layer i uses seed + i)")
    search.add_argument("--time-limit", type=float, metavar="S",
                        help="with --search optimal: seconds per layer, then the best so far (default: no limit)")
    add_output_args(p)
    p.set_defaults(func=cmd_evaluate, evaluate_parser=p)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hwmodel.mapping import load_mapping
    from hwmodel.report import format_report, network_report, select_mappings

    if args.out:
        check_output_file(args.out)
    _check_range("--mapping-budget", args.mapping_budget, 1, MAX_MAPPING_BUDGET)
    _check_range("--seed", args.seed, 0, MAX_SEED)
    if args.timeloop:
        return _evaluate_timeloop(args)
    if args.ert is not None:
        raise ValueError("--ert applies only with --timeloop ARCH PROBLEM")
    if args.accelerator is None:
        args.evaluate_parser.error("the following arguments are required: --accelerator (or --timeloop ARCH PROBLEM)")
    accel = load_accelerator(args.accelerator)
    layers = load_workload(args)
    if not layers:
        raise ValueError("the workload has no Conv/Linear/MatMul layers to evaluate")
    if args.search:
        mappings, labels, seed = _searched_mappings(args, layers, accel)
        report = network_report(layers, accel, mappings, seed=seed)
        emit_report(args, report, lambda: format_report(report, labels, unit=accel.energy.unit))
        return 0
    given_search = [f for f, v in (("--objective", args.objective), ("--mapping-budget", args.mapping_budget),
                                   ("--seed", args.seed), ("--time-limit", args.time_limit)) if v is not None]
    if given_search:
        raise ValueError(f"{given_search[0]} applies only with --search")
    given = load_mapping(args.mapping) if args.mapping is not None else None
    try:
        mappings, labels = select_mappings(layers, accel, dataflow=args.dataflow, mapping=given)
        report = network_report(layers, accel, mappings)
    except ValueError as exc:
        if given is None:
            raise
        raise ValueError(f"--mapping {args.mapping}: {exc}") from None
    emit_report(args, report, lambda: format_report(report, labels, unit=accel.energy.unit))
    return 0


def _evaluate_timeloop(args: argparse.Namespace) -> int:
    """``--timeloop ARCH PROBLEM [--mapping MAP] [--ert ERT] [--search [optimal] [--time-limit S]]``: one layer on a
    storage hierarchy (``--search``: the heuristic hierarchy mapper; ``--search optimal``: the exact mapper)."""
    from hwmodel.nest_search import search_nest_mapping
    from hwmodel.nestmodel import evaluate_nest_mapping
    from hwmodel.timeloop_import import load_timeloop

    if args.accelerator is not None:
        raise ValueError("--accelerator cannot be combined with --timeloop (the architecture file replaces it)")
    if args.im2col:
        raise ValueError("--im2col cannot be combined with --timeloop (the problem file gives the loop nest)")
    if args.dataflow:
        raise ValueError("--dataflow applies to --accelerator presets, not to --timeloop architectures")
    arch, problem = args.timeloop
    hier, layer, mapping = load_timeloop(arch, problem, args.mapping, args.ert)
    source = "mapping file"
    extra: dict = {}
    if args.time_limit is not None and (args.search != "optimal" or not args.time_limit > 0):
        raise ValueError("--time-limit applies only with --search optimal and must be > 0 seconds, "
                         f"got {args.time_limit}")
    if args.search == "optimal":
        from hwmodel.nest_optimal import optimal_nest_mapping

        if mapping is not None:
            raise ValueError("give either --mapping or --search optimal with --timeloop, not both")
        if args.mapping_budget is not None:
            raise ValueError("--mapping-budget applies to the heuristic mapper (--search), not to --search optimal "
                             "(use --time-limit to bound it)")
        opt = optimal_nest_mapping(layer, hier, objective=args.objective or "edp", time_limit=args.time_limit,
                                   seed=args.seed or 0)
        mapping, cost = opt.mapping, opt.cost
        source = (f"optimal (proven, {opt.evaluations} evaluated)" if opt.proven else
                  f"optimal (time limit, gap <= {opt.gap:.2f}x, {opt.evaluations} evaluated)")
        extra = {"optimal": {"objective": opt.objective, "proven": opt.proven, "certified_bound": opt.certified_bound,
                             "gap": opt.gap, "evaluations": opt.evaluations}}
    elif mapping is None or args.search:
        if mapping is not None:
            raise ValueError("give either --mapping or --search with --timeloop, not both")
        budget = 20000 if args.mapping_budget is None else args.mapping_budget
        found = search_nest_mapping(layer, hier, objective=args.objective or "edp", budget=budget,
                                    seed=args.seed or 0)
        mapping, cost, source = found.mapping, found.cost, f"hierarchy search ({found.valid}/{found.evaluated} valid)"
    else:
        cost = evaluate_nest_mapping(layer, hier, mapping)
    if not cost.valid:
        raise ValueError(f"the mapping is invalid on {hier.name}: {cost.reason}")
    entry = {"name": layer.name or "layer", "layer": layer.to_dict(), "mapping_source": source,
             "timeloop": cost.timeloop(), **cost.to_dict(), **extra}
    report = {"accelerator": hier.name, "source": hier.source, "layers": [entry],
              "total": {"cycles": cost.cycles, "energy_pj": cost.energy_pj, "edp": cost.edp}}

    def table() -> str:
        lines = [f"{hier.name}: {layer}  ({source})",
                 f"cycles {cost.cycles:.0f}  energy {cost.energy_pj:.2f} pJ  utilization {cost.utilization:.3f}"]
        for lvl, per in cost.levels.items():
            for t, v in per.items():
                lines.append(f"  {lvl:>14s} {t:>8s}  reads {v['reads']:.0f}  fills {v['fills']:.0f}  updates {v['updates']:.0f}")
        return "\n".join(lines)

    emit_report(args, report, table)
    return 0


def _searched_mappings(args: argparse.Namespace, layers: list[Layer], accel: Accelerator):
    """``search_mapping`` per layer (layer ``i`` with seed ``seed + i``): (mappings, labels, seed)."""
    from hwmodel.search import search_mapping

    objective = args.objective or "edp"
    budget = 2000 if args.mapping_budget is None else args.mapping_budget
    seed = 0 if args.seed is None else args.seed
    if budget < 1:
        raise ValueError(f"--mapping-budget must be >= 1, got {budget}")
    if args.time_limit is not None and (args.search != "optimal" or not args.time_limit > 0):
        raise ValueError("--time-limit applies only with --search optimal and must be > 0 seconds, "
                         f"got {args.time_limit}")
    mappings, labels = [], []
    for i, layer in enumerate(layers):
        try:
            r = search_mapping(layer, accel, objective=objective, budget=budget, seed=seed + i, method=args.search,
                               time_limit=args.time_limit)
        except ValueError as exc:
            raise ValueError(f"layer {layer.name or layer!s}: {exc}") from None
        mappings.append(r.mapping)
        if r.proven is not None:
            labels.append("optimal (proven)" if r.proven else f"optimal (time limit, gap <= {r.gap:.2f}x)")
        else:
            labels.append(r.source if r.source.startswith("template") else f"search:{r.source}")
    return mappings, labels, seed


# --- cosearch -----------------------------------------------------------------------------------------
def _add_cosearch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cosearch",
        help="NAAS accelerator + mapping co-search within a preset's budget",
        description="Search array sizes, PE connectivity, buffer sizes and per-layer mappings for a network "
        "within a preset's resources (PEs, on-chip SRAM, bandwidths), and compare against the preset itself "
        "and a sizing-only search (the preset's connectivity kept), all with searched mappings. Ratios are "
        "baseline / NAAS (> 1 is better).",
    )
    add_workload_args(p)
    p.add_argument("--budget", required=True, metavar="PRESET", help=f"resource budget: {', '.join(PRESETS)}")
    p.add_argument("--objective", choices=list(OBJECTIVE_CHOICES), default="edp", help=f"{OBJECTIVE_HELP} (default edp)")
    p.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    p.add_argument("--generations", type=int, default=16, help="accelerator-search generations (default 16)")
    p.add_argument(
        "--mapping-budget", type=int, default=300, metavar="N",
        help="mapping-search evaluations per layer inside the accelerator search (default 300)",
    )
    p.add_argument(
        "--final-mapping-budget", type=int, default=2000, metavar="N",
        help="evaluations per layer for the final figures of all three designs (default 2000; NAAS is "
        "re-checked with 10x)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON result instead of the summary")
    p.add_argument(
        "--out", metavar="DIR",
        help="write cosearch.json, accelerator.json, mappings.json and convergence.png into DIR, all or none "
        "(DIR may exist only as an empty folder or one an earlier cosearch wrote, which is replaced)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_cosearch)


def _workload_name(args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    if args.onnx:
        return os.path.splitext(os.path.basename(args.onnx))[0]
    return "layers"


def cmd_cosearch(args: argparse.Namespace) -> int:
    from hwmodel.atomic import atomic_directory
    from hwmodel.cosearch import cosearch
    from hwmodel.validate import show

    if args.budget not in PRESETS:
        raise ValueError(f"unknown --budget {show(args.budget)}; choose one of {', '.join(PRESETS)}")
    _check_range("--generations", args.generations, 1, MAX_GENERATIONS)
    _check_range("--mapping-budget", args.mapping_budget, 1, MAX_MAPPING_BUDGET)
    _check_range("--final-mapping-budget", args.final_mapping_budget, 1, MAX_MAPPING_BUDGET // 10)
    _check_range("--seed", args.seed, 0, MAX_SEED)
    if args.out:
        check_output_folder(args.out)  # fail now, not after the search; nothing is created yet
    layers = load_workload(args)
    if not layers:
        raise ValueError("the workload has no Conv/Linear/MatMul layers to search for")
    bar = None
    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=2 * args.generations, desc="sizing_only", unit="gen", file=sys.stderr, dynamic_ncols=True)

        def progress(kind: str, generation: int, total: int, best: float) -> None:
            offset = 0 if kind == "sizing_only" else total
            bar.set_postfix_str(f"best {args.objective} {best:.4g}", refresh=False)
            done = kind == "naas" and generation >= total
            bar.set_description("final mappings" if done else kind, refresh=False)
            bar.update(offset + generation - bar.n)

    def run(out: str | None) -> dict[str, Any]:
        return cosearch(
            layers, budget=args.budget, objective=args.objective, seed=args.seed, generations=args.generations,
            mapping_budget=args.mapping_budget, final_mapping_budget=args.final_mapping_budget,
            model=_workload_name(args), out=out, progress=progress,
        )

    try:
        if args.out:  # the folder appears whole (all of COSEARCH_FILES) or not at all
            with atomic_directory(args.out, overwrite=True, marker=COSEARCH_MARKER) as tmp:
                result = run(str(tmp))
        else:
            result = run(None)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_cosearch(result, PRESETS[args.budget].energy.unit))
        if args.out:
            print(f"wrote {', '.join(os.path.join(args.out, f) for f in COSEARCH_FILES)}")
    return 0


COSEARCH_FILES = ("cosearch.json", "accelerator.json", "mappings.json", "convergence.png")


def format_cosearch(result: dict[str, Any], unit: str = "pJ") -> str:
    """The summary of a co-search: the three designs, the ratios and the time taken."""
    from hwmodel.report import _si

    headers = ["design", "array", "connectivity", "L1 words/PE (w/i/o)", "L2", "cycles", f"energy[{unit}]", "EDP"]
    rows = []
    for key, label in (("baseline", f"baseline ({result['budget']})"), ("sizing_only", "sizing-only"),
                       ("naas", "NAAS")):
        e = result[key]
        a = e["accelerator"]
        part = a.get("l1_partition")
        l1 = str(a["l1_words"]) if not part else "/".join(map(str, part.values() if isinstance(part, dict) else part))
        rows.append([label, "x".join(map(str, a["array"])), " | ".join("".join(ax) for ax in a["connectivity"]),
                     l1, f"{a['l2_bytes'] / 1024:.4g} KB", _si(e["cycles"]), _si(e["energy_pj"]),
                     _si(e["edp"])])
    widths = [max(len(r[c]) for r in [headers, *rows]) for c in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    search = result.get("search", {})
    head = (f"co-search of {result['model']} within the {result['budget']} budget: objective "
            f"{result.get('objective', 'edp')}, seed {result['provenance'].get('seed')}, "
            f"{search.get('generations', '?')} generations, mapping budget {search.get('mapping_budget', '?')} "
            f"(final {search.get('final_mapping_budget', '?')})")
    out = [head, line(headers), "-" * len(line(headers)), *map(line, rows), ""]
    out.append(f"baseline / NAAS: speedup {result['speedup']:.2f}x, energy saving {result['energy_saving']:.2f}x, "
               f"EDP {result['edp_ratio']:.2f}x; sizing-only / NAAS EDP {result['edp_vs_sizing_only']:.2f}x")
    recheck = result.get("naas_recheck_10x")
    if recheck:
        out.append(f"NAAS re-mapped with {recheck['mapping_budget']} evaluations/layer: "
                   f"{recheck['fitness_ratio']:.3f}x the reported {result.get('objective', 'edp')}")
    secs = f"{result['seconds']:.1f} s"
    if "search_seconds" in result:
        secs += f" (accelerator searches {result['search_seconds']:.1f} s, final mappings "
        secs += f"{result['seconds'] - result['search_seconds']:.1f} s)"
    out.append(f"time: {secs}")
    return "\n".join(out)


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
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_evaluate, _add_cosearch, _add_presets]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="naas-hw", description="Analytical accelerator cost model (hwmodel).",
        epilog=f"Bad input exits with status 2 and one error line; {DEBUG_FLAG} (anywhere) or {DEBUG_ENV}=1 shows "
        "the traceback instead.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    """The first non-empty line of the message, whitespace collapsed (never a multi-line dump)."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    text = " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(exc).__name__
    return text if len(text) <= 2000 else text[:1997] + "..."


def error_line(exc: BaseException) -> tuple[int, str]:
    """(exit code, message) for an exception escaping a subcommand."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return EXIT_BAD_INPUT, f"{exc.strerror or _one_line(exc)}{where}"
    if isinstance(exc, ValueError):
        return EXIT_BAD_INPUT, _one_line(exc)
    if isinstance(exc, RecursionError):
        return EXIT_BAD_INPUT, "the input is nested too deeply to process (maximum recursion depth exceeded)"
    if isinstance(exc, MemoryError):
        return EXIT_BAD_INPUT, "out of memory: the input is too large to process"
    if isinstance(exc, OverflowError):
        return EXIT_BAD_INPUT, f"a number in the input is too large to compute with ({_one_line(exc)})"
    return EXIT_INTERNAL, (f"{type(exc).__name__}: {_one_line(exc)} (an internal error: run with {DEBUG_ENV}=1 "
                           "or --debug for the traceback)")


#: OpenMP's wait policy while ``naas-hw`` runs, unless the environment names one. Each call of one of numba's
#: parallel kernels opens a parallel region; with OpenMP's default spin-wait, the calling thread spins until the
#: worker thread gets a core, which on a machine whose other cores are busy costs milliseconds per call (measured
#: when every batch ran in parallel: one layer's search made ~50 such calls, 0.2-0.4 s of 1.5 s on a loaded 2-core
#: box). Passive waiting costs a futex wake (microseconds) per region on an idle machine.
OMP_WAIT_POLICY = "PASSIVE"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``naas-hw``; returns the exit code (0 ok, 2 bad input, 1 internal error, 130 interrupted).

    While it runs, ``OMP_WAIT_POLICY`` is :data:`OMP_WAIT_POLICY` unless the environment sets it (restored after).
    Called without ``argv`` (the ``naas-hw`` command, ``python -m hwmodel.cli``: the process ends when it returns),
    it freezes the garbage collector's objects first (:func:`gc.freeze`): the interpreter's shutdown collections
    then skip numba's large object graph, 0.2 s of a 1 s run measured. Nothing is skipped: atexit handlers, buffered
    output and files close as usual."""
    set_policy = "OMP_WAIT_POLICY" not in os.environ
    if set_policy:
        os.environ["OMP_WAIT_POLICY"] = OMP_WAIT_POLICY
    try:
        return _main(argv)
    finally:
        if set_policy:
            os.environ.pop("OMP_WAIT_POLICY", None)
        if argv is None:
            gc.freeze()


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    argv = [a for a in argv if a != DEBUG_FLAG]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except SystemExit as exc:  # a subcommand's usage error (parser.error: message already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except BaseException as exc:
        if debug:
            raise
        code, line = error_line(exc)
        print(f"naas-hw {args.command}: error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
