from solution.embedder.losses.mnrl import mnrl_loss
from solution.embedder.losses.supcon import supcon_loss

__all__ = ["mnrl_loss", "supcon_loss"]
