"""The phrase matcher: anchor/target phrases + CPC context -> similarity score (USPPPM).

``config`` (the training config), ``data`` (loading, folds, batches), ``model`` (the cross-encoder in
one file), ``losses/`` (one per file), ``train`` (set-up, ``train_one_epoch``, evaluation, checkpoints),
``evaluate`` (Pearson, batched scoring), ``predict`` (score a CSV with a trained run).
"""
