#!/usr/bin/env python
"""Our storage-hierarchy model against Timeloop's published reference outputs, as a table.

For every fixture under ``tests/fixtures/timeloop`` (Timeloop's ``ref-output`` of
Accelergy-Project/timeloop-accelergy-exercises @ 27850fc3; see that folder's README): the case's architecture,
problem, mapping and ERT are read by :func:`hwmodel.timeloop_import.load_timeloop` and evaluated; printed are
Timeloop's and our cycles, total energy and their ratio, and how many of the per-level, per-tensor
``reads`` / ``fills`` / ``updates`` counts (Timeloop's per-instance count x utilized instances) are equal.
``tests/test_timeloop_reference.py`` asserts the same numbers.

    .venv/bin/python scripts/timeloop_compare.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures" / "timeloop"


def _inputs(case: Path) -> tuple[Path, Path, Path, Path]:
    arch = min((case / "arch").glob("*.yaml"))
    prob = min((case / "prob").glob("*.yaml"))
    mapping = case / "mapping.yaml" if (case / "mapping.yaml").exists() else min((case / "map").glob("*.yaml"))
    ert = min((case / "ref-output").glob("*ERT_summary.yaml"))
    return arch, prob, mapping, ert


def main() -> int:
    from hwmodel.nestmodel import evaluate_nest_mapping
    from hwmodel.timeloop_import import load_timeloop

    print("| case | cycles Timeloop | cycles ours | energy Timeloop (pJ) | energy ours (pJ) | ours / Timeloop | "
          "counts equal |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for exp_path in sorted(FIXTURES.glob("*/*/expected.json")):
        case = exp_path.parent
        expected = json.loads(exp_path.read_text())
        hier, layer, mapping = load_timeloop(*_inputs(case))
        cost = evaluate_nest_mapping(layer, hier, mapping)
        got = cost.timeloop()
        equal = total = 0
        for level in expected["levels"]:
            for tensor, v in level["tensors"].items():
                for kind in ("reads", "fills", "updates"):
                    total += 1
                    equal += got["levels"][level["name"]][tensor][kind] == v[kind] * v["utilized_instances"]
        ratio = cost.energy_pj / expected["energy_pj"]
        worst = max(worst, abs(ratio - 1))
        name = f"{case.parent.name}/{case.name}".replace("/_", "")
        print(f"| {name} | {expected['cycles']:,} | {cost.cycles:,.0f} | {expected['energy_pj']:,.2f} | "
              f"{cost.energy_pj:,.2f} | {ratio:.5f} | {equal}/{total} |")
    print(f"\nlargest energy deviation: {worst:.4%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
