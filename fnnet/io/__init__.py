"""Saving and loading: atomic checkpoints (``save`` / ``load``) and PyTorch weight import."""

from .checkpoint import FORMAT_VERSION, Checkpoint, load, restore_opt_state, save
from .torch_import import load_torch_state_dict

__all__ = ["Checkpoint", "FORMAT_VERSION", "load", "load_torch_state_dict", "restore_opt_state", "save"]
