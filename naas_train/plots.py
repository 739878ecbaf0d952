"""Co-search plots: accuracy vs EDP (Pareto front, chosen design, baselines) and per-layer energy by level.

Both read a co-search ``result.json`` dict and write a PNG atomically (matplotlib's Agg backend); the callback
writes them under ``cosearch/``, the export bundle as ``pareto.png`` / ``breakdown.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwmodel.atomic import atomic_open

__all__ = ["plot_breakdown", "plot_pareto"]


def _save_png(fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` atomically (:func:`hwmodel.atomic.atomic_open`), then close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_open(path) as handle:
            fig.savefig(handle, dpi=120, format="png")
    finally:
        plt.close(fig)


def plot_pareto(result: dict[str, Any], path: Path, exported_accuracy: float | None = None) -> None:
    """Accuracy vs EDP of the Pareto front, the chosen design (supernet weights, as the baselines) and, given
    ``exported_accuracy``, the same design after fine-tuning and export."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    front = result["pareto"]
    source = result.get("settings", {}).get("accuracy_source", "measured")
    edp = result["metrics"]["edp"]
    ax.plot([p["edp"] for p in front], [p["accuracy"] for p in front], "o-", color="tab:blue",
            label=f"Pareto front (searched accelerators, {source} accuracy)")
    ax.plot([edp], [result["accuracy"]], "r*", markersize=14, label="chosen design (supernet weights, measured)")
    if exported_accuracy is not None:
        ax.plot([edp], [exported_accuracy], "P", color="darkred", markersize=10,
                label="chosen design, fine-tuned and exported (onnxruntime)")
        ax.annotate("", xy=(edp, exported_accuracy), xytext=(edp, result["accuracy"]),
                    arrowprops={"arrowstyle": "->", "color": "darkred"})
    for (name, b), color in zip(result["baselines"].items(), ("tab:orange", "tab:green", "tab:purple")):
        ax.plot([b["edp"]], [b["accuracy"]], "s", color=color,
                label=name.replace("_", " ") + f" ({result.get('settings', {}).get('budget', 'preset')} preset)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e+", "e")))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("EDP (pJ x cycles, lower is better)")
    ax.set_ylabel("top-1 accuracy")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    _save_png(fig, path)


def plot_breakdown(result: dict[str, Any], path: Path) -> None:
    """Per-layer energy by level (MAC, L1, NoC, L2, DRAM) of the chosen design, count included."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    layers = result["mappings"]
    levels = ["mac", "l1", "noc", "l2", "dram"]
    data = np.array([[m["energy_breakdown"][lv] * m["count"] for lv in levels] for m in layers])
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(layers)), 4))
    bottom = np.zeros(len(layers))
    for j, lv in enumerate(levels):
        ax.bar(range(len(layers)), data[:, j], bottom=bottom, label=lv)
        bottom += data[:, j]
    ax.set_xlabel("layer")
    ax.set_ylabel("energy (pJ)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save_png(fig, path)
