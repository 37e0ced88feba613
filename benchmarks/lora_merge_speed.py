"""A trained embedder run's document encoding in PyTorch, LoRA as trained (peft's unmerged path: two extra
small matmuls per adapted layer) against LoRA merged into the base weights (what ``load_run_encoder`` now
returns for evaluation, and what export writes), docs/s and the largest difference between their vectors.

    python -m benchmarks.lora_merge_speed --run runs/pr-s42 [--docs 384] [--max-length 256]

Documents are the corpus's first abstracts cut at the run's own ``max_length`` (or ``--max-length``),
batch 64 sorted by length as ``encode_texts`` does; the two forms are timed in turn, three times,
after a warm-up pass each; the median counts.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks._results import append_results, markdown_table


def main(argv: list[str] | None = None) -> None:
    import numpy as np
    import torch

    from inference.retrieval.corpus import read_patents
    from solution.embedder.model import encode_texts, load_run_encoder
    from solution.runtime import tune_malloc

    tune_malloc()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="embedder run folder")
    p.add_argument("--corpus", default="data/patents/a61_patents.csv")
    p.add_argument("--docs", type=int, default=384)
    p.add_argument("--max-length", type=int, help="document tokens (default: the run's max_length)")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)

    texts = [x.abstract for x in read_patents(args.corpus)[: args.docs]]
    forms = {"LoRA unmerged (as trained)": load_run_encoder(args.run, merge=False),
             "LoRA merged (evaluation, export)": load_run_encoder(args.run)}
    length = args.max_length or forms["LoRA merged (evaluation, export)"][2].max_length
    vectors = {name: encode_texts(enc, tok, texts, length) for name, (enc, tok, _) in forms.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(3):
        for name, (enc, tok, _) in forms.items():
            start = time.perf_counter()
            encode_texts(enc, tok, texts, length)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["LoRA unmerged (as trained)"])
    diff = float(np.abs(vectors["LoRA unmerged (as trained)"] - vectors["LoRA merged (evaluation, export)"]).max())
    rows = [[name, f"{len(texts) / statistics.median(t):.1f}", f"{base / statistics.median(t):.2f}x"]
            for name, t in times.items()]
    table = markdown_table(["PyTorch fp32 encoder", "docs/s", "vs unmerged"], rows)
    append_results("Embedder: LoRA merged before evaluation", table, append=not args.no_append,
                   notes=f"run {args.run.name}, {len(texts)} abstracts at {length} tokens, batch 64, "
                         f"{torch.get_num_threads()} threads, median of 3 interleaved passes; largest difference "
                         f"between the two forms' unit vectors {diff:.1e}")


if __name__ == "__main__":
    main()
