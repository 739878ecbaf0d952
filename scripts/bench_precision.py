"""Mixed precision in the loop vs uniform 8-bit, on the digits pipeline, over seeds (issue 14 item 5).

For each seed: ``naas-train pipeline`` on ``recipes/digits_naas_mp.yaml`` with every seed of the recipe set to it
(its own run folder), then the chosen subnet fine-tuned the same way at **uniform 8 bits** (QAT with KD, same
epochs) and its QDQ model scored by onnxruntime on the same validation split, so both accuracies are exported
accuracies. Prints a table: exported accuracy of the co-searched design and of uniform int8, EDP of each
(``result.json``'s ``uniform_int8`` baseline: the chosen subnet at 8 bits on the chosen accelerator), their
ratio, and the other baselines (uniform int16, bits-only).

    python scripts/bench_precision.py --seeds 0 1            # ~25 min on 2 cores
    python scripts/bench_precision.py --seeds 0 --reuse      # re-read finished runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "digits_naas_mp.yaml"
#: The ``naas-train`` console script of this interpreter's environment.
NAAS_TRAIN = str(Path(sys.executable).parent / "naas-train")


def _set_seeds(node: object, seed: int) -> None:
    """Every ``seed`` / ``seed_everything`` key of a recipe, set to ``seed`` (in place)."""
    if isinstance(node, dict):
        for key in list(node):
            if key in ("seed", "seed_everything"):
                node[key] = seed
            else:
                _set_seeds(node[key], seed)
    elif isinstance(node, list):
        for item in node:
            _set_seeds(item, seed)


def seeded_recipe(seed: int, out: Path) -> tuple[Path, Path]:
    """A copy of the recipe with every seed = ``seed`` and its own run folder; returns (recipe, run folder)."""
    data = yaml.safe_load(RECIPE.read_text())
    _set_seeds(data, seed)
    root = out / f"seed{seed}"
    data["trainer"]["default_root_dir"] = str(root)
    path = out / f"digits_naas_mp_seed{seed}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, root


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def uniform_int8_accuracy(recipe: Path, root: Path, epochs: int) -> float:
    """The chosen subnet fine-tuned quantization-aware at 8 bits everywhere, scored like the bundle (onnxruntime,
    QDQ model.onnx, validation split)."""
    result = json.loads((root / "cosearch" / "result.json").read_text())
    int8 = dict(result, precision={name: {"weights": 8, "inputs": 8} for name in result["precision"]})
    r8 = root / "cosearch" / "result_uniform_int8.json"
    r8.write_text(json.dumps(int8))
    ckpt = json.loads((root / "pipeline.json").read_text())["steps"]["fit"]["checkpoint"]
    run([NAAS_TRAIN, "finetune", "--config", str(recipe), "--ckpt_path", ckpt,
         "--result", str(r8), "--epochs", str(epochs), "--trainer.default_root_dir", str(root / "int8")])
    from naas_train.data import DigitsData
    from naas_train.onnx_eval import onnx_accuracy
    from naas_train.qdq_export import export_qdq_onnx
    from naas_train.subnet_io import load_subnet, subnet_resolution

    model, _, _ = load_subnet(int8, checkpoint=root / "int8" / "finetune" / "finetuned.ckpt")
    r = subnet_resolution(int8)
    data = yaml.safe_load(recipe.read_text())["data"]["init_args"]
    import torch

    onnx_path = root / "int8" / "model_int8.onnx"
    export_qdq_onnx(model, torch.randn(1, 3, r, r), onnx_path, check=False)
    return onnx_accuracy(onnx_path, DigitsData(**data), r)["top1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_precision"))
    parser.add_argument("--finetune_epochs", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="skip runs whose bundle exists")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        recipe, root = seeded_recipe(seed, out)
        started = time.perf_counter()
        if not (args.reuse and (root / "bundle" / "metrics.json").is_file()):
            run([NAAS_TRAIN, "pipeline", "--config", str(recipe),
                 "--finetune_epochs", str(args.finetune_epochs)])
        metrics = json.loads((root / "bundle" / "metrics.json").read_text())
        acc8 = uniform_int8_accuracy(recipe, root, args.finetune_epochs)
        b = metrics["baselines"]
        bits = [v for layer in metrics["precision"].values() for v in layer.values()]
        rows.append({"seed": seed, "accuracy": metrics["accuracy"], "accuracy_int8": acc8, "edp": metrics["edp"],
                     "edp_int8": b["uniform_int8"]["edp"], "edp_ratio_int8": b["uniform_int8"]["edp_ratio"],
                     "edp_ratio_int16": b.get("uniform_int16", {}).get("edp_ratio"),
                     "edp_ratio_bits_only": b.get("bits_only", {}).get("edp_ratio"),
                     "mean_bits": sum(bits) / len(bits), "accelerator_mac": json.loads(
                         (root / "bundle" / "accelerator.json").read_text()).get("mac", "fixed"),
                     "seconds": time.perf_counter() - started})
    print()
    print("| seed | exported acc (MP) | exported acc (uniform int8) | loss (points) | EDP MP | EDP int8 | "
          "int8 / MP EDP | int16 / MP | bits-only / MP | mean bits |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.2f}"
        print(f"| {r['seed']} | {r['accuracy']:.4f} | {r['accuracy_int8']:.4f} | "
              f"{100 * (r['accuracy_int8'] - r['accuracy']):.2f} | {r['edp']:.4g} | {r['edp_int8']:.4g} | "
              f"{r['edp_ratio_int8']:.2f} | {fmt(r['edp_ratio_int16'])} | {fmt(r['edp_ratio_bits_only'])} | "
              f"{r['mean_bits']:.2f} |")
    (out / "summary.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
