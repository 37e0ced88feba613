from solution.phrase.losses.coral import coral_loss
from solution.phrase.losses.nt_xent import nt_xent_loss
from solution.phrase.losses.smooth_k2 import smooth_k2_loss

__all__ = ["coral_loss", "nt_xent_loss", "smooth_k2_loss"]
