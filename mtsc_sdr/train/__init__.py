"""Training. Phase I (:mod:`.trainer`): multi-task training of the MTSC model over the
differentiable channel, ``mtsc-sdr train`` (:mod:`.cli`), configured by :class:`TrainConfig`.

Importing this package does not import torch; :func:`train` does when it runs.
"""

from .config import TrainConfig
from .trainer import train

__all__ = ["TrainConfig", "train"]
