"""Train a patent retrieval embedder: ``python -m solution.train embedder --help``.

    python -m solution.train embedder --corpus data/patents/a61_patents.csv --out runs/retrieval   # retrieval preset
    python -m solution.train embedder --config configs/embedder-classify.toml --out runs/classify
    python -m solution.train embedder --recipe mqg --budget-minutes 30 --out runs/mqg
    python -m solution.train embedder --out runs/retrieval --resume      # continue after an interruption
    python -m solution.train embedder --resume                           # the newest embedder run

Recipes: ``mqg`` synthetic query -> patent (MNRL with in-batch negatives, plus BM25 hard negatives when
``hard_negatives`` > 0; the presets keep it at 0); ``align`` title
<-> abstract (and abstract <-> claims where present) of the same patent; ``cpc`` supervised contrastive
on CPC subclasses; ``combined`` a weighted sum (the default: queries + title <-> abstract, which is
configs/embedder-retrieval.toml). Stops at ``--epochs`` or ``--budget-minutes``, whichever
comes first, checkpointing every few minutes; the run folder holds embedder_config.json,
trainable_state.pt (LoRA), tokenizer/, split.json, queries.jsonl, metrics.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solution.run_folder import (
    Clock,
    RunFolder,
    add_common_options,
    atomic_json,
    atomic_torch_save,
    load_checkpoint,
    run_from_cli,
)

log = logging.getLogger("solution.embedder.train")


def _positives_by_text(texts: list[str]) -> dict[str, set[int]]:
    """Documents with identical text are each other's positives (duplicates in a corpus happen)."""
    groups: dict[str, set[int]] = {}
    for i, t in enumerate(texts):
        groups.setdefault(t.strip().lower(), set()).add(i)
    return groups


class TrainingData:
    """The training patents' texts, queries and mined negatives, indexed by training position."""

    def __init__(self, cfg, patents, run_dir: Path, corpus=None):
        from inference.retrieval.bm25 import Bm25Index
        from solution.embedder.ict import ROLE as ICT_ROLE
        from solution.embedder.negatives import fill_random_negatives, mine_hard_negatives

        self.patents = patents
        self.doc_view = cfg.train_doc_view or cfg.doc_view  # what training encodes; the run keeps doc_view
        self.docs = [p.view(self.doc_view) for p in patents]
        self.titles = [p.title for p in patents]
        self.groups = [p.subclasses[0] if p.subclasses else "" for p in patents]  # main classification
        # the same text as view("abstract") (trailing period normalised), so with abstract training documents the
        # alignment loss always finds the query loss's encoding and a batch encodes its abstracts once
        # (docs/decisions/embedder-training-documents.md)
        self.abstracts = [p.view("abstract") for p in patents]
        codes = sorted({c for p in patents for c in p.subclasses})
        self.labels = np.zeros((len(patents), max(1, len(codes))), dtype=bool)
        for i, p in enumerate(patents):
            for c in p.subclasses:
                self.labels[i, codes.index(c)] = True
        weights = cfg.loss_weights()
        n_neg = cfg.hard_negatives
        dup_docs = _positives_by_text(self.docs)
        self.queries: dict[str, list[str]] = {}
        self.query_negs: dict[str, list[list[int]]] = {}
        if "mqg" in weights:
            from solution.embedder.queries import cached_queries, make_generator

            # fitted on the whole corpus (TF-IDF statistics only), so training and evaluation queries
            # come from one and the same generator
            gen = make_generator(cfg.generator, corpus or patents, seed=cfg.seed, subclass_titles=cfg.cpc_titles,
                                 typo_rate=cfg.typo_rate)
            generated = [r for r in cfg.roles if r != ICT_ROLE]  # ict queries are drawn per step, not generated
            qs = cached_queries(gen, patents, run_dir / "queries.jsonl", generated)
            bm25 = Bm25Index.build(self.docs) if n_neg else None
            for role in generated:
                texts = [q.text for q in qs if q.role == role]
                self.queries[role] = texts
                if bm25 is not None:
                    pos = [dup_docs[self.docs[i].strip().lower()] for i in range(len(patents))]
                    negs = mine_hard_negatives(bm25, texts, pos, cfg.negative_top_k, n_neg, cfg.negative_skip_top,
                                               docs=self.docs, max_overlap=cfg.negative_max_overlap)
                    self.query_negs[role] = fill_random_negatives(negs, pos, len(patents), n_neg, cfg.seed)
        self.align_negs: list[list[int]] = []
        if "align" in weights and n_neg:
            bm25 = Bm25Index.build(self.abstracts)
            dup_abs = _positives_by_text(self.abstracts)
            pos = [dup_abs[a.strip().lower()] for a in self.abstracts]
            negs = mine_hard_negatives(bm25, self.titles, pos, cfg.negative_top_k, n_neg, cfg.negative_skip_top,
                                       docs=self.abstracts, max_overlap=cfg.negative_max_overlap)
            self.align_negs = fill_random_negatives(negs, pos, len(patents), n_neg, cfg.seed)


def epoch_batches(n: int, batch_size: int, seed: int, groups: list[str] | None = None) -> list[np.ndarray]:
    """One epoch's batches of training positions; with ``groups`` (a key per patent) the patents of one
    group are kept together, so in-batch negatives come from the same field: harder, like the
    distractors of a search in that field. Batch order is shuffled either way.

    >>> sorted(sorted(set("abbaba"[i] for i in b)) for b in epoch_batches(6, 3, 0, groups=list("abbaba")))
    [['a'], ['b']]
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if groups is not None:
        keys = sorted(set(groups))
        rank = {k: r for k, r in zip(keys, rng.permutation(len(keys)))}
        order = np.array(sorted(order, key=lambda i: rank[groups[i]]), dtype=order.dtype)  # stable: shuffled within
    batches = [order[s:s + batch_size] for s in range(0, n, batch_size)]
    batches = [b for b in batches if len(b) > 1]  # a lone row has no in-batch negatives
    if groups is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def step_loss(model, data: TrainingData, idx: np.ndarray, cfg, weights: dict[str, float], rng: random.Random,
              tokenizer, device: str, precision: str) -> tuple:
    """The weighted loss of one batch of training patents ``idx`` and its parts (floats)."""
    import torch

    from solution.embedder.ict import ROLE as ICT_ROLE
    from solution.embedder.ict import inverse_cloze
    from solution.embedder.losses import mnrl_loss, supcon_loss
    from solution.precision import autocast

    # every batch of vectors this step encodes, with the training patent each row belongs to: the CPC
    # loss can span them all (a query carries its patent's subclasses) at no extra encoding cost
    encoded: list[tuple[torch.Tensor, list[int]]] = []
    # a list of texts is encoded once per step: when training documents are the abstracts (train_doc_view or
    # doc_view "abstract") the alignment loss reuses the query loss's documents, the expensive half of a CPU step
    cache: dict[tuple, torch.Tensor] = {}

    def enc(texts: list[str], max_length: int, owners: list[int]):
        key = (max_length, *texts)
        if key not in cache:
            batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            with autocast(precision, device):
                cache[key] = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            encoded.append((cache[key], owners))
        return cache[key]

    ids = torch.as_tensor(idx, device=device)
    parts: dict[str, torch.Tensor] = {}
    doc_vecs = None
    if "mqg" in weights:
        losses = []
        # distinct roles per patent: more query signal for each (expensive) document encoding
        for roles in zip(*(rng.sample(cfg.roles, cfg.queries_per_patent) for _ in idx)):
            pairs = [inverse_cloze(data.patents[i], data.doc_view, rng) if r == ICT_ROLE else (data.queries[r][i], data.docs[i])
                     for r, i in zip(roles, idx)]
            q = enc([query for query, _ in pairs], cfg.query_max_length, list(idx))
            doc_vecs = enc([doc for _, doc in pairs], cfg.train_max_length, list(idx))
            negs = [n for r, i in zip(roles, idx) for n in (data.query_negs[r][i] if r in data.query_negs else [])]
            neg_vecs = enc([data.docs[n] for n in negs], cfg.train_max_length, negs) if negs else None
            losses.append(mnrl_loss(q, doc_vecs, neg_vecs, doc_ids=ids, scale=cfg.scale))
        parts["mqg"] = sum(losses) / len(losses)
    if "align" in weights:
        t = enc([data.titles[i] for i in idx], cfg.query_max_length, list(idx))
        a = enc([data.abstracts[i] for i in idx], cfg.train_max_length, list(idx))
        negs = [n for i in idx for n in (data.align_negs[i] if data.align_negs else [])]
        neg_vecs = enc([data.abstracts[n] for n in negs], cfg.train_max_length, negs) if negs else None
        loss = mnrl_loss(t, a, neg_vecs, doc_ids=ids, scale=cfg.scale, symmetric=True)
        with_claims = [i for i in idx if data.patents[i].claims]
        if with_claims:  # abstract <-> claims, where the corpus has claims
            ca = enc([data.abstracts[i] for i in with_claims], cfg.train_max_length, with_claims)
            cc = enc([data.patents[i].claims for i in with_claims], cfg.train_max_length, with_claims)
            loss = (loss + mnrl_loss(ca, cc, scale=cfg.scale, symmetric=True)) / 2
        parts["align"] = loss
    if "cpc" in weights:
        if doc_vecs is None:
            doc_vecs = enc([data.docs[i] for i in idx], cfg.train_max_length, list(idx))
        if not cfg.cpc_all_views:
            encoded = [(doc_vecs, list(idx))]
        rows = [i for _, owners in encoded for i in owners]
        labels = torch.as_tensor(data.labels[rows], device=device)
        parts["cpc"] = supcon_loss(torch.cat([v for v, _ in encoded]), labels, cfg.supcon_tau)
    total = sum(weights[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def quick_validation(model, tokenizer, heldout, cfg, device: str, precision: str) -> dict[str, float]:
    """title -> abstract known-item nDCG@10 / MRR@10 on a fixed sample of held-out patents."""
    from solution.embedder.metrics import RECALL_KS, ir_metrics
    from solution.embedder.model import encode_texts

    if not cfg.val_patents or not heldout:
        return {}
    sample = heldout[: cfg.val_patents]
    q = encode_texts(model, tokenizer, [p.title for p in sample], cfg.query_max_length, cfg.eval_batch_size, device,
                     precision)
    d = encode_texts(model, tokenizer, [p.abstract for p in sample], cfg.max_length, cfg.eval_batch_size, device,
                     precision)
    ks = [k for k in RECALL_KS if k < len(sample)] or [1]  # recall@k of the whole sample says nothing
    m = ir_metrics(q @ d.T, [{i: 1.0} for i in range(len(sample))], ks=ks, ndcg_ks=(10,), mrr_ks=(10,))
    model.train()
    return {f"val_title2abstract_{k}": v for k, v in m.items()}


@dataclass
class EmbedderRun:
    """One embedder run: config, model, data, optimizer, folder and where training stands."""

    cfg: Any
    device: str
    precision: str
    folder: RunFolder
    clock: Clock
    model: Any
    tokenizer: Any
    data: TrainingData
    heldout: list
    optimizer: Any
    metrics: dict
    start_epoch: int = 0
    start_batch: int = 0
    step: int = 0

    def save_state(self, complete: bool = False) -> None:
        self.folder.save_state(self.cfg.to_dict(), self.clock.elapsed(), complete, self.metrics)

    def checkpoint(self, epoch: int, batch: int) -> None:
        """Everything a resume needs, written atomically; the run state with it."""
        from solution.runtime import rng_states

        atomic_torch_save({"epoch": epoch, "batch": batch, "step": self.step, "metrics": self.metrics,
                           "model": self.model.trainable_state_dict(), "optimizer": self.optimizer.state_dict(),
                           "rng": rng_states()}, self.folder.path / "checkpoint.pt")
        self.save_state()

    def restore(self) -> None:
        from solution.runtime import restore_rng_states

        ckpt = load_checkpoint(self.folder.path / "checkpoint.pt")
        self.model.load_state_dict(ckpt["model"], strict=False)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.start_epoch, self.start_batch, self.step, self.metrics = ckpt["epoch"], ckpt["batch"], ckpt["step"], \
            ckpt["metrics"]
        restore_rng_states(ckpt.get("rng"))
        log.info("resuming at epoch %d, batch %d (step %d)", self.start_epoch + 1, self.start_batch, self.step)


def check_config(cfg) -> dict[str, float]:
    """The recipe's loss weights; a clear error for settings that cannot work together."""
    weights = cfg.loss_weights()  # the values themselves are checked by solution.config.validate
    if cfg.batch_grouping == "subclass" and "cpc" in weights:
        log.warning("batch_grouping=subclass gives the CPC loss batches of one subclass, with few negatives")
    if "mqg" in weights and cfg.queries_per_patent > len(cfg.roles):
        raise ValueError(f"queries_per_patent {cfg.queries_per_patent}: more than the {len(cfg.roles)} roles "
                         f"({', '.join(cfg.roles)}) a patent has queries for")
    return weights


def load_split(cfg, run_dir: Path, resume: bool):
    """(all patents, training patents, held-out patents); a resumed run keeps its saved split."""
    from inference.retrieval.corpus import read_patents
    from solution.embedder.split import split_patents

    patents = read_patents(cfg.corpus)
    split_path = run_dir / "split.json"
    split = json.loads(split_path.read_text()) if resume and split_path.exists() else \
        split_patents([p.patent_id for p in patents], cfg.heldout_fraction, cfg.seed)
    by_id = {p.patent_id: p for p in patents}
    train_patents = [by_id[i] for i in split["train"]]
    if cfg.max_train_patents:
        train_patents = train_patents[: cfg.max_train_patents]
    RunFolder(run_dir, kind="embedder").mark()  # the run's marker before its first file
    atomic_json(split_path, {**split, "trained": [p.patent_id for p in train_patents], "corpus": cfg.corpus,
                             "seed": cfg.seed, "heldout_fraction": cfg.heldout_fraction})
    return patents, train_patents, [by_id[i] for i in split["heldout"]]


def prepare(cfg, resume: bool) -> tuple[EmbedderRun | None, dict | None]:
    """(the run, None), or (None, its metrics) when ``--resume`` finds it complete."""
    from solution.config import validate
    from solution.embedder.model import build_encoder
    from solution.optim import build_optimizer
    from solution.precision import resolve_precision
    from solution.runtime import flush_denormals, pick_device, seed_everything

    validate(cfg)  # before the run folder exists: a bad value leaves nothing behind
    run_dir = Path(cfg.out) if cfg.out else Path("runs") / time.strftime(f"embedder-{cfg.recipe}-%Y%m%d-%H%M%S")
    folder = RunFolder(run_dir, kind="embedder")
    offset, finished = folder.open(resume)
    if finished is not None:
        return None, finished
    weights = check_config(cfg)
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    clock = Clock(cfg.budget_minutes * 60, offset)
    seed_everything(cfg.seed)
    flush_denormals()
    model, tokenizer = build_encoder(cfg.embedder_config())  # a bad --model fails before the folder exists
    model.to(device)
    patents, train_patents, heldout = load_split(cfg, folder.path, resume)
    tokenizer.save_pretrained(folder.path / "tokenizer")
    atomic_json(folder.path / "embedder_config.json", cfg.embedder_config().to_dict())
    atomic_json(folder.path / "config.json", cfg.to_dict())
    t0 = time.time()
    data = TrainingData(cfg, train_patents, folder.path, corpus=patents)
    log.info("%d training patents, %d held out; queries and negatives ready in %.1f s", len(train_patents),
             len(heldout), time.time() - t0)
    # head_lr is unused: an embedder has no head, every trainable weight is LoRA
    optimizer = build_optimizer(model, cfg.lr, cfg.lr, cfg.weight_decay, eps=cfg.adam_eps,
                                lora_plus_ratio=cfg.lora_plus_ratio)
    metrics = {"run": folder.path.name, "recipe": cfg.recipe, "loss_weights": weights, "device": device,
               "precision": precision, "n_train_patents": len(train_patents), "n_heldout": len(heldout),
               "budget_minutes": cfg.budget_minutes, "epochs": []}
    run = EmbedderRun(cfg, device, precision, folder, clock, model, tokenizer, data, heldout, optimizer, metrics)
    if resume and (folder.path / "checkpoint.pt").exists():
        run.restore()
    return run, None


def train_time_left(run: EmbedderRun, val_cost_s: float) -> float:
    """Seconds of the clock left for training: less this epoch's validation and a margin for saving."""
    return run.clock.left() - val_cost_s - 10.0


def warn_if_budget_short(run: EmbedderRun, step_s: float, total_steps: int, val_cost_s: float) -> None:
    """Say once, a few steps in, when the clock will stop training early (a CPU too slow for the preset's
    budget), and which budget would fit the steps."""
    from solution.scheduler import budget_shortfall, record_budget_warning

    warning = budget_shortfall(step_s, run.step, total_steps - run.step, train_time_left(run, val_cost_s),
                               run.cfg.budget_minutes)
    if warning:
        record_budget_warning(run.metrics, warning, log)


def train_one_epoch(run: EmbedderRun, epoch: int, val_cost_s: float) -> tuple[dict, str]:
    """Train one epoch from its resume point (or until the clock, less one validation, runs out);
    returns (the epoch's running sums and counts, what stopped it). Checkpoints every few minutes."""
    import torch
    from tqdm.auto import tqdm

    from solution.scheduler import StepTimer, budget_progress, cosine_factor, set_lr

    cfg, data = run.cfg, run.data
    n = len(data.patents)
    total_steps = max(1, cfg.epochs * math.ceil(n / cfg.batch_size))
    weights = cfg.loss_weights()
    batches = epoch_batches(n, cfg.batch_size, cfg.seed * 1000 + epoch,  # same on resume
                            data.groups if cfg.batch_grouping == "subclass" else None)
    first = run.start_batch if epoch == run.start_epoch else 0
    start, seen, sums, count, stopped_by, last_ckpt = time.time(), 0, {}, 0, "epochs", time.time()
    timer = StepTimer()
    bar = tqdm(range(first, len(batches)), desc=f"{cfg.recipe} epoch {epoch + 1}/{cfg.epochs}",
               mininterval=1 if sys.stderr.isatty() else 30, dynamic_ncols=True, initial=first, total=len(batches))
    for b in bar:
        train_left = train_time_left(run, val_cost_s)
        if train_left <= 0:
            stopped_by = "budget"
            break
        set_lr(run.optimizer, cosine_factor(budget_progress(run.step, total_steps, run.clock.elapsed(), train_left),
                                            cfg.warmup_ratio))
        rng = random.Random(f"{cfg.seed}:{epoch}:{b}")  # role choice: reproducible across resumes
        loss, parts = step_loss(run.model, data, batches[b], cfg, weights, rng, run.tokenizer, run.device, run.precision)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {run.step}: loss is {loss.item()}; lower --set lr=...")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        run.step, seen, count = run.step + 1, seen + len(batches[b]), count + 1
        for k, v in {"loss": float(loss.detach()), **parts}.items():
            sums[k] = sums.get(k, 0.0) + v
        rate = seen / max(1e-6, time.time() - start)
        step_s = timer.lap(count)
        if step_s is not None and epoch == run.start_epoch:
            warn_if_budget_short(run, step_s, total_steps, val_cost_s)
        bar.set_postfix(loss=f"{sums['loss'] / count:.4f}", patents_s=f"{rate:.1f}", refresh=False)
        if run.step % cfg.log_every == 0:
            log_step(run, epoch, {k: v / count for k, v in sums.items()}, rate)
        if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
            run.checkpoint(epoch, b + 1)
            last_ckpt = time.time()
    bar.close()
    return {"epoch": epoch + 1, "steps": run.step, **{f"train_{k}": v / max(1, count) for k, v in sums.items()},
            "patents_per_s": seen / max(1e-6, time.time() - start), "stopped_by": stopped_by}, stopped_by


def log_step(run: EmbedderRun, epoch: int, means: dict[str, float], rate: float) -> None:
    with open(run.folder.path / "steps.jsonl", "a") as f:
        f.write(json.dumps({"epoch": epoch + 1, "step": run.step, **means, "lr": run.optimizer.param_groups[0]["lr"],
                            "patents_per_s": rate, "elapsed_s": run.clock.elapsed()}) + "\n")


def run(cfg, resume: bool = False) -> dict:
    """Train ``cfg`` into its run folder; returns the metrics (also in metrics.json and report.png)."""
    from solution.report import write_report
    from solution.runtime import peak_memory_mb

    emb, finished = prepare(cfg, resume)
    if finished is not None:
        return finished
    emb.save_state()
    val_cost_s = 30.0 if cfg.val_patents else 0.0  # re-measured after the first validation
    stopped_by = "epochs"
    emb.model.train()
    for epoch in range(emb.start_epoch, cfg.epochs):
        record, stopped_by = train_one_epoch(emb, epoch, val_cost_s)
        t_val = time.time()
        record.update(quick_validation(emb.model, emb.tokenizer, emb.heldout, cfg, emb.device, emb.precision))
        val_cost_s = time.time() - t_val
        record.update(wall_s=emb.clock.elapsed(), **peak_memory_mb(emb.device))
        emb.metrics["epochs"].append(record)
        log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()})
        emb.checkpoint(epoch + 1, 0)
        if stopped_by == "budget":
            break
    atomic_torch_save(emb.model.trainable_state_dict(), emb.folder.path / "trainable_state.pt")
    emb.metrics.update(stopped_by=stopped_by, steps=emb.step, wall_s=emb.clock.elapsed())
    emb.save_state(complete=True)
    write_report(emb.folder.path)
    print(f"embedder run written: {emb.folder.path}  ({emb.step} steps, stopped by {stopped_by}, "
          f"{emb.clock.elapsed():.0f} s)")
    return emb.metrics


def parse_args(argv: list[str]) -> argparse.Namespace:
    from solution.config import config_reference
    from solution.embedder.config import RECIPES, EmbedderTrainConfig

    p = argparse.ArgumentParser(prog="python -m solution.train embedder", description=__doc__,
                                epilog=config_reference(EmbedderTrainConfig),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p)
    p.add_argument("--corpus", help="patent CSV")
    p.add_argument("--recipe", choices=RECIPES, help="training recipe")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    from solution.embedder.config import EmbedderTrainConfig

    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_from_cli(args, ("corpus", "recipe"), EmbedderTrainConfig, "embedder", run)


if __name__ == "__main__":
    main()
