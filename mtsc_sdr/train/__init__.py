"""Training. Phase I (:mod:`.trainer`): multi-task training of the MTSC model over the
differentiable channel, ``mtsc-sdr train`` (:mod:`.cli`), configured by :class:`TrainConfig`.

Importing this package does not import torch; :func:`train` does when it runs.
"""

from .config import TrainConfig

__all__ = ["TrainConfig", "train"]


def train(*args, **kwargs):
    """:func:`mtsc_sdr.train.trainer.train` (imported lazily: it pulls in torch)."""
    from .trainer import train as _train

    return _train(*args, **kwargs)
