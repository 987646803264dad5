r"""The training loop: ``Trainer(config, out).fit()``, or ``train(config, out)``.

One step, for a batch of token ids ``x`` (B, T) and the next tokens ``y`` (B, T)::

    logits, state = model(x, state)                      # (B, T, V)
    loss = cross_entropy(logits, y)                      # mean of -log p(y | x_{<=t})
    loss.backward(); clip_grad_norm_(...); adamw.step(); schedule.step()
    state = detach(state)                                # truncated BPTT: keep the values,
                                                         # cut the graph

Recurrent models read B contiguous streams and carry their state from batch to batch
(reset when the streams start over); the GPT reads B windows at random starts and
carries nothing. Every ``eval_every`` steps the validation loss
:math:`\bar\ell = -\frac1N \sum_i \log p(t_i \mid t_{<i})` on a fixed slice of the
validation text is logged with its perplexity :math:`e^{\bar\ell}` (the number of
equally likely tokens the model is as unsure as). See lessons/10_language_model.py.

Exact resume: a checkpoint holds everything the next step reads (weights, AdamW state,
the LR schedule, tinylm's RNG, the data position and the carried state), so training k
steps, saving, loading and continuing gives the same bits as training straight through
(on the CPU; tested in tests/test_train.py). Ctrl-C finishes the step in flight, saves,
and raises :class:`TrainingInterrupted`.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import data, random
from ..creation import zeros
from ..data import Tokenizer
from ..io import CheckpointError, load_checkpoint, save_checkpoint
from ..nn import functional as F
from ..nn.utils import clip_grad_norm_
from ..optim import AdamW
from ..optim.lr_scheduler import WarmupCosineLR
from ..tensor import Tensor, no_grad
from .checkpoint import CHECKPOINT, LOSS_PLOT, decode_state, encode_state
from .config import RESUME_OVERRIDABLE, TrainConfig
from .data import RandomBatches, StreamBatches, prepare_corpus
from .interrupt import StepGuard
from .plot import save_loss_plot
from .presets import DEFAULT_PRESET, get_preset

__all__ = ["Trainer", "TrainResult", "TrainingInterrupted", "train", "saved_config"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a KeyboardInterrupt from a callback) stopped training; ``checkpoint``
    is where the state after ``step`` steps was saved (None without an ``out`` folder,
    or when a second Ctrl-C gave no time to save)."""

    def __init__(self, step: int, checkpoint: Path | None):
        self.step, self.checkpoint = step, checkpoint
        where = f"saved '{checkpoint}'" if checkpoint else "nothing saved"
        super().__init__(f"training interrupted after step {step}; {where}")


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    step: int  # steps done in all (a resumed run counts the earlier ones too)
    train_losses: list[float]  # train_losses[i]: the loss of step i + 1
    val: list[tuple[int, float]]  # (step, validation loss) at each evaluation
    seconds: float  # time in training steps this session (evaluation not counted)
    tokens_per_s: float  # training tokens per second this session
    checkpoint: Path | None = None
    val_loss: float | None = field(init=False)
    perplexity: float | None = field(init=False)

    def __post_init__(self):
        self.val_loss = self.val[-1][1] if self.val else None
        self.perplexity = None if self.val_loss is None else _perplexity(self.val_loss)


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


def _detach(state):
    """The state's values without its graph (None, a Tensor, or a tuple of them)."""
    if state is None or isinstance(state, Tensor):
        return None if state is None else state.detach()
    return type(state)(_detach(s) for s in state)


def _tqdm_disabled() -> bool:
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def saved_config(out: str | os.PathLike) -> TrainConfig:
    """The ``TrainConfig`` stored in the checkpoint of run folder ``out`` (to resume it
    with a few fields changed). Raises ``FileNotFoundError`` or ``CheckpointError``."""
    path = Path(out) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume in '{out}' (expected '{path}')")
    return _train_config(load_checkpoint(path), path)


def _train_config(ckpt, path) -> TrainConfig:
    extra = ckpt.extra if isinstance(ckpt.extra, dict) else {}
    try:
        return TrainConfig.from_dict(extra["train_config"]).validate()
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"cannot resume from '{path}': no usable train config in it "
                              f"({e}); was it written by tinylm train?") from None


class Trainer:
    """Builds a run (data, tokenizer, model, AdamW, schedule) and trains it.

    ``config``: the run (None: the default preset, a small LSTM on the sonnets).
    ``out``: the run folder for checkpoints and the loss plot (None: keep nothing on
    disk). A fresh run refuses a folder that already holds a checkpoint unless
    ``overwrite``. ``resume=True`` continues the checkpoint in ``out``; ``config`` may
    then be None (the saved one) or differ from the saved one only in
    ``RESUME_OVERRIDABLE`` fields (more ``steps``, another ``eval_every``, ...).
    ``callbacks`` are called as ``cb(trainer)`` after every step. ``quiet``: no progress
    bar, no log lines. ``log``: where log lines go instead (default: printed, above the
    progress bar). Setting up raises ``ValueError``, ``FileNotFoundError``,
    ``RuntimeError`` (device) or ``CheckpointError`` with a one-line message.
    """

    def __init__(self, config: TrainConfig | None = None, out: str | os.PathLike | None = None,
                 *, resume: bool = False, overwrite: bool = False, quiet: bool = False,
                 callbacks: Iterable[Callable[[Trainer], None]] = (),
                 log: Callable[[str], None] | None = None):
        self.out = Path(out) if out is not None else None
        self.quiet, self.callbacks = quiet, list(callbacks)
        self._log_fn = log
        ckpt_path = self.out / CHECKPOINT if self.out is not None else None
        ckpt = None
        if resume:
            if self.out is None:
                raise ValueError("resume needs the run folder (out) to resume from")
            if not ckpt_path.is_file():
                raise FileNotFoundError(f"no checkpoint to resume in '{self.out}' (expected "
                                        f"'{ckpt_path}')")
            ckpt = load_checkpoint(ckpt_path)
            config = _merge_for_resume(_train_config(ckpt, ckpt_path), config)
        elif ckpt_path is not None and ckpt_path.exists() and not overwrite:
            raise FileExistsError(f"'{self.out}' already holds a checkpoint: continue it with "
                                  "--resume, or pass --overwrite to start again")
        if config is None:
            config = get_preset(DEFAULT_PRESET)
        self.config = cfg = config.validate()
        try:  # fail early, with one line, on a device that cannot work here
            zeros(1, device=cfg.device)
        except (RuntimeError, ValueError, ImportError) as e:
            raise RuntimeError(f"device {cfg.device!r}: {e}") from None

        random.manual_seed(cfg.seed)
        tokenizer = None
        if ckpt is not None:
            try:
                tokenizer = Tokenizer.from_dict(ckpt.tokenizer)
            except ValueError as e:
                raise CheckpointError(f"cannot resume from '{ckpt_path}': {e}") from None
        self.corpus = prepare_corpus(cfg, tokenizer)
        self.tokenizer = self.corpus.tokenizer

        from ..models import build_model

        self.model_config = cfg.model_config(self.tokenizer.vocab_size)
        self.model = build_model(self.model_config, device=cfg.device)
        self.params = list(self.model.parameters())
        self.optimizer = AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = WarmupCosineLR(self.optimizer, cfg.warmup, cfg.steps,
                                        min_lr=cfg.lr * cfg.min_lr_ratio)
        batches = StreamBatches if cfg.recurrent else RandomBatches
        self.batches = batches(self.corpus.train_ids, cfg.batch_size, cfg.seq_len, cfg.device)
        self.step = 0
        self.state = None  # what a recurrent model carries into the next batch
        self.train_losses: list[float] = []
        self.val: list[tuple[int, float]] = []
        self.last_loss: float | None = None
        self.checkpoint: Path | None = None
        if ckpt is not None:
            self._restore(ckpt_path, ckpt)
        elif self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
        self._guard = StepGuard()  # Ctrl-C waits for the step in flight

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.params)

    # --- one step, one evaluation -------------------------------------------------------

    def train_step(self) -> float:
        """One optimizer step on the next batch; returns its loss."""
        cfg = self.config
        x, y, fresh = self.batches.next()  # (B, T), (B, T)
        if fresh:  # the streams start over: so does the state
            self.state = None
        self.model.train()
        logits, state = self.model(x, state=self.state)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.optimizer.zero_grad()
        loss.backward()
        if cfg.grad_clip > 0:
            clip_grad_norm_(self.params, cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.state = _detach(state) if cfg.recurrent else None
        self.step += 1
        self.last_loss = loss.item()
        self.train_losses.append(self.last_loss)
        return self.last_loss

    def evaluate(self) -> float:
        """Mean validation loss (nats per token) on the fixed slice: the first
        ``eval_tokens`` tokens of the validation text. Recurrent models read it as
        contiguous streams carrying state; the GPT as consecutive windows."""
        cfg = self.config
        ids = self.corpus.val_ids[: cfg.eval_tokens + 1]
        T = min(cfg.seq_len, ids.size - 1)
        total, count = 0.0, 0
        state = None  # carried through the streams (recurrent models only)
        self.model.eval()
        with no_grad():
            if cfg.recurrent:
                B = max(1, min(cfg.eval_batch_size, (ids.size - 1) // T))
                batches = data.stream_batches(ids, B, T, device=cfg.device)
            else:
                batches = data.sequential_batches(ids, cfg.eval_batch_size, T, cfg.device)
            for x, y in batches:
                logits, state = self.model(x, state=state)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                       reduction="sum")
                total += loss.item()
                count += y.numel()
        self.model.train()
        return total / count

    def sample(self, n: int | None = None, prompt: str | None = None,
               max_new_tokens: int | None = None, temperature: float | None = None,
               seed: int | None = None) -> list[str]:
        """``n`` texts from the model (defaults: the config's ``num_samples``,
        ``sample_prompt``, ``sample_tokens``, ``temperature``; seeds ``seed``, ``seed + 1``,
        ... from ``config.seed``). tinylm's RNG is left as it was, so training can go on."""
        from ..models import generate

        cfg = self.config
        n = cfg.num_samples if n is None else n
        seed = cfg.seed if seed is None else seed
        rng = random.get_rng_state()
        try:
            return [generate(self.model, self.tokenizer,
                             cfg.sample_prompt if prompt is None else prompt,
                             cfg.sample_tokens if max_new_tokens is None else max_new_tokens,
                             temperature=cfg.temperature if temperature is None else temperature,
                             seed=seed + i) for i in range(n)]
        finally:
            random.set_rng_state(rng)
            self.model.train()

    # --- the loop ------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train until ``config.steps``; evaluate, save and call the callbacks on the way."""
        cfg = self.config
        start_step, seconds = self.step, 0.0
        if self.step >= cfg.steps:
            self._log(f"already trained {self.step} steps (of {cfg.steps}); nothing to do")
            return self._result(seconds, 0)
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=self.step, unit="step", file=sys.stderr,
                   desc=f"train {cfg.model}", dynamic_ncols=True,
                   disable=True if self.quiet or _tqdm_disabled() else None)
        self._bar = bar
        since_eval: list[float] = []
        try:
            with self._guard.installed():
                if self.step % cfg.eval_every == 0 and self.step > 0 and (
                        not self.val or self.val[-1][0] != self.step):
                    self._eval_and_log(since_eval, seconds, start_step)  # missed at a Ctrl-C
                while self.step < cfg.steps:
                    t0 = time.perf_counter()
                    notice = self._compile_notice() if self.step == start_step else None
                    try:
                        with self._guard.step():
                            loss = self.train_step()
                    finally:
                        if notice is not None:
                            notice.cancel()
                    seconds += time.perf_counter() - t0
                    since_eval.append(loss)
                    tok_s = (self.step - start_step) * cfg.batch_size * cfg.seq_len / seconds
                    bar.set_postfix_str(f"loss {loss:.3f}, {tok_s:,.0f} tok/s", refresh=False)
                    bar.update(1)
                    if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                        self._eval_and_log(since_eval, seconds, start_step)
                        since_eval = []
                    if self.out is not None and (self.step % cfg.save_every == 0
                                                 or self.step == cfg.steps):
                        self.save()
                    for cb in self.callbacks:
                        cb(self)
        except KeyboardInterrupt:
            bar.close()
            path = None
            if self.out is not None and not self._guard.hard_stop:
                path = self.save()
            raise TrainingInterrupted(self.step, path) from None
        finally:
            bar.close()
            self._bar = None
        return self._result(seconds, self.step - start_step)

    # The first step of a process loads tinylm's Numba kernels from their cache (a fraction
    # of a second), or, the first time after installing, compiles them (~10 s on 2 cores):
    # a bar sitting on step 0 that long looks like a hang, so say what is happening.
    COMPILE_NOTICE_AFTER = 2.0  # seconds

    def _compile_notice(self) -> threading.Timer:
        timer = threading.Timer(self.COMPILE_NOTICE_AFTER, self._log, args=(
            "(the first step compiles tinylm's Numba kernels for this machine: once, they "
            "are cached for later runs)",))
        timer.daemon = True
        timer.start()
        return timer

    def _eval_and_log(self, since_eval: Sequence[float], seconds: float, start_step: int):
        cfg = self.config
        val = self.evaluate()
        self.val.append((self.step, val))
        train = sum(since_eval) / len(since_eval) if since_eval else float("nan")
        tok_s = (self.step - start_step) * cfg.batch_size * cfg.seq_len / max(seconds, 1e-9)
        self._log(f"step {self.step:>{len(str(cfg.steps))}}/{cfg.steps}  train {train:.4f}  "
                  f"val {val:.4f}  ppl {_perplexity(val):.2f}  "
                  f"lr {self.scheduler.get_last_lr()[0]:.2e}  {tok_s:,.0f} tok/s")

    def _result(self, seconds: float, steps: int) -> TrainResult:
        cfg = self.config
        tok_s = steps * cfg.batch_size * cfg.seq_len / seconds if seconds > 0 else 0.0
        return TrainResult(self.step, list(self.train_losses), list(self.val), seconds, tok_s,
                           self.checkpoint)

    def _log(self, line: str) -> None:
        if self._log_fn is not None:
            self._log_fn(line)
        elif self.quiet:
            return
        elif getattr(self, "_bar", None) is not None and not self._bar.disable:
            self._bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    # --- checkpoints ----------------------------------------------------------------------

    def save(self) -> Path:
        """Write the checkpoint (atomically) and the loss plot into ``out``."""
        if self.out is None:
            raise ValueError("save: this Trainer has no out folder")
        path = self.out / CHECKPOINT
        extra = {
            "train_config": self.config.to_dict(),
            "scheduler": self.scheduler.state_dict(),
            "data": self.batches.position(),
            "state": encode_state(self.state),
            "history": {"train": self.train_losses, "val": self.val},
            "corpus_sha256": self.corpus.sha256,
        }
        save_checkpoint(path, model=self.model, optimizer=self.optimizer, step=self.step,
                        config=self.model_config.to_dict(), tokenizer=self.tokenizer.to_dict(),
                        extra=extra)
        save_loss_plot(self.out / LOSS_PLOT, self.train_losses, self.val,
                       title=f"{self.config.model} on {self.config.corpus!s} "
                             f"({self.config.tokenizer} tokens), step {self.step}")
        self.checkpoint = path
        return path

    def _restore(self, path: Path, ckpt) -> None:
        extra = ckpt.extra
        if extra.get("corpus_sha256") != self.corpus.sha256:
            raise ValueError(f"the corpus {self.config.corpus!r} is not the text this run was "
                             "trained on (its SHA-256 differs); resume with the same text")
        try:
            load_checkpoint(path, model=self.model, optimizer=self.optimizer, restore_rng=True)
            self.scheduler.load_state_dict(extra["scheduler"])
            self.scheduler.total_steps = self.config.steps  # more steps: a longer cosine
            self.batches.seek(extra["data"])
            self.state = decode_state(extra["state"], self.config.device)
            history = extra["history"]
            self.train_losses = [float(v) for v in history["train"]]
            self.val = [(int(s), float(v)) for s, v in history["val"]]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"cannot resume from '{path}': {type(e).__name__}: {e}") \
                from None
        self.step = ckpt.step or 0
        self.checkpoint = path


def _merge_for_resume(saved: TrainConfig, given: TrainConfig | None) -> TrainConfig:
    if given is None:
        return saved
    changed = {k: v for k, v in given.to_dict().items() if saved.to_dict()[k] != v}
    fixed = sorted(set(changed) - RESUME_OVERRIDABLE)
    if fixed:
        what = ", ".join(f"{k} (saved {saved.to_dict()[k]!r}, given {changed[k]!r})"
                         for k in fixed)
        raise ValueError(f"cannot change {what} when resuming; only "
                         f"{', '.join(sorted(RESUME_OVERRIDABLE))} may change")
    return saved.replace(**changed)


def train(config: TrainConfig | None = None, out: str | os.PathLike | None = None,
          **kwargs) -> TrainResult:
    """``Trainer(config, out, **kwargs).fit()``: train a run and return its result."""
    return Trainer(config, out, **kwargs).fit()
