"""``tinylm train``, ``tinylm generate``, ``tinylm eval``: language models from the shell.

    tinylm train                                  # the default preset: an LSTM on the sonnets
    tinylm train --model gpt --steps 2000 --out runs/gpt
    tinylm train --out runs/gpt --resume          # continue where it stopped (or was stopped)
    tinylm generate runs/lstm --prompt "Shall I" --temperature 0.8 --top-k 20
    tinylm eval runs/lstm                         # validation loss and perplexity

Exit status: 0 done; 2 a bad argument, file or checkpoint (one line on stderr says what);
130 training was interrupted with Ctrl-C (after saving a checkpoint to resume from).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys

__all__ = ["add_train_parsers"]


def _fail(command: str, e: BaseException | str) -> int:
    msg = e if isinstance(e, str) else _message(e)
    print(f"tinylm {command}: {msg}", file=sys.stderr)
    return 2


def _message(e: BaseException) -> str:
    """One line for an exception: its message (OSErrors: the strerror and the path)."""
    if isinstance(e, OSError) and e.strerror and e.filename:
        return f"{e.strerror}: '{e.filename}'"
    text = str(e.args[0]) if len(e.args) == 1 else str(e)
    return " ".join(text.split()) or type(e).__name__


def _ctrl_c_exits_130(command: str):
    """Ctrl-C outside the training loop (setting up, sampling, evaluating): one line, 130.
    (Inside the loop the Trainer saves first; ``_train`` reports that.)"""
    def wrap(fn):
        @functools.wraps(fn)
        def run(args) -> int:
            try:
                return fn(args)
            except KeyboardInterrupt:
                print(f"tinylm {command}: interrupted", file=sys.stderr)
                return 130
        return run
    return wrap


def _setup_errors():
    """What setting up a run or loading a checkpoint raises for bad input (never bugs in
    the training loop, which keep their traceback)."""
    from .io import CheckpointError

    return (ValueError, TypeError, OSError, RuntimeError, CheckpointError)


# --- argument types -----------------------------------------------------------------------


def _int_at_least(low: int):
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        return v
    return parse


def _float_in(low: float, high: float = math.inf, low_open: bool = False):
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
        if not (v > low if low_open else v >= low) or not v <= high or math.isnan(v):
            lo = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must be in {lo}{low:g}, {high:g}], got {s}")
        return v
    return parse


def _threads(args) -> None:
    """--threads N: N threads for NumPy's BLAS and for Numba's parallel kernels (the few
    that split very large arrays), as ``tinylm bench --threads`` sets them."""
    if args.threads:
        import numba

        from .kernels import _common  # noqa: F401 - picks Numba's threading layer first
        from .train.threads import set_blas_threads

        set_blas_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))


def _add_threads(p) -> None:
    p.add_argument("--threads", type=_int_at_least(0), default=1, metavar="N",
                   help="BLAS threads (default 1: these small matrices gain little from "
                   "more, and lose a lot when the machine is busy; 0: NumPy's default)")


# --- train --------------------------------------------------------------------------------

# command-line option -> TrainConfig field, for the options that change a preset
_OVERRIDES = {"model": "model", "corpus": "corpus", "tokenizer": "tokenizer", "steps": "steps",
              "device": "device", "seed": "seed", "batch_size": "batch_size",
              "seq_len": "seq_len", "lr": "lr", "eval_every": "eval_every",
              "save_every": "save_every"}


def _train(args) -> int:
    from .train import (
        DEFAULT_PRESET,
        PRESETS,
        Trainer,
        TrainingInterrupted,
        get_preset,
        saved_config,
    )

    if args.list_presets:
        for p in PRESETS.values():
            c = p.config
            print(f"{p.name:6s} {p.description}; {c.steps} steps of {c.batch_size}x{c.seq_len} "
                  f"tokens, lr {c.lr:g}")
        return 0
    _threads(args)
    given = {field: getattr(args, opt) for opt, field in _OVERRIDES.items()
             if getattr(args, opt) is not None}
    try:
        if args.resume:
            out = args.out or f"runs/{args.preset or args.model or DEFAULT_PRESET}"
            config = saved_config(out).replace(**given)
        else:
            name = args.preset or args.model or DEFAULT_PRESET
            config = get_preset(name)
            if args.preset and args.model and args.model != config.model:
                return _fail("train", f"--model {args.model} conflicts with --preset {name} "
                                      f"(a {config.model} preset); give one of them")
            config = config.replace(**given)
            out = args.out or f"runs/{name}"
        trainer = Trainer(config, out, resume=args.resume, overwrite=args.overwrite,
                          quiet=args.quiet)
    except _setup_errors() as e:
        return _fail("train", e)

    cfg = trainer.config
    if not args.quiet:
        _print_plan(trainer, out, args.resume)
    try:
        result = trainer.fit()
    except TrainingInterrupted as e:
        where = (f"saved {e.checkpoint}; continue with: tinylm train --out {out} --resume"
                 if e.checkpoint else "not saved")
        print(f"tinylm train: interrupted after step {e.step}: {where}", file=sys.stderr)
        return 130
    if result.val_loss is not None:
        rate = (f" in {result.seconds:.0f} s ({result.tokens_per_s:,.0f} tokens/s)"
                if result.seconds else "")
        print(f"done: {result.step} steps{rate}; validation loss {result.val_loss:.4f}, "
              f"perplexity {result.perplexity:.2f}")
    if result.checkpoint:
        print(f"saved {result.checkpoint} and {result.checkpoint.parent / 'loss.png'}")
    if cfg.num_samples and cfg.sample_tokens:
        print(f"\nsamples ({cfg.sample_tokens} tokens at temperature {cfg.temperature:g}, "
              f"after the prompt {cfg.sample_prompt!r}):")
        for i, text in enumerate(trainer.sample()):
            print(f"--- {i + 1} ---")
            print(text.strip("\n"))
        print(f"---\nmore: tinylm generate {out} --max-new-tokens 500 --seed 1")
    return 0


def _print_plan(trainer, out, resumed: bool) -> None:
    cfg, corpus = trainer.config, trainer.corpus
    what = "resuming" if resumed else "training"
    print(f"{what} {cfg.model} ({trainer.num_parameters:,} parameters) on {cfg.corpus!r}: "
          f"{cfg.tokenizer} tokens, vocabulary {trainer.tokenizer.vocab_size}, "
          f"{corpus.train_ids.size:,} training / {corpus.val_ids.size:,} validation tokens")
    steps = (f"steps {trainer.step + 1}-{cfg.steps}" if resumed else f"{cfg.steps} steps")
    print(f"{steps} of {cfg.batch_size}x{cfg.seq_len} tokens, lr {cfg.lr:g} (warmup "
          f"{trainer.scheduler.warmup_steps}, cosine), seed {cfg.seed}, on {cfg.device}; "
          f"checkpoints in {out}/", flush=True)


# --- generate -----------------------------------------------------------------------------


def _generate(args) -> int:
    from .models import generate
    from .train import load_trained

    _threads(args)
    try:
        run = load_trained(args.run, device=args.device)
        prompt = args.prompt
        if prompt is None:
            prompt = run.config.sample_prompt if run.config else "\n"
        if not run.tokenizer.encode(prompt):
            return _fail("generate", f"the prompt {prompt!r} has no tokens")
    except _setup_errors() as e:
        return _fail("generate", e)
    for i in range(args.num_samples):
        seed = None if args.seed is None else args.seed + i
        text = generate(run.model, run.tokenizer, prompt, args.max_new_tokens,
                        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                        seed=seed)
        if args.num_samples > 1:
            print(f"--- {i + 1} ---")
        print(text)
    return 0


# --- eval ---------------------------------------------------------------------------------


def _eval(args) -> int:
    from .train import CHECKPOINT, Trainer, find_checkpoint, saved_config

    _threads(args)
    try:
        ckpt = find_checkpoint(args.run)
        config = saved_config(ckpt.parent) if ckpt.name == CHECKPOINT else None
        if config is None:
            return _fail("eval", f"'{ckpt}' is not a run's {CHECKPOINT}; give its run folder")
        config = config.replace(device=args.device)
        trainer = Trainer(config, ckpt.parent, resume=True, quiet=True)
    except _setup_errors() as e:
        return _fail("eval", e)
    loss = trainer.evaluate()
    n = min(trainer.corpus.val_ids.size - 1, config.eval_tokens)
    ppl = math.exp(loss) if loss < 700 else math.inf
    print(f"step {trainer.step}: validation loss {loss:.4f} nats/token, perplexity {ppl:.2f} "
          f"({config.model} on {config.corpus!r}, {config.tokenizer} tokens; the first "
          f"{n:,} tokens of its last {config.val_fraction:.0%})")
    return 0


# --- the parsers ---------------------------------------------------------------------------


def add_train_parsers(sub) -> None:
    """Register ``train``, ``generate`` and ``eval`` on the ``tinylm`` subparsers."""
    from .train import MODELS, PRESETS, TOKENIZERS

    t = sub.add_parser(
        "train", help="train a language model (default: a small LSTM on the sonnets)",
        description="Train a language model on a shipped corpus or a text file, with a "
        "progress bar, validation loss and perplexity, checkpoints, a loss plot, exact "
        "resume and a clean save on Ctrl-C; print samples at the end. Options not given "
        "come from the preset (tinylm train --list-presets).")
    t.add_argument("--preset", choices=list(PRESETS), help="start from this preset "
                   "(default: the --model's own, or lstm)")
    t.add_argument("--model", choices=MODELS, help="lstm, gru, rnn or gpt (its preset)")
    t.add_argument("--corpus", metavar="NAME|PATH",
                   help="sonnets, names, plays, or a UTF-8 text file (default: sonnets)")
    t.add_argument("--tokenizer", choices=TOKENIZERS, help="char, word or bpe (default: char)")
    t.add_argument("--steps", type=_int_at_least(1), metavar="N", help="optimizer steps")
    t.add_argument("--out", metavar="DIR", help="run folder (default: runs/PRESET)")
    t.add_argument("--resume", action="store_true",
                   help="continue the checkpoint in --out (exactly where it stopped)")
    t.add_argument("--overwrite", action="store_true",
                   help="start afresh even if --out holds a checkpoint")
    t.add_argument("--device", metavar="cpu|cuda", help="where to train (default: cpu)")
    t.add_argument("--seed", type=_int_at_least(0), metavar="S", help="random seed (default 0)")
    t.add_argument("--batch-size", type=_int_at_least(1), metavar="B")
    t.add_argument("--seq-len", type=_int_at_least(1), metavar="T",
                   help="tokens per row (the GPT's context)")
    t.add_argument("--lr", type=_float_in(0.0, low_open=True), metavar="LR",
                   help="peak learning rate")
    t.add_argument("--eval-every", type=_int_at_least(1), metavar="N",
                   help="validation loss every N steps")
    t.add_argument("--save-every", type=_int_at_least(1), metavar="N",
                   help="checkpoint every N steps (and at the end)")
    t.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    _add_threads(t)
    t.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    t.set_defaults(func=_ctrl_c_exits_130("train")(_train))

    g = sub.add_parser(
        "generate", help="sample text from a trained model",
        description="Load a run's checkpoint (config, tokenizer, weights) and continue a "
        "prompt.")
    g.add_argument("run", metavar="DIR", help="a run folder (tinylm train --out DIR) or a "
                   "checkpoint file")
    g.add_argument("--prompt", help="text to continue (default: the run's sample prompt)")
    g.add_argument("--max-new-tokens", type=_int_at_least(0), default=300, metavar="N",
                   help="tokens to generate (default 300)")
    g.add_argument("--temperature", type=_float_in(0.0), default=0.8, metavar="T",
                   help="0 is greedy; below 1 sharper, above 1 flatter (default 0.8)")
    g.add_argument("--top-k", type=_int_at_least(1), metavar="K",
                   help="sample among the K most likely tokens only")
    g.add_argument("--top-p", type=_float_in(0.0, 1.0, low_open=True), metavar="P",
                   help="sample from the smallest set of tokens with probability >= P")
    g.add_argument("--seed", type=_int_at_least(0), metavar="S",
                   help="seed for reproducible text (default: a fresh draw)")
    g.add_argument("--num-samples", type=_int_at_least(1), default=1, metavar="N",
                   help="texts to generate (seeds S, S+1, ...)")
    g.add_argument("--device", default="cpu", metavar="cpu|cuda")
    _add_threads(g)
    g.set_defaults(func=_ctrl_c_exits_130("generate")(_generate))

    e = sub.add_parser(
        "eval", help="validation loss and perplexity of a trained model",
        description="Evaluate a run's checkpoint on the validation slice its training "
        "logged (the same numbers as the training log).")
    e.add_argument("run", metavar="DIR", help="a run folder (tinylm train --out DIR)")
    e.add_argument("--device", default="cpu", metavar="cpu|cuda")
    _add_threads(e)
    e.set_defaults(func=_ctrl_c_exits_130("eval")(_eval))
