"""CPC subclass classification from embeddings: logistic regression, stratified k-fold, macro-F1.

The label is a patent's first-listed subclass (its main classification). Cross-validation on the
held-out patents keeps the cost at one encoding of them and never touches the training patents.

Example:
    >>> import numpy as np
    >>> x = np.concatenate([np.eye(2)[[0] * 10], np.eye(2)[[1] * 10]]) + 0.01
    >>> classification_macro_f1(x, ["A"] * 10 + ["B"] * 10, folds=2)
    1.0
    >>> classification_macro_f1(x, ["A"] * 20)
    nan
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def classification_macro_f1(embeddings: np.ndarray, labels: list[str], folds: int = 5, seed: int = 0) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    counts = Counter(labels)
    keep = [i for i, y in enumerate(labels) if counts[y] >= 2]  # a class needs a member in two folds at least
    kept = Counter(labels[i] for i in keep)
    folds = min([folds, *kept.values()]) if kept else 0
    if len(kept) < 2 or folds < 2:
        return float("nan")  # too few labelled patents to cross-validate
    x, y = embeddings[keep], np.asarray(labels)[keep]
    pred = np.empty(len(y), dtype=object)
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        clf = LogisticRegression(max_iter=2000, C=10.0)
        clf.fit(x[tr], y[tr])
        pred[te] = clf.predict(x[te])
    return float(f1_score(y, pred.astype(str), average="macro"))
