"""Training language models end to end: ``tinylm.train``.

- :class:`TrainConfig` (``config.py``): everything a run computes from, seed included.
- :class:`Trainer` / :func:`train` (``trainer.py``): the loop, with a progress bar,
  validation loss and perplexity, clipping, warmup + cosine LR, checkpoints, exact resume
  and a clean save on Ctrl-C.
- :data:`PRESETS` / :func:`get_preset` (``presets.py``): named two-minute runs.
- :func:`load_trained` (``checkpoint.py``): a trained model and its tokenizer back from a
  run folder, for generation and evaluation.

>>> from tinylm.train import get_preset, train
>>> result = train(get_preset("lstm").replace(steps=200), out="runs/lstm")
>>> result.val_loss, result.perplexity
"""

from .checkpoint import CHECKPOINT, LOSS_PLOT, Trained, find_checkpoint, load_trained
from .config import MODELS, RESUME_OVERRIDABLE, TOKENIZERS, TrainConfig
from .data import Corpus, prepare_corpus
from .presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from .trainer import Trainer, TrainingInterrupted, TrainResult, saved_config, train
