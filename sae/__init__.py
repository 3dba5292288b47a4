"""Sparse autoencoders on model activations: store, models, training, metrics, export, concepts, edits.

Plain torch and data plumbing. Imports neither `realtime` nor `training`, and touches no audio device.
"""

from sae.errors import UserError

__all__ = ["UserError"]
