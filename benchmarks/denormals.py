"""AdamW step time once the optimizer state turns denormal, with and without flush-to-zero.

    python -m benchmarks.denormals

The parameter is MiniLM's word-embedding matrix (30522 x 384). A long run drives the first moment of
rows that get no gradient towards zero by 0.9 a step; after ~800 steps it is denormal. Here the state
is set to that point directly (one real step, then the moments scaled into the denormal range), so
the table takes seconds instead of a 1,000-step run. Same process, interleaved repeats.
"""

from __future__ import annotations

import statistics
import time

import torch

from benchmarks._results import append_results, markdown_table


def step_ms(flush: bool, denormal_state: bool, repeats: int = 15) -> float:
    """Median ms of one AdamW step on an embedding-sized parameter whose gradient touches 50 rows."""
    torch.set_flush_denormal(flush)
    param = torch.nn.Parameter(torch.randn(30522, 384) * 0.02)
    optimizer = torch.optim.AdamW([param], lr=1e-4)
    param.grad = torch.randn_like(param)
    optimizer.step()
    if denormal_state:
        optimizer.state[param]["exp_avg"].mul_(1e-39)  # where 0.9**step has taken untouched rows
    grad = torch.zeros_like(param)
    grad[:50] = 1e-3
    times = []
    for _ in range(repeats):
        param.grad = grad.clone()
        start = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - start)
    torch.set_flush_denormal(False)
    return statistics.median(times) * 1000


def main() -> None:
    torch.set_num_threads(torch.get_num_threads())
    cases = [("normal state", False), ("denormal state", True)]
    results = {(name, flush): [] for name, _ in cases for flush in (False, True)}
    for _ in range(3):  # interleaved, so drift on a shared machine hits every case alike
        for name, denormal in cases:
            for flush in (False, True):
                results[name, flush].append(step_ms(flush, denormal))
    base = statistics.median(results["normal state", False])
    rows = [[name, "on" if flush else "off", f"{statistics.median(v):.1f}", f"{statistics.median(v) / base:.2f}x"]
            for (name, flush), v in results.items()]
    table = markdown_table(["AdamW state", "flush denormals", "ms per step", "vs normal, flush off"], rows)
    append_results("AdamW step with denormal optimizer state", table,
                   notes=f"30522x384 parameter, {torch.get_num_threads()} threads, median of 3 x 15 steps; "
                         "training calls solution.runtime.flush_denormals()")


if __name__ == "__main__":
    main()
