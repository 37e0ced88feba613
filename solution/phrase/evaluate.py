"""The phrase matcher's metric and batched scoring (validation, test prediction, ``solution.predict``).

Example:
    >>> round(pearson([0.0, 0.25, 0.5, 1.0], [0.1, 0.2, 0.6, 0.9]), 4)
    0.9767
    >>> pearson([1.0, 1.0], [0.0, 1.0])        # undefined for a constant: NaN, not an exception
    nan
"""

from __future__ import annotations

import numpy as np


def pearson(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def predict_scores(model, inputs, names: list[str], batch_size: int, device: str, precision: str, pad_id: int,
                   progress: str = "", only: list[int] | None = None) -> np.ndarray:
    """Scores in row order (NaN for rows of sequences not in ``only``); sequences are batched by length."""
    import torch
    from tqdm.auto import tqdm

    from solution.phrase.data import collate, length_bucketed_batches
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


def predict_orders(model, orders: list, names: list[str], batch_size: int, device: str, precision: str, pad_id: int,
                   progress: str = "") -> np.ndarray:
    """Scores in row order, averaged over the sibling orders' inputs (``Preprocessor.build_orders``)."""
    return np.mean([predict_scores(model, inputs, names, batch_size, device, precision, pad_id, progress)
                    for inputs in orders], axis=0)
