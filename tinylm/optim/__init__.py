"""Optimizers and learning-rate schedules with PyTorch's names: ``tinylm.optim``.

``SGD``, ``Adam``, ``AdamW`` update leaf Tensors in place from their ``.grad``;
``tinylm.optim.lr_scheduler`` changes their learning rate over time. Gradient clipping
lives in ``tinylm.nn.utils``, as in PyTorch. See lessons/05_optimizers.py.
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
