"""KMeans with k = number of subclasses on the embeddings, scored by V-measure against the labels.

Example:
    >>> import numpy as np
    >>> x = np.concatenate([np.eye(2)[[0] * 5], np.eye(2)[[1] * 5]])
    >>> clustering_v_measure(x, ["A"] * 5 + ["B"] * 5)
    1.0
"""

from __future__ import annotations

import numpy as np


def clustering_v_measure(embeddings: np.ndarray, labels: list[str], seed: int = 0) -> float:
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    k = len(set(labels))
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(embeddings)
    return float(v_measure_score(labels, clusters))
