"""AdamW step time on the phrase matcher's backbone: torch's fused kernel against ``foreach``.

    python -m benchmarks.adamw_fused                       # all-mpnet-base-v2, precision auto
    python -m benchmarks.adamw_fused --model sentence-transformers/all-MiniLM-L6-v2 --no-append

One training step of the default is forward + backward over 8 sequences of ~140 tokens, then an
AdamW step over every weight (full fine-tuning). The two optimizers take turns on the same model
(interleaved rounds, median of each), so drift on a shared machine hits both alike. The ratio in
the last column is what the whole step gains: more steps in the same wall-clock budget.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks._results import append_results, markdown_table


def time_steps(model, optimizer, batch: dict, precision: str, steps: int) -> tuple[list[float], list[float]]:
    """(forward+backward seconds, optimizer-step seconds) of ``steps`` steps."""
    from solution.precision import autocast

    forward, update = [], []
    for _ in range(steps):
        start = time.perf_counter()
        with autocast(precision, "cpu"):
            hidden = model(**batch).last_hidden_state
        hidden.float().pow(2).mean().backward()
        middle = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        forward.append(middle - start)
        update.append(time.perf_counter() - middle)
    return forward, update


def main(argv: list[str] | None = None) -> None:
    from solution.backbone import PHRASE_MODEL, load_backbone
    from solution.precision import resolve_precision
    from solution.runtime import flush_denormals

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=PHRASE_MODEL)
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=140)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per optimizer and round")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)

    flush_denormals()
    torch.manual_seed(0)
    precision = resolve_precision(args.precision, "cpu")
    model, _ = load_backbone(args.model)
    model.train()
    ids = torch.randint(1000, model.config.vocab_size, (args.sequences, args.tokens))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    optimizers = {kind: torch.optim.AdamW(model.parameters(), lr=1e-6, **{kind: True}) for kind in ("foreach", "fused")}
    times: dict[str, tuple[list[float], list[float]]] = {kind: ([], []) for kind in optimizers}
    for optimizer in optimizers.values():  # warm-up: state allocation, kernel selection
        time_steps(model, optimizer, batch, precision, 1)
    for _ in range(args.rounds):
        for kind, optimizer in optimizers.items():
            forward, update = time_steps(model, optimizer, batch, precision, args.steps)
            times[kind][0].extend(forward)
            times[kind][1].extend(update)
    step_s = {kind: statistics.median(f) + statistics.median(u) for kind, (f, u) in times.items()}
    rows = [[kind, f"{statistics.median(f) * 1000:.0f}", f"{statistics.median(u) * 1000:.0f}",
             f"{step_s[kind] * 1000:.0f}", f"{step_s['foreach'] / step_s[kind]:.2f}x"]
            for kind, (f, u) in times.items()]
    params = sum(p.numel() for p in model.parameters()) / 1e6
    table = markdown_table(["AdamW", "forward+backward ms", "optimizer step ms", "whole step ms",
                            "steps/s vs foreach"], rows)
    print(table)
    if not args.no_append:
        append_results("AdamW step: fused vs foreach", table,
                       notes=f"{args.model} ({params:.0f}M weights, full fine-tuning), {args.sequences} sequences x "
                             f"{args.tokens} tokens, {precision} autocast, {torch.get_num_threads()} threads, median "
                             f"of {args.rounds} interleaved rounds x {args.steps} steps; solution.optim uses fused")


if __name__ == "__main__":
    main()
