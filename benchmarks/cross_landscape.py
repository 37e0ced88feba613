"""Cross-landscape check: an embedder fine-tuned on A61 patents against zero-shot on USPPPM phrase
retrieval, split by CPC section: in-domain (section A) gain and out-of-domain (every other section) change.

    python -m benchmarks.cross_landscape --run runs/NAME [--groups 400]

The seed paper found fine-tuning on one landscape helps there and can hurt elsewhere. Each side
ranks the targets of ``--groups`` anchor + context groups of data/uspppm/train.csv (graded nDCG@10,
as the evaluation's phrase column), drawn with the same seed for both encoders.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks._results import append_results, markdown_table


def main(argv: list[str] | None = None) -> None:
    from solution.embedder.evaluate import EvalOptions, torch_encoder
    from solution.embedder.evaluators.phrases import load_phrase_groups, phrase_ndcg
    from solution.embedder.model import EmbedderConfig, build_encoder, load_run_encoder
    from solution.runtime import tune_malloc

    tune_malloc()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="embedder run folder (trained on A61 patents)")
    p.add_argument("--phrases", default="data/uspppm/train.csv")
    p.add_argument("--groups", type=int, default=400, help="anchor + context groups per side")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)
    opts = EvalOptions()
    run_enc, run_tok, cfg = load_run_encoder(args.run)
    zero_enc, zero_tok = build_encoder(EmbedderConfig(backbone=cfg.backbone, lora=False))
    zero_enc.eval()
    encoders = {"zero-shot": torch_encoder(zero_enc, zero_tok, opts.query_max_length, opts),
                "fine-tuned": torch_encoder(run_enc, run_tok, opts.query_max_length, opts)}
    sides = {"A (human necessities: in-domain)": lambda c: c.startswith("A"),
             "B-H, Y (the other sections: out-of-domain)": lambda c: not c.startswith("A")}
    rows = []
    for name, keep in sides.items():
        groups = load_phrase_groups(args.phrases, args.groups, seed=0, context_filter=keep)
        scores = {system: phrase_ndcg(groups, encode) for system, encode in encoders.items()}
        change = scores["fine-tuned"] - scores["zero-shot"]
        rows.append([name, len(groups), scores["zero-shot"], scores["fine-tuned"], f"{change:+.4f}",
                     f"{change / scores['zero-shot']:+.1%}"])
        print(rows[-1], flush=True)
    run_cfg = json.loads((Path(args.run) / "config.json").read_text())
    table = markdown_table(["USPPPM contexts", "groups", "zero-shot nDCG@10", "fine-tuned nDCG@10", "change",
                            "relative"], rows)
    append_results("Cross-landscape: an A61-tuned embedder on USPPPM phrase retrieval by CPC section", table,
                   append=not args.no_append,
                   notes=f"run {args.run} (recipe {run_cfg.get('recipe')}, corpus {run_cfg.get('corpus')}); anchor + "
                         "context groups drawn with seed 0 per side; graded nDCG@10 of the targets ranked by cosine "
                         "to the anchor")


if __name__ == "__main__":
    main()
