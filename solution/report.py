"""``report.png`` in a run folder: the curves people look at, drawn from the run's own files.

Phrase matcher (written when the run finishes): training loss per step for each fold, validation
Pearson per epoch for each fold, and the out-of-fold predictions against the true scores.
Embedder (written when the run finishes, redrawn by ``python -m solution.evaluate embedder --run``):
training loss per step, validation nDCG@10 per epoch, recall@k (the evaluation's systems when
``eval.json`` exists, else the run's held-out validation sample) and nDCG@10 per query role.

A report is a by-product: any failure (no matplotlib, odd files) is logged and never fails the run.

Example:
    >>> write_report("runs/my-run")            # doctest: +SKIP
    PosixPath('runs/my-run/report.png')
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

REPORT_FILE = "report.png"


def write_report(run_dir: str | Path) -> Path | None:
    """Draw ``run_dir/report.png`` for a phrase or embedder run; returns its path, or None if it failed."""
    run_dir = Path(run_dir)
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never a window, never a display
        import matplotlib.pyplot as plt

        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        steps = _read_jsonl(run_dir / "steps.jsonl")
        embedder = "recipe" in metrics
        fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
        draw = _embedder_panels if embedder else _phrase_panels
        draw(axes.ravel(), run_dir, metrics, steps)
        fig.suptitle(f"{'embedder' if embedder else 'phrase matcher'} run {run_dir.name}", fontsize=13)
        fig.tight_layout()
        path = run_dir / REPORT_FILE
        partial = path.with_name(f".{REPORT_FILE}.partial.png")  # the suffix tells matplotlib the format
        fig.savefig(partial, dpi=90)
        plt.close(fig)
        partial.replace(path)
        return path
    except Exception as err:  # noqa: BLE001 - a plot must never fail the run that produced the numbers
        log.warning("%s: no %s (%s: %s)", run_dir, REPORT_FILE, type(err).__name__, err)
        return None


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _loss_panel(ax, steps: list[dict], group_key: str | None) -> None:
    groups: dict[str, list[dict]] = {}
    for row in steps:
        groups.setdefault(f"fold {row[group_key]}" if group_key else "train", []).append(row)
    for name, rows in groups.items():
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=name, lw=1.2)
    ax.set(title="training loss (mean over the epoch so far)", xlabel="step", ylabel="loss")
    _legend(ax)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def _hint(ax, text: str) -> None:
    """An empty panel that says what would fill it."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set(xticks=[], yticks=[])


def _phrase_panels(axes, run_dir: Path, metrics: dict, steps: list[dict]) -> None:
    _loss_panel(axes[0], steps, "fold")
    ax = axes[1]
    for fold, record in sorted(metrics.get("folds", {}).items()):
        epochs = record.get("epochs", [])
        ax.plot([e["epoch"] for e in epochs], [e["val_pearson"] for e in epochs], marker="o", label=f"fold {fold}")
    oof = metrics.get("oof_pearson")
    ax.set(title="validation Pearson per epoch" + (f" (out-of-fold {oof:.4f})" if oof is not None else ""),
           xlabel="epoch", ylabel="Pearson")
    _legend(ax)
    truth, pred = _oof(run_dir / "oof.csv")
    levels = sorted(set(truth))
    axes[2].boxplot([[p for t, p in zip(truth, pred) if t == level] for level in levels] or [[]],
                    tick_labels=[f"{level:g}" for level in levels] or [""], showfliers=False)
    axes[2].set(title="out-of-fold prediction by true score", xlabel="true score", ylabel="predicted score")
    ax = axes[3]
    if pred:
        levels_all = [0.0, 0.25, 0.5, 0.75, 1.0]
        nearest = [min(levels_all, key=lambda level: abs(level - p)) for p in pred]
        for offset, (name, values) in zip((-0.04, 0.04), (("true", truth), ("predicted, nearest level", nearest))):
            shares = [sum(v == level for v in values) / len(values) for level in levels_all]
            ax.bar([level + offset for level in levels_all], shares, width=0.08, label=name)
        ax.set_xticks(levels_all)
    ax.set(title="share of out-of-fold rows per score level", xlabel="score", ylabel="share of rows")
    _legend(ax)


def _oof(path: Path) -> tuple[list[float], list[float]]:
    if not path.exists():
        return [], []
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [float(r["score"]) for r in rows], [float(r["pred"]) for r in rows]


def _embedder_panels(axes, run_dir: Path, metrics: dict, steps: list[dict]) -> None:
    _loss_panel(axes[0], steps, None)
    ax = axes[1]
    epochs = [e for e in metrics.get("epochs", []) if "val_title2abstract_ndcg@10" in e]
    if epochs:
        ax.plot([e["epoch"] for e in epochs], [e["val_title2abstract_ndcg@10"] for e in epochs], marker="o",
                label="held-out title -> abstract")
        ax.set(xlabel="epoch", ylabel="nDCG@10")
        _legend(ax)
    else:
        _hint(ax, "no per-epoch validation in this run (val_patents = 0)")
    ax.set_title("validation nDCG@10 per epoch")
    evaluation = run_dir / "eval.json"
    results = json.loads(evaluation.read_text(encoding="utf-8"))["results"] if evaluation.exists() else {}
    results = {system: tasks for system, tasks in results.items() if "title2abstract" in tasks}  # not TF-IDF's F1 row
    _recall_panel(axes[2], results, epochs[-1] if epochs else {})
    _roles_panel(axes[3], results)


def _recall_curve(metrics: dict, prefix: str = "") -> tuple[list[int], list[float]]:
    ks = sorted(int(key[len(prefix) + len("recall@"):]) for key in metrics if key.startswith(f"{prefix}recall@"))
    return ks, [metrics[f"{prefix}recall@{k}"] for k in ks]


def _recall_panel(ax, results: dict, last_epoch: dict) -> None:
    if results:
        for system, tasks in results.items():
            ks, values = _recall_curve(tasks.get("title2abstract", {}))
            ax.plot(ks, values, marker="o", label=system)
        where = "title -> abstract, evaluation (eval.json)"
    else:
        ks, values = _recall_curve(last_epoch, "val_title2abstract_")
        if not ks:
            _hint(ax, "no recall@k yet: run\npython -m solution.evaluate embedder --run RUN")
            ax.set_title("recall@k (title -> abstract)")
            return
        ax.plot(ks, values, marker="o", label="this run, last epoch")
        where = "title -> abstract, held-out validation sample"
    ax.set(title=f"recall@k ({where})", xlabel="k", ylabel="recall@k", xscale="log")
    _legend(ax)


def _roles_panel(ax, results: dict) -> None:
    roles = sorted({task[len("queries:"):] for tasks in results.values() for task in tasks if task.startswith("queries:")})
    if not roles:
        _hint(ax, "nDCG@10 per query role: run\npython -m solution.evaluate embedder --run RUN")
        ax.set_title("nDCG@10 per query role")
        return
    width = 0.8 / len(results)
    lowest = 1.0
    for i, (system, tasks) in enumerate(results.items()):
        values = [tasks.get(f"queries:{role}", {}).get("ndcg@10", 0.0) for role in roles]
        lowest = min(lowest, *values)
        ax.bar([r + i * width for r in range(len(roles))], values, width, label=system)
    ax.set_xticks([r + 0.4 - width / 2 for r in range(len(roles))], roles, rotation=20, fontsize=8)
    # systems differ by a few points near the top: start the axis just below the lowest bar
    ax.set(title="nDCG@10 per synthetic-query role (evaluation)", ylabel="nDCG@10", ylim=(max(0.0, lowest - 0.05), 1.0))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # below: bars stay visible
