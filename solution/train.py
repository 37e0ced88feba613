"""Train the phrase matcher and write a Kaggle submission: ``python -m solution.train --help``.

    python -m solution.train                                   # packaged MiniLM, vendored data, CPU budget
    python -m solution.train --config configs/gpu.toml --model microsoft/deberta-v3-large --folds 5
    torchrun --nproc_per_node 4 -m solution.train --config configs/gpu.toml --out runs/big

Stops at ``--epochs`` or ``--budget-minutes``, whichever comes first; on the clock it finishes the
step, evaluates and still writes the whole submission. Each epoch is checkpointed and ``--resume``
continues an interrupted run. ``python -m solution.train embedder ...`` trains retrieval embedders.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from solution.runtime import tune_malloc

log = logging.getLogger("solution.train")


@dataclass
class Clock:
    """The run's wall-clock budget. ``offset`` carries time spent before a resume."""

    budget_s: float
    offset: float = 0.0
    start: float = field(default_factory=time.time)

    def elapsed(self) -> float:
        return time.time() - self.start + self.offset

    def left(self) -> float:
        return self.budget_s - self.elapsed()


def pearson(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def atomic_json(path: Path, data: dict) -> None:
    from inference.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, default=float) + "\n")


def atomic_torch_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def predict_scores(model, features, encoded, batch_size, device, precision, pad_id, progress: str = "") -> np.ndarray:
    """Scores in row order; rows are batched by length for speed."""
    import torch
    from tqdm.auto import tqdm

    from solution.data import collate, length_bucketed_batches
    from solution.precision import autocast

    preds = np.zeros(len(features), dtype=np.float32)
    batches = length_bucketed_batches([len(f["input_ids"]) for f in features], batch_size, None)
    model.eval()
    with torch.inference_mode():
        for idx in tqdm(batches, desc=progress, disable=not progress, leave=False, mininterval=5, dynamic_ncols=True):
            batch = {k: v.to(device) for k, v in collate(features, encoded, idx, pad_id).items() if k != "group_ids"}
            with autocast(precision, device):
                preds[idx] = model(**batch).float().cpu().numpy()
    return preds


def subset_by_anchor(table, max_rows: int, seed: int):
    """About ``max_rows`` rows made of whole anchors (groups stay intact for grouping and folds)."""
    anchors = sorted(set(table.columns["anchor"]))
    random.Random(seed).shuffle(anchors)
    rows_of: dict[str, list[int]] = {}
    for i, a in enumerate(table.columns["anchor"]):
        rows_of.setdefault(a, []).append(i)
    keep: list[int] = []
    for a in anchors:
        if len(keep) >= max_rows:
            break
        keep += rows_of[a]
    return table.subset(sorted(keep))


def train_fold(fold, cfg, ctx, fold_deadline, resume) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train one fold; returns (validation predictions, test predictions, fold metrics)."""
    import torch
    from tqdm.auto import tqdm

    from solution.data import collate, length_bucketed_batches, tokenize
    from solution.distributed import any_true, barrier
    from solution.losses import nt_xent_loss, smooth_k2_loss
    from solution.model import build_model
    from solution.optim import build_optimizer
    from solution.precision import autocast, grad_scaler
    from solution.runtime import peak_memory_mb, restore_rng_states, rng_states
    from solution.scheduler import cosine_factor, set_lr

    dist, device, precision = ctx["dist"], ctx["device"], ctx["precision"]
    tokenizer, template, train_enc = ctx["tokenizer"], ctx["template"], ctx["train_enc"]
    fold_dir = ctx["run_dir"] / f"fold{fold}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    train_idx = np.flatnonzero(ctx["folds"] != fold)
    val_idx = np.flatnonzero(ctx["folds"] == fold)
    from solution.data import encode_table

    vocab = ctx["vocab"]
    tr = encode_table(train_enc.table.subset(train_idx), vocab)
    va = encode_table(train_enc.table.subset(val_idx), vocab)
    scores = tr.table.columns["score"]
    val_features = tokenize(tokenizer, va.texts(template), cfg.max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    model = build_model(ctx["model_config"]).to(device)
    if cfg.contrastive_weight <= 0:  # keeps the unused projection out of the optimizer and the checkpoint
        model.span_projection.requires_grad_(False)
    model.head.init_from_prior([sum(1 for s in scores if abs(s - k / 4) < 1e-6) for k in range(5)])
    optimizer = build_optimizer(model, cfg.lr, cfg.head_lr, cfg.weight_decay)
    scaler = grad_scaler(precision, device)
    history: list[dict] = []
    start_epoch, step, train_time = 0, 0, 0.0
    val_pred = np.full(len(val_idx), np.nan, dtype=np.float32)
    ckpt_path = fold_dir / "checkpoint.pt"
    ctx_dropout = torch.Generator().manual_seed(cfg.seed + fold)
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"], strict=False)
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step, train_time = ckpt["epoch"], ckpt["step"], ckpt["train_time_s"]
        history, val_pred = ckpt["history"], ckpt["val_pred"]
        restore_rng_states(ckpt.get("rng"))
        if "ctx_dropout" in ckpt:
            ctx_dropout.set_state(ckpt["ctx_dropout"])
        log.info("fold %d: resuming after epoch %d (step %d)", fold, start_epoch, step)
    train_model = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: backbones may hold modules that never reach the loss (poolers, heads)
        train_model = DistributedDataParallel(model, device_ids=[torch.device(device).index] if "cuda" in device else None,
                                              find_unused_parameters=True)

    steps_per_epoch = math.ceil(math.ceil(len(tr.table) / cfg.batch_size) / dist.world_size)
    total_steps = max(1, cfg.epochs * steps_per_epoch)
    n_eval = len(val_idx) + len(ctx["test_enc"].table)
    # Inference speed, to reserve time for the final evaluation: timed on one real validation batch
    # now (the first training steps are too slow and noisy to extrapolate from), re-measured at every
    # epoch's evaluation.
    probe = list(range(min(len(val_features), cfg.eval_batch_size)))
    t0 = time.time()
    predict_scores(model, [val_features[i] for i in probe], va.subset_encoded(probe), cfg.eval_batch_size, device,
                   precision, pad_id)
    eval_rate = len(probe) / max(1e-6, time.time() - t0)
    stopped_by = "epochs"

    for epoch in range(start_epoch, cfg.epochs):
        rng = random.Random(cfg.seed * 1000 + fold * 100 + epoch)  # same on every process and on resume
        features = tokenize(tokenizer, tr.texts(template, rng), cfg.max_length)
        batches = length_bucketed_batches([len(f["input_ids"]) for f in features], cfg.batch_size, rng)
        if dist.enabled:  # every process gets the same number of batches (wrap around, drop nothing)
            per_rank = math.ceil(len(batches) / dist.world_size)
            batches = (batches * 2)[: per_rank * dist.world_size][dist.rank :: dist.world_size]
        train_model.train()
        epoch_start, seen, loss_sum, loss_n = time.time(), 0, 0.0, 0
        bar = tqdm(batches, desc=f"fold {fold} epoch {epoch + 1}/{cfg.epochs}", disable=not dist.is_main,
                   mininterval=1 if sys.stderr.isatty() else 30, dynamic_ncols=True)
        for idx in bar:
            now_train = train_time + time.time() - epoch_start
            eval_s, val_s = n_eval / eval_rate, len(val_idx) / eval_rate
            future_evals = (cfg.epochs - epoch - 1) * val_s
            time_left = fold_deadline - time.time() - eval_s - future_evals - 5.0
            time_progress = now_train / max(1e-6, now_train + max(time_left, 0.0))
            progress = max(step / total_steps, time_progress)
            set_lr(optimizer, cosine_factor(progress, cfg.warmup_ratio))

            batch = {k: v.to(device) for k, v in collate(features, tr, idx, pad_id, scores).items()}
            if cfg.context_dropout > 0 and cfg.cpc_fusion:
                hide = torch.rand(len(idx), generator=ctx_dropout) < cfg.context_dropout
                batch["class_ids"] = batch["class_ids"].masked_fill(hide.to(device), 0)
            target, group_ids = batch.pop("scores"), batch.pop("group_ids")
            with_spans = cfg.contrastive_weight > 0
            with autocast(precision, device):
                out = train_model(**batch, train_outputs=True, with_spans=with_spans)
            if cfg.loss == "mse":
                loss = torch.nn.functional.mse_loss(out["score"], target)
            else:
                loss = smooth_k2_loss(out["score"], target, cfg.k2_k, cfg.k2_thr)
            if with_spans:
                loss = loss + cfg.contrastive_weight * nt_xent_loss(
                    out["anchor_vec"], out["target_vec"], target, group_ids, cfg.contrastive_tau,
                    cfg.contrastive_min_score)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"fold {fold} step {step}: loss is {loss.item()}; lower --set lr=...")
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen += len(idx)
            loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
            pairs_s = seen * dist.world_size / max(1e-6, time.time() - epoch_start)
            lr_now = optimizer.param_groups[0]["lr"]
            bar.set_postfix(loss=f"{loss_sum / loss_n:.4f}", pairs_s=f"{pairs_s:.0f}", lr=f"{lr_now:.1e}", refresh=False)
            if dist.is_main and step % cfg.log_every == 0:
                with open(ctx["run_dir"] / "steps.jsonl", "a") as f:
                    f.write(json.dumps({"fold": fold, "epoch": epoch + 1, "step": step, "loss": loss_sum / loss_n,
                                        "lr": optimizer.param_groups[0]["lr"], "pairs_per_s": pairs_s,
                                        "elapsed_s": ctx["clock"].elapsed()}) + "\n")
            if any_true(time.time() >= fold_deadline - eval_s - 5.0, dist, device):
                stopped_by = "budget"
                break
        bar.close()
        epoch_train_s = time.time() - epoch_start
        train_time += epoch_train_s

        record = {"epoch": epoch + 1, "steps": step, "train_loss": loss_sum / max(1, loss_n),
                  "pairs_per_s": seen * dist.world_size / max(1e-6, epoch_train_s), "train_s": epoch_train_s}
        if dist.is_main:
            t0 = time.time()
            val_pred = predict_scores(model, val_features, va, cfg.eval_batch_size, device, precision, pad_id)
            eval_rate = len(val_idx) / max(1e-6, time.time() - t0)
            record.update(val_pearson=pearson(val_pred, va.table.columns["score"]), eval_pairs_per_s=eval_rate,
                          wall_s=ctx["clock"].elapsed(), stopped_by=stopped_by, **peak_memory_mb(device))
            history.append(record)
            log.info("fold %d epoch %d: loss %.4f  val Pearson %.4f  %.0f pairs/s", fold, epoch + 1,
                     record["train_loss"], record["val_pearson"], record["pairs_per_s"])
            atomic_torch_save({"epoch": epoch + 1, "step": step, "train_time_s": train_time, "history": history,
                               "val_pred": val_pred, "model": model.trainable_state_dict(),
                               "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                               "rng": rng_states(), "ctx_dropout": ctx_dropout.get_state()}, ckpt_path)
            ctx["on_epoch"](fold, history)
        barrier(dist)
        if stopped_by == "budget":
            break

    test_pred = np.zeros(len(ctx["test_enc"].table), dtype=np.float32)
    if dist.is_main:
        test_features = tokenize(tokenizer, ctx["test_enc"].texts(template), cfg.max_length)
        test_pred = predict_scores(model, test_features, ctx["test_enc"], cfg.eval_batch_size, device, precision, pad_id)
        atomic_torch_save(model.trainable_state_dict(), fold_dir / "trainable_state.pt")
    fold_metrics = {"epochs": history, "val_pearson": history[-1]["val_pearson"] if history else float("nan"),
                    "stopped_by": stopped_by, "n_train": len(train_idx), "n_val": len(val_idx)}
    return val_pred, test_pred, fold_metrics


def open_run_state(run_dir: Path, resume: bool) -> tuple[float, dict | None]:
    """(seconds the run already spent, its metrics if it is already complete).

    A run folder is never silently reused: without ``resume`` an existing run is an error.
    """
    state_path = run_dir / "run_state.json"
    if not resume:
        if state_path.exists():
            raise SystemExit(f"{run_dir} already holds a run: pass --resume to continue it, or another --out")
        return 0.0, None
    if not state_path.exists():
        raise SystemExit(f"--resume: {run_dir} has no run_state.json to resume from")
    state = json.loads(state_path.read_text())
    if state.get("complete"):
        log.info("%s is already complete; nothing to resume", run_dir)
        return state["elapsed_s"], json.loads((run_dir / "metrics.json").read_text())
    return state["elapsed_s"], None  # the budget covers the whole run, interruptions included


def run(cfg, resume: bool = False) -> dict:
    """Train every fold of ``cfg`` and write the run folder and the submission; returns the metrics."""
    import torch
    from transformers import AutoTokenizer

    from inference.io import write_scores
    from inference.template import InputTemplate
    from solution.data import encode_table, load_uspppm, make_folds
    from solution.distributed import barrier, cleanup, init_distributed
    from solution.model import resolve_model_path
    from solution.precision import resolve_precision
    from solution.runtime import pick_device, seed_everything

    device = pick_device(cfg.device)
    dist = init_distributed(device)
    if device == "cuda":
        device = f"cuda:{dist.local_rank}"
    precision = resolve_precision(cfg.precision, device)
    run_dir = Path(cfg.out) if cfg.out else Path("runs") / time.strftime("phrase-%Y%m%d-%H%M%S")
    if dist.enabled and not cfg.out:  # one name for every process
        import torch.distributed as tdist

        holder = [str(run_dir)]
        tdist.broadcast_object_list(holder, src=0)
        run_dir = Path(holder[0])
    state_path = run_dir / "run_state.json"
    offset, finished = open_run_state(run_dir, resume)
    if finished is not None:
        return finished
    clock = Clock(cfg.budget_minutes * 60, offset)
    seed_everything(cfg.seed)
    torch.set_num_threads(torch.get_num_threads())

    train, test, vocab = load_uspppm(cfg.data)
    if cfg.test_csv:
        from inference.io import read_pairs

        test = read_pairs(cfg.test_csv)
    if cfg.max_train_rows:
        train = subset_by_anchor(train, cfg.max_train_rows, cfg.seed)
    train_enc, test_enc = encode_table(train, vocab), encode_table(test, vocab)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(cfg.model), use_fast=True)
    template = InputTemplate(sep_token=tokenizer.sep_token, use_title=cfg.use_title, group_targets=cfg.group_targets)
    model_config = cfg.model_config((vocab.num_sections, vocab.num_classes), tokenizer.sep_token_id, tokenizer.cls_token_id)
    folds = make_folds(train, cfg.n_splits, cfg.seed)
    if cfg.folds > cfg.n_splits:
        raise SystemExit(f"--folds {cfg.folds} is more than n_splits={cfg.n_splits}")
    submission = Path(cfg.submission) if cfg.submission else Path("submissions") / run_dir.name / "submission.csv"

    metrics: dict = {"run": run_dir.name, "device": device, "precision": precision, "world_size": dist.world_size,
                     "folds": {}, "budget_minutes": cfg.budget_minutes}
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(run_dir / "tokenizer")
        vocab.save(run_dir / "cpc_vocab.json")
        atomic_json(run_dir / "template.json", template.to_dict())
        atomic_json(run_dir / "model_config.json", model_config.to_dict())
        atomic_json(run_dir / "config.json", cfg.to_dict())
        if resume and (run_dir / "metrics.json").exists():
            metrics = json.loads((run_dir / "metrics.json").read_text())

    def save_state(complete: bool = False) -> None:
        if dist.is_main:
            atomic_json(state_path, {"config": cfg.to_dict(), "elapsed_s": clock.elapsed(), "complete": complete})
            atomic_json(run_dir / "metrics.json", metrics)

    def on_epoch(fold: int, history: list[dict]) -> None:
        metrics["folds"][str(fold)] = {"epochs": history}
        save_state()

    save_state()
    barrier(dist)
    ctx = {"dist": dist, "device": device, "precision": precision, "tokenizer": tokenizer, "template": template,
           "train_enc": train_enc, "test_enc": test_enc, "vocab": vocab, "folds": folds, "run_dir": run_dir,
           "model_config": model_config, "clock": clock, "on_epoch": on_epoch}
    oof = np.full(len(train), np.nan, dtype=np.float32)
    test_preds = []
    for fold in range(cfg.folds):
        fold_dir = run_dir / f"fold{fold}"
        if (fold_dir / "done.json").exists():
            done = np.load(fold_dir / "predictions.npz")
            oof[folds == fold], test_preds = done["val"], test_preds + [done["test"]]
            metrics["folds"][str(fold)] = json.loads((fold_dir / "done.json").read_text())
            continue
        fold_deadline = time.time() + clock.left() / (cfg.folds - fold)
        val_pred, test_pred, fold_metrics = train_fold(fold, cfg, ctx, fold_deadline, resume)
        oof[folds == fold] = val_pred
        test_preds.append(test_pred)
        metrics["folds"][str(fold)] = fold_metrics
        if dist.is_main:
            np.savez(fold_dir / "predictions.npz", val=val_pred, test=test_pred)
            atomic_json(fold_dir / "done.json", fold_metrics)
        save_state()

    if dist.is_main:
        scored = ~np.isnan(oof)
        labels = np.asarray(train.columns["score"], dtype=np.float32)
        metrics["oof_pearson"] = pearson(oof[scored], labels[scored])
        metrics["fold_pearson"] = {k: v["val_pearson"] for k, v in metrics["folds"].items()}
        metrics["wall_s"] = clock.elapsed()
        metrics["submission"] = str(submission)
        write_scores(submission, test.ids, np.mean(test_preds, axis=0))
        write_oof(run_dir / "oof.csv", train, folds, oof)
        save_state(complete=True)
        log.info("validation Pearson (out-of-fold, %d fold(s)): %.4f", cfg.folds, metrics["oof_pearson"])
        log.info("submission: %s   run: %s   wall: %.0f s", submission, run_dir, metrics["wall_s"])
        print(f"validation Pearson: {metrics['oof_pearson']:.4f}")
        print(f"submission written: {submission}")
    barrier(dist)
    cleanup(dist)
    return metrics


def write_oof(path: Path, table, folds: np.ndarray, oof: np.ndarray) -> None:
    import csv
    import io

    from inference.io import atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "anchor", "target", "context", "score", "fold", "pred"])
    cols = table.columns
    for i in range(len(table)):
        if not np.isnan(oof[i]):
            writer.writerow([cols["id"][i], cols["anchor"][i], cols["target"][i], cols["context"][i],
                             cols["score"][i], int(folds[i]), f"{oof[i]:.6f}"])
    atomic_write_text(path, buffer.getvalue())


def parse_args(argv: list[str]) -> argparse.Namespace:
    from solution.config import config_reference

    p = argparse.ArgumentParser(
        prog="python -m solution.train", description=__doc__, epilog=config_reference(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML or YAML file with config keys (presets in configs/)")
    p.add_argument("--model", help="backbone: Hugging Face id or local folder")
    p.add_argument("--data", help="data folder (uspppm/ and cpc/ inside)")
    p.add_argument("--out", help="run folder, e.g. runs/NAME")
    p.add_argument("--epochs", type=int, help="epoch budget")
    p.add_argument("--budget-minutes", type=float, dest="budget_minutes", help="wall-clock budget of the whole run")
    p.add_argument("--folds", type=int, help="number of folds to train (test predictions are averaged)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (or the newest in runs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config key")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "embedder":
        from solution.embedder.train import main as embedder_main

        return embedder_main(argv[1:])
    tune_malloc()  # before torch allocates anything
    from solution.config import build_config, parse_value

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {k: getattr(args, k) for k in ("model", "data", "out", "epochs", "budget_minutes", "folds", "device", "seed")}
    for item in args.set:
        key, _, raw = item.partition("=")
        overrides[key.strip()] = parse_value(key.strip(), raw.strip())
    if args.resume:
        if not overrides.get("out"):
            runs = sorted(Path("runs").glob("*/run_state.json"), key=lambda p: p.stat().st_mtime)
            if not runs:
                raise SystemExit("--resume: no run in runs/ to continue; pass --out runs/NAME")
            overrides["out"] = str(runs[-1].parent)
        state_path = Path(overrides["out"]) / "run_state.json"
        if not state_path.exists():
            raise SystemExit(f"--resume: {state_path} does not exist")
        # the run's own config, changed only where this command line says so explicitly
        saved = json.loads(state_path.read_text())["config"]
        cfg = build_config(args.config, {**saved, **{k: v for k, v in overrides.items() if v is not None}})
    else:
        cfg = build_config(args.config, overrides)
    from inference.io import DataError

    try:
        run(cfg, resume=args.resume)
    except DataError as err:
        raise SystemExit(f"data error: {err}") from None


if __name__ == "__main__":
    main()
