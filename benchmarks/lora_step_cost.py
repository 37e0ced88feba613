"""What one training step of the backbone costs with full fine-tuning, LoRA, and LoRA without its dropout.

    python -m benchmarks.lora_step_cost                                  # mpnet, batch 8 x 256 tokens, bf16
    python -m benchmarks.lora_step_cost --model models/all-MiniLM-L6-v2 --precision fp32 --no-append

Forward + backward of the bare backbone (the backbone's own dropout off, as the phrase trainer runs it)
on a fixed random batch, malloc tuned and denormals flushed as the trainer does; the mean of the steps
after ``--warmup``. LoRA is r=8, alpha=16 on every linear layer but the pooler (the seed design's), with
its dropout at 0.1 and at 0: the gap between those two rows is what peft's dropout on each adapter's
input (a fresh mask over a hidden-size activation, per adapter, forward and backward) costs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks._results import append_results, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def step_ms(model, ids, precision: str, warmup: int, steps: int) -> float:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(input_ids=ids).last_hidden_state
        out.float().pow(2).mean().backward()
        for p in params:
            p.grad = None
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * sum(times) / len(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "all-mpnet-base-v2"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)
    import torch
    from transformers import AutoModel

    from solution.lora import LoraSpec, wrap_lora
    from solution.runtime import flush_denormals, tune_malloc

    tune_malloc()
    flush_denormals()
    torch.manual_seed(0)
    ids = torch.randint(5, 1000, (args.batch, args.length))

    def backbone():
        model = AutoModel.from_pretrained(args.model, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        return model.train()

    rows = [("full fine-tuning", backbone())]
    for dropout in (0.1, 0.0):
        rows.append((f"LoRA r8/alpha16, lora_dropout {dropout}",
                     wrap_lora(backbone(), LoraSpec(lora_dropout=dropout), exclude_modules=r".*pooler.*")))
    results = []
    for name, model in rows:
        results.append((name, step_ms(model, ids, args.precision, args.warmup, args.steps)))
        print(f"  {name}: {results[-1][1]:.0f} ms/step", flush=True)
    table = markdown_table(["backbone training", "ms/step", "vs full fine-tuning"],
                           [[name, f"{ms:.0f}", f"{ms / results[0][1]:.2f}x"] for name, ms in results])
    append_results("Training step cost: full fine-tuning vs LoRA, with and without its dropout", table,
                   append=not args.no_append,
                   notes=f"{Path(args.model).name}, batch {args.batch} x {args.length} tokens, {args.precision}, "
                         f"forward + backward of the backbone alone, mean of {args.steps} steps after {args.warmup}; "
                         f"{torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
