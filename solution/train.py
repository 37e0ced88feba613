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


def load_checkpoint(path: Path) -> dict:
    """A checkpoint of this project: tensors and plain values only, never a pickle that could run code."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise SystemExit(f"{path}: refused to load, it holds more than tensors and plain values "
                         f"(a planted or foreign file?): {str(err).splitlines()[0]}") from None


def predict_scores(model, inputs, names: list[str], batch_size: int, device: str, precision: str, pad_id: int,
                   progress: str = "", only: list[int] | None = None) -> np.ndarray:
    """Scores in row order (NaN for rows of sequences not in ``only``); sequences are batched by length."""
    import torch
    from tqdm.auto import tqdm

    from solution.data import collate, length_bucketed_batches
    from solution.precision import autocast

    preds = np.full(inputs.n_rows, np.nan, dtype=np.float32)
    order = list(range(len(inputs))) if only is None else only
    batches = [[order[i] for i in b] for b in length_bucketed_batches([len(inputs.ids[i]) for i in order], batch_size, None)]
    model.eval()
    with torch.inference_mode():
        for idx in tqdm(batches, desc=progress, disable=not progress, leave=False, mininterval=5, dynamic_ncols=True):
            batch = {k: v.to(device) for k, v in collate(inputs, idx, pad_id, names).items() if k != "group_ids"}
            with autocast(precision, device):
                out = model(**batch, num_slots=max(len(inputs.rows[i]) for i in idx))
            inputs.scatter(idx, out.float().cpu().numpy(), preds)
    if only is None and np.isnan(preds).any():  # every row is in exactly one sequence: a NaN is a bug, not data
        raise RuntimeError(f"{int(np.isnan(preds).sum())} row(s) got no score")
    return preds


def score_loss(cfg, out: dict, target, mask, group_ids):
    """The training loss of one batch: the score loss over real target slots (+ NT-Xent when on).

    NT-Xent pairs: each real slot's target span with its own sequence's anchor span; positives are
    slots scored >= ``contrastive_min_score``; the negatives are the targets (and anchors) of the other
    anchor+context groups in the batch. Targets of the same group are masked out, not used as
    negatives: siblings of a positive are often close matches too.
    """
    import torch
    import torch.nn.functional as F

    from solution.losses import nt_xent_loss, smooth_k2_loss

    pred, label = out["score"].reshape(mask.shape)[mask], target[mask]
    if cfg.loss == "mse":
        loss = F.mse_loss(pred, label)
    elif cfg.loss == "bce":
        loss = F.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), label)
    else:
        loss = smooth_k2_loss(pred, label, cfg.k2_k, cfg.k2_thr)
    if cfg.contrastive_weight > 0:
        anchor = out["anchor_vec"][:, None, :].expand(*mask.shape, -1)[mask]
        targets = out["target_vec"].reshape(*mask.shape, -1)[mask]
        groups = group_ids[:, None].expand(mask.shape)[mask]
        loss = loss + cfg.contrastive_weight * nt_xent_loss(anchor, targets, label, groups, cfg.contrastive_tau,
                                                            cfg.contrastive_min_score)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()}; lower --set lr=...")
    return loss


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


def level_counts(scores) -> list[int]:
    return [sum(1 for s in scores if abs(s - k / 4) < 1e-6) for k in range(5)]


def train_fold(fold, cfg, ctx, fold_deadline, resume) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train one fold; returns (validation predictions, test predictions, fold metrics)."""
    import torch
    from tqdm.auto import tqdm

    from solution.data import collate, length_bucketed_batches, model_input_names
    from solution.distributed import any_true, barrier
    from solution.model import build_model
    from solution.optim import build_optimizer
    from solution.precision import autocast, grad_scaler
    from solution.runtime import peak_memory_mb, restore_rng_states, rng_states
    from solution.scheduler import cosine_factor, set_lr

    dist, device, precision, pre = ctx["dist"], ctx["device"], ctx["precision"], ctx["preprocess"]
    fold_dir = ctx["run_dir"] / f"fold{fold}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    train_idx = np.flatnonzero(ctx["folds"] != fold)
    val_idx = np.flatnonzero(ctx["folds"] == fold)
    tr_table, tr_ctx = ctx["train"].subset(train_idx), ctx["train_contexts"].subset(train_idx)
    va_table = ctx["train"].subset(val_idx)
    va = pre.build(va_table, ctx["train_contexts"].subset(val_idx))
    scores = tr_table.columns["score"]
    pad_id = pre.encoder.pad_id

    model = build_model(ctx["model_config"]).to(device)
    names = model_input_names(model, cfg.layout)
    if cfg.contrastive_weight <= 0:  # keeps the unused projection out of the optimizer and the checkpoint
        model.span_projection.requires_grad_(False)
    model.head.init_from_prior(level_counts(scores))
    optimizer = build_optimizer(model, cfg.lr, cfg.head_lr, cfg.weight_decay)
    scaler = grad_scaler(precision, device)
    history: list[dict] = []
    start_epoch, step, train_time = 0, 0, 0.0
    val_pred = np.full(len(val_idx), np.nan, dtype=np.float32)
    ckpt_path = fold_dir / "checkpoint.pt"
    ctx_dropout = torch.Generator().manual_seed(cfg.seed + fold)
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"], strict=False)
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step, train_time = ckpt["epoch"], ckpt["step"], ckpt["train_time_s"]
        history, val_pred = ckpt["history"], ckpt["val_pred"].numpy()
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

    def epoch_inputs(epoch: int):
        rng = random.Random(cfg.seed * 1000 + fold * 100 + epoch)  # same on every process and on resume
        inputs = pre.build(tr_table, tr_ctx, rng, cfg.small_chunk_prob)
        return inputs, length_bucketed_batches([len(ids) for ids in inputs.ids], cfg.batch_size, rng)

    # the multi layout redraws its chunks every epoch, so the first epoch's count stands for all
    steps_per_epoch = math.ceil(len(epoch_inputs(0)[1]) / dist.world_size)
    total_steps = max(1, cfg.epochs * steps_per_epoch)
    n_eval = len(val_idx) + len(ctx["test"])
    # Inference speed, to reserve time for the final evaluation: timed on one real validation batch
    # now (the first training steps are too slow and noisy to extrapolate from), re-measured at every
    # epoch's evaluation. Rates are in rows (pairs) per second.
    probe = list(range(min(len(va), cfg.eval_batch_size)))
    t0 = time.time()
    predict_scores(model, va, names, cfg.eval_batch_size, device, precision, pad_id, only=probe)
    eval_rate = sum(len(va.rows[i]) for i in probe) / max(1e-6, time.time() - t0)
    stopped_by = "epochs"

    for epoch in range(start_epoch, cfg.epochs):
        inputs, batches = epoch_inputs(epoch)
        if dist.enabled:  # every process gets the same number of batches (wrap around, drop nothing)
            per_rank = math.ceil(len(batches) / dist.world_size)
            batches = (batches * 2)[: per_rank * dist.world_size][dist.rank :: dist.world_size]
        train_model.train()
        epoch_start, seen, seen_seqs, loss_sum, loss_n = time.time(), 0, 0, 0.0, 0
        bar = tqdm(batches, desc=f"fold {fold} epoch {epoch + 1}/{cfg.epochs}", disable=not dist.is_main,
                   mininterval=1 if sys.stderr.isatty() else 30, dynamic_ncols=True)
        for idx in bar:
            now_train = train_time + time.time() - epoch_start
            eval_s, val_s = n_eval / eval_rate, len(val_idx) / eval_rate
            future_evals = (cfg.epochs - epoch - 1) * val_s
            time_left = fold_deadline - time.time() - eval_s - future_evals - 5.0
            time_progress = now_train / max(1e-6, now_train + max(time_left, 0.0))
            set_lr(optimizer, cosine_factor(max(step / total_steps, time_progress), cfg.warmup_ratio))

            batch = {k: v.to(device) for k, v in collate(inputs, idx, pad_id, names, scores).items()}
            if cfg.context_dropout > 0 and cfg.cpc_fusion:
                hide = torch.rand(len(idx), generator=ctx_dropout) < cfg.context_dropout
                batch["class_ids"] = batch["class_ids"].masked_fill(hide.to(device), 0)
            target, mask, group_ids = batch.pop("scores"), batch.pop("target_mask"), batch.pop("group_ids")
            with autocast(precision, device):
                out = train_model(**batch, train_outputs=True, with_spans=cfg.contrastive_weight > 0,
                                  num_slots=mask.shape[1])
            loss = score_loss(cfg, out, target, mask, group_ids)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen, seen_seqs = seen + int(mask.sum()), seen_seqs + len(idx)
            loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
            pairs_s = seen * dist.world_size / max(1e-6, time.time() - epoch_start)
            lr_now = optimizer.param_groups[0]["lr"]
            bar.set_postfix(loss=f"{loss_sum / loss_n:.4f}", pairs_s=f"{pairs_s:.0f}", lr=f"{lr_now:.1e}", refresh=False)
            if dist.is_main and step % cfg.log_every == 0:
                with open(ctx["run_dir"] / "steps.jsonl", "a") as f:
                    f.write(json.dumps({"fold": fold, "epoch": epoch + 1, "step": step, "loss": loss_sum / loss_n,
                                        "lr": lr_now, "pairs_per_s": pairs_s, "elapsed_s": ctx["clock"].elapsed()}) + "\n")
            if any_true(time.time() >= fold_deadline - eval_s - 5.0, dist, device):
                stopped_by = "budget"
                break
        bar.close()
        epoch_train_s = time.time() - epoch_start
        train_time += epoch_train_s

        record = {"epoch": epoch + 1, "steps": step, "train_loss": loss_sum / max(1, loss_n),
                  "pairs_per_s": seen * dist.world_size / max(1e-6, epoch_train_s),
                  "sequences_per_s": seen_seqs * dist.world_size / max(1e-6, epoch_train_s), "train_s": epoch_train_s}
        if dist.is_main:
            t0 = time.time()
            val_pred = predict_scores(model, va, names, cfg.eval_batch_size, device, precision, pad_id)
            eval_rate = len(val_idx) / max(1e-6, time.time() - t0)
            record.update(val_pearson=pearson(val_pred, va_table.columns["score"]), eval_pairs_per_s=eval_rate,
                          wall_s=ctx["clock"].elapsed(), stopped_by=stopped_by, **peak_memory_mb(device))
            history.append(record)
            log.info("fold %d epoch %d: loss %.4f  val Pearson %.4f  %.0f pairs/s", fold, epoch + 1,
                     record["train_loss"], record["val_pearson"], record["pairs_per_s"])
            atomic_torch_save({"epoch": epoch + 1, "step": step, "train_time_s": train_time, "history": history,
                               "val_pred": torch.from_numpy(val_pred), "model": model.trainable_state_dict(),
                               "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                               "rng": rng_states(), "ctx_dropout": ctx_dropout.get_state()}, ckpt_path)
            ctx["on_epoch"](fold, history)
        barrier(dist)
        if stopped_by == "budget":
            break

    test_pred = np.zeros(len(ctx["test"]), dtype=np.float32)
    if dist.is_main:
        test_inputs = pre.build(ctx["test"], ctx["test_contexts"])
        test_pred = predict_scores(model, test_inputs, names, cfg.eval_batch_size, device, precision, pad_id)
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

    from inference.inputs import TableContexts
    from inference.io import write_scores
    from inference.template import InputTemplate
    from solution.data import load_uspppm, make_folds, preprocessor
    from solution.distributed import barrier, cleanup, init_distributed
    from solution.model import resolve_model_path
    from solution.precision import resolve_precision_with_probe
    from solution.runtime import flush_denormals, pick_device, seed_everything

    device = pick_device(cfg.device)
    dist = init_distributed(device)
    if device == "cuda":
        device = f"cuda:{dist.local_rank}"
    precision, precision_probe = resolve_precision_with_probe(cfg.precision, device)
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
    flush_denormals()
    torch.set_num_threads(torch.get_num_threads())

    train, test, vocab = load_uspppm(cfg.data)
    if cfg.test_csv:
        from inference.io import read_pairs

        test = read_pairs(cfg.test_csv)
    if cfg.max_train_rows:
        train = subset_by_anchor(train, cfg.max_train_rows, cfg.seed)
    train_contexts, test_contexts = TableContexts.of(train, vocab), TableContexts.of(test, vocab)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(cfg.model), use_fast=True)
    template = InputTemplate(sep_token=tokenizer.sep_token, cls_token=tokenizer.cls_token, use_title=cfg.use_title,
                             group_targets=cfg.group_targets, layout=cfg.layout, max_targets=cfg.max_targets)
    pre = preprocessor(tokenizer, template, vocab, cfg.max_length)
    model_config = cfg.model_config((vocab.num_sections, vocab.num_classes), tokenizer.sep_token_id, tokenizer.cls_token_id)
    folds = make_folds(train, cfg.n_splits, cfg.seed)
    if cfg.folds > cfg.n_splits:
        raise SystemExit(f"--folds {cfg.folds} is more than n_splits={cfg.n_splits}")
    submission = Path(cfg.submission) if cfg.submission else Path("submissions") / run_dir.name / "submission.csv"

    metrics: dict = {"run": run_dir.name, "device": device, "precision": precision, "precision_probe": precision_probe,
                     "layout": cfg.layout, "world_size": dist.world_size, "folds": {}, "budget_minutes": cfg.budget_minutes}
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
    ctx = {"dist": dist, "device": device, "precision": precision, "preprocess": pre, "train": train,
           "train_contexts": train_contexts, "test": test, "test_contexts": test_contexts, "folds": folds,
           "run_dir": run_dir, "model_config": model_config, "clock": clock, "on_epoch": on_epoch}
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
