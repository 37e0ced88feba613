"""The phrase matcher's first steps, watched: does the backbone's pooled output collapse to one vector?

    python -m benchmarks.first_steps --seeds 1 2 3 4 --set adam_eps=1e-8 --set adam_eps=1e-6
    python -m benchmarks.first_steps --model /tmp/tiny-bert --steps 20 --no-append   # a quick check

For every (seed, setting) pair: the default config with that seed (which also redraws the folds)
and that ``--set KEY=VALUE`` override trains fold 0 for ``--steps`` steps (the run's own warm-up, then
its peak lr held), logging every 10 steps the mean loss, the spread over rows of the pooled vectors
the head sees (mean per-dimension std; a healthy mpnet start stays ~0.06-0.09, a collapsed one falls
to ~0.001) and the spread of the head's latent. At the end it scores a validation sample (4 scoring
batches). A collapsed start shows as a flat loss at the constant-score value (~0.66), a pooled spread
near 0 and a sample Pearson near 0. Appends the table to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks._results import append_results, markdown_table


def watch_first_steps(overrides: dict, steps: int, out_dir: Path) -> dict:
    """Train fold 0 of the default config with ``overrides`` for ``steps`` steps; return what was seen."""
    import numpy as np

    from solution.config import build_config
    from solution.phrase.config import PhraseTrainConfig
    from solution.phrase.fold import epoch_inputs, setup_fold
    from solution.phrase.guard import sample_pearson
    from solution.phrase.prepare import prepare
    from solution.phrase.step import train_step
    from solution.scheduler import cosine_factor, set_lr

    cfg = build_config(None, {"out": str(out_dir / "run"), "submission": str(out_dir / "submission.csv"), "folds": 1,
                              **overrides}, PhraseTrainConfig)
    run, _ = prepare(cfg, resume=False)
    state = setup_fold(run, 0, resume=False)
    inputs, batches = epoch_inputs(run, state, 0)
    warmup_steps = max(1, round(cfg.warmup_ratio * cfg.epochs * len(batches)))
    seen: dict = {}
    state.model.head.latent.register_forward_hook(lambda m, i, o: seen.update(x=i[0].detach().float(),
                                                                               f=o.detach().float()))
    state.train_model.train()
    losses, trace = [], []
    for step, idx in enumerate(batches[:steps], start=1):
        set_lr(state.optimizer, cosine_factor(min(step / warmup_steps, 1.0) * cfg.warmup_ratio, cfg.warmup_ratio))
        losses.append(train_step(run, state, inputs, idx).scoring)
        if step % 10 == 0 or step == min(steps, len(batches)):
            pooled = seen["x"].reshape(-1, seen["x"].shape[-1])
            trace.append((step, float(np.mean(losses[-10:])), float(pooled.std(0).mean()), float(seen["f"].std())))
    return {"trace": trace, "sample_pearson": sample_pearson(run, state), "precision": run.precision}


def parse_setting(text: str) -> tuple[str, dict]:
    """``KEY=VALUE`` -> (label, overrides), the value typed as ``solution.train --set`` types it."""
    from solution.config import parse_value
    from solution.phrase.config import PhraseTrainConfig

    key, _, raw = text.partition("=")
    return text, {key: parse_value(key, raw, PhraseTrainConfig)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting to compare (repeat for more; none = the default alone)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--model", help="backbone (default: the phrase matcher's default)")
    p.add_argument("--no-append", action="store_true", help="print the table only")
    args = p.parse_args()
    os.chdir(Path(__file__).resolve().parents[1])  # the default config's data/ and models/ are relative
    settings = [parse_setting(s) for s in args.settings] or [("default", {})]
    rows = []
    for seed in args.seeds:
        for label, overrides in settings:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.time()
                seen = watch_first_steps({"seed": seed, **overrides, **({"model": args.model} if args.model else {})},
                                         args.steps, Path(tmp))
            trace = "; ".join(f"{s}: {loss:.3f} / {spread:.3f}" for s, loss, spread, _ in seen["trace"][::2])
            last = seen["trace"][-1]
            rows.append([seed, label, f"{last[1]:.4f}", f"{last[2]:.4f}", f"{last[3]:.3f}",
                         f"{seen['sample_pearson']:.4f}", seen["precision"], f"{time.time() - start:.0f}", trace])
            print(" | ".join(map(str, rows[-1])), flush=True)
    table = markdown_table(["seed", "setting", "loss, last 10 steps", "pooled spread", "latent spread",
                            "sample val Pearson", "precision", "s", "step: loss / pooled spread"], rows)
    print(table)
    if not args.no_append:
        append_results("Phrase matcher: the first steps (feature collapse watch)", table)


if __name__ == "__main__":
    main()
