"""What every fold of a phrase run shares (:class:`PhraseRun`), built by :func:`prepare`, and the run
folder's files around the folds."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from solution.run_folder import Clock, RunFolder, atomic_json


def subset_by_anchor(table, max_rows: int, seed: int, min_anchors: int = 1):
    """About ``max_rows`` rows made of whole anchors (groups stay intact for grouping and folds), and
    at least ``min_anchors`` anchors, so that a quick run still has one for every fold."""
    anchors = sorted(set(table.columns["anchor"]))
    random.Random(seed).shuffle(anchors)
    rows_of: dict[str, list[int]] = {}
    for i, a in enumerate(table.columns["anchor"]):
        rows_of.setdefault(a, []).append(i)
    keep: list[int] = []
    for taken, a in enumerate(anchors):
        if len(keep) >= max_rows and taken >= min_anchors:
            break
        keep += rows_of[a]
    return table.subset(sorted(keep))


@dataclass
class PhraseRun:
    """What every fold of one run shares: config, data, inputs, device and the run folder."""

    cfg: Any
    dist: Any  # solution.distributed.DistInfo
    device: str
    precision: str
    pre: Any  # inference.phrase.inputs.Preprocessor
    train: Any  # PairTable with scores
    train_contexts: Any
    test: Any
    test_contexts: Any
    folds: np.ndarray
    folder: RunFolder
    model_config: Any
    clock: Clock
    metrics: dict = field(default_factory=dict)
    fallback: Any = None  # the config to restart on when the clock is too short for this backbone (cfg.fallback())

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    def save_state(self, complete: bool = False) -> None:
        if self.dist.is_main:
            self.folder.save_state(self.cfg.to_dict(), self.clock.elapsed(), complete, self.metrics)


def prepare(cfg, resume: bool) -> tuple[PhraseRun | None, dict | None]:
    """(the run's shared state, None), or (None, its metrics) when ``--resume`` finds it complete."""
    import torch

    from inference.io import check_output_path
    from inference.phrase.inputs import TableContexts
    from solution.config import validate
    from solution.distributed import init_distributed
    from solution.phrase.data import load_uspppm, make_folds
    from solution.precision import resolve_precision_with_probe
    from solution.runtime import flush_denormals, pick_device, seed_everything

    validate(cfg)  # before the run folder exists: a bad value leaves nothing behind
    fallback = cfg.fallback()  # a fallback config that does not load is said now, not when it is needed
    if cfg.submission:  # never over an input: the training data, the test file
        data_files = [Path(cfg.data) / "uspppm" / name for name in ("train.csv", "test.csv")]
        check_output_path(cfg.submission, data_files + ([cfg.test_csv] if cfg.test_csv else []))
    device = pick_device(cfg.device)
    dist = init_distributed(device)
    if device == "cuda":
        device = f"cuda:{dist.local_rank}"
    precision, precision_probe = resolve_precision_with_probe(cfg.precision, device)
    folder = RunFolder(run_folder_path(cfg, dist), kind="phrase")
    offset, finished = folder.open(resume)
    if finished is not None:
        return None, finished
    seed_everything(cfg.seed)
    flush_denormals()
    torch.set_num_threads(torch.get_num_threads())

    train, test, vocab = load_uspppm(cfg.data)
    if cfg.test_csv:
        from inference.io import read_pairs

        test = read_pairs(cfg.test_csv)
    if cfg.max_train_rows:
        train = subset_by_anchor(train, cfg.max_train_rows, cfg.seed, min_anchors=cfg.n_splits)
    run = PhraseRun(cfg, dist, device, precision, None, train, TableContexts.of(train, vocab), test,
                    TableContexts.of(test, vocab), make_folds(train, cfg.n_splits, cfg.seed), folder, None,
                    Clock(cfg.budget_minutes * 60, offset), fallback=fallback)
    tokenizer, template = build_model_inputs(run, vocab)
    run.metrics = {"run": folder.path.name, "device": device, "precision": precision,
                   "precision_probe": precision_probe, "layout": cfg.layout, "world_size": dist.world_size,
                   "folds": {}, "budget_minutes": cfg.budget_minutes}
    if dist.is_main:
        write_run_files(run, tokenizer, template, vocab, resume)
    return run, None


def build_model_inputs(run: PhraseRun, vocab) -> tuple[Any, Any]:
    """Set what depends on the backbone (``run.pre``, ``run.model_config``); returns (tokenizer, template)."""
    from inference.template import InputTemplate
    from solution.backbone import load_tokenizer
    from solution.phrase.data import preprocessor

    cfg = run.cfg
    tokenizer = load_tokenizer(cfg.model)
    template = InputTemplate(sep_token=tokenizer.sep_token, cls_token=tokenizer.cls_token, use_title=cfg.use_title,
                             group_targets=cfg.group_targets, layout=cfg.layout, max_targets=cfg.max_targets)
    run.pre = preprocessor(tokenizer, template, vocab, cfg.max_length)
    run.model_config = cfg.model_config((vocab.num_sections, vocab.num_classes), tokenizer.sep_token_id,
                                        tokenizer.cls_token_id)
    return tokenizer, template


def run_folder_path(cfg, dist) -> Path:
    """``cfg.out``, or a new timestamped name that every process agrees on."""
    run_dir = Path(cfg.out) if cfg.out else Path("runs") / time.strftime("phrase-%Y%m%d-%H%M%S")
    if dist.enabled and not cfg.out:
        import torch.distributed as tdist

        holder = [str(run_dir)]
        tdist.broadcast_object_list(holder, src=0)
        run_dir = Path(holder[0])
    return run_dir


def write_run_files(run: PhraseRun, tokenizer, template, vocab, resume: bool) -> None:
    """What a run folder holds besides checkpoints: tokenizer, CPC vocabulary, template, configs."""
    run_dir = run.run_dir
    run.folder.mark()
    tokenizer.save_pretrained(run_dir / "tokenizer")
    vocab.save(run_dir / "cpc_vocab.json")
    atomic_json(run_dir / "template.json", template.to_dict())
    atomic_json(run_dir / "model_config.json", run.model_config.to_dict())
    atomic_json(run_dir / "config.json", run.cfg.to_dict())
    if resume and (run_dir / "metrics.json").exists():
        run.metrics = json.loads((run_dir / "metrics.json").read_text())


def write_oof(path: Path, table, folds: np.ndarray, oof: np.ndarray) -> None:
    """oof.csv: every scored training row with its fold and out-of-fold prediction (the export's parity gate reads it)."""
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
