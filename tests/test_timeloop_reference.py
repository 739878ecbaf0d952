"""Timeloop's published reference outputs reproduced by the storage-hierarchy model (issue: hwmodel v2).

Every dense case of Accelergy-Project/timeloop-accelergy-exercises @ 27850fc3 that ships a ref-output
(fixtures extracted by ``scripts/extract_timeloop_refs.py``; see ``tests/fixtures/timeloop/README.md``):
per level and tensor the reads, fills and updates (Timeloop's per-instance counts x utilized instances)
must be equal, cycles equal, total energy within 0.5% with the exercise's own ERT.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwmodel.nestmodel import evaluate_nest_mapping
from hwmodel.timeloop_import import load_timeloop

ROOT = Path(__file__).parent / "fixtures" / "timeloop"
CASES = sorted(p.parent for p in ROOT.glob("*/*/expected.json"))


def _inputs(case: Path) -> tuple[Path, Path, Path, Path]:
    arch = min((case / "arch").glob("*.yaml"))
    prob = min((case / "prob").glob("*.yaml"))
    mapping = case / "mapping.yaml" if (case / "mapping.yaml").exists() else min((case / "map").glob("*.yaml"))
    ert = min((case / "ref-output").glob("*ERT_summary.yaml"))
    return arch, prob, mapping, ert


def test_all_cases_present() -> None:
    assert len(CASES) == 15


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.name}" for c in CASES])
def test_timeloop_reference(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text())
    hier, layer, mapping = load_timeloop(*_inputs(case))
    cost = evaluate_nest_mapping(layer, hier, mapping)
    assert cost.valid, cost.reason
    got = cost.timeloop()
    mismatches = []
    for level in expected["levels"]:
        for tensor, v in level["tensors"].items():
            for kind in ("reads", "fills", "updates"):
                want = v[kind] * v["utilized_instances"]
                have = got["levels"][level["name"]][tensor][kind]
                if have != want:
                    mismatches.append(f"{level['name']}.{tensor}.{kind}: {have} != {want}")
    assert not mismatches
    assert cost.cycles == expected["cycles"]
    assert cost.macs == expected["macs"]
    assert cost.energy_pj == pytest.approx(expected["energy_pj"], rel=5e-3)
