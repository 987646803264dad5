r"""Sampling text from a language model: temperature, top-k, top-p (nucleus), greedy.

One step turns the logits z (V,) of the next token into a distribution and draws from it:

1. temperature \tau: p_i \propto e^{z_i / \tau}. \tau < 1 sharpens the distribution, \tau > 1
   flattens it, \tau = 0 is greedy decoding (always the argmax; no random number is drawn).
2. top-k: keep the k most probable tokens (exactly min(k, V) of them; ties in z are
   broken towards the lower id, so ``top_k=1`` is greedy), renormalise.
3. top-p (nucleus, Holtzman et al. 2019): sort what is left by probability, keep the
   smallest prefix whose cumulative probability is >= p (always at least one token),
   renormalise. ``top_p=1`` keeps everything.
4. draw: one uniform u in [0, 1) from the generator; the token is the first i whose
   cumulative probability exceeds u (inverse-CDF sampling).

Steps 2 and 3 apply in that order, each to the distribution the step before left.
``next_token_probs`` returns the distribution of steps 1-3, ``sample_next`` draws from it,
``generate_ids`` / ``generate`` run the whole loop. See lessons/10_language_model.py.

How the loop feeds the model: a model whose forward returns a state (the RNN LMs) reads
the prompt once and then only each new token, with the state it returned; a model that
returns None (the GPT) re-reads the sequence every step, cropped to its last
``model.context_length`` tokens.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend, random
from ..creation import int64, tensor
from ..tensor import Tensor, no_grad

__all__ = ["next_token_probs", "sample_next", "generate_ids", "generate"]


def _check_sampling(where: str, temperature, top_k, top_p) -> None:
    if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
            or not math.isfinite(temperature) or temperature < 0):
        raise ValueError(f"{where}: temperature must be a finite number >= 0 (0: greedy), "
                         f"got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral)
                              or top_k < 1):
        raise ValueError(f"{where}: top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, numbers.Real)
                              or not 0.0 < top_p <= 1.0):
        raise ValueError(f"{where}: top_p must be None or a number in (0, 1], got {top_p!r}")


def next_token_probs(logits, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> np.ndarray:
    """The sampling distribution (V,) float64 after temperature, top-k and top-p (steps 1-3
    of the module docstring); tokens filtered out get probability 0. ``logits``: a 1-D
    Tensor or array of V scores, finite or -inf (a token that may never be drawn)."""
    _check_sampling("next_token_probs", temperature, top_k, top_p)
    z = backend.to_numpy(logits.data if isinstance(logits, Tensor) else np.asarray(logits))
    z = z.astype(np.float64)
    if z.ndim != 1 or z.size == 0:
        raise ValueError(f"next_token_probs: logits must be 1-D (V,) with V >= 1, got shape "
                         f"{z.shape}")
    if np.isnan(z).any() or np.isposinf(z).any() or np.isneginf(z).all():
        raise ValueError("next_token_probs: logits must be finite or -inf, with at least one "
                         "finite (got NaN, +inf, or all -inf)")
    V = z.size
    probs = np.zeros(V)
    if temperature == 0:  # greedy: all the mass on the argmax (the lowest id among ties)
        probs[int(np.argmax(z))] = 1.0
        return probs
    z = (z - z.max()) / temperature  # step 1; max first, so a tiny tau cannot overflow
    order = np.argsort(-z, kind="stable")  # most probable first; ties: lower id first
    order = order[: V if top_k is None else min(int(top_k), V)]  # step 2
    p = np.exp(z[order])  # (k,), p[0] = e^0 = 1
    p /= p.sum()
    if top_p is not None and top_p < 1.0:  # step 3
        # BEGIN SOLUTION lesson10 top-p: keep the smallest most-probable prefix with mass >= p
        cum = np.cumsum(p)
        n = min(int(np.searchsorted(cum, top_p, side="left")) + 1, p.size)  # first cum >= p
        order, p = order[:n], p[:n] / p[:n].sum()
        # END SOLUTION
    probs[order] = p
    return probs


def sample_next(logits, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, rng: np.random.Generator | None = None) -> int:
    """Draw the next token id from ``logits`` (V,): ``next_token_probs`` and then one
    uniform from ``rng`` (default: tinylm's generator, ``tinylm.manual_seed``). Greedy
    (``temperature=0``) returns the argmax and draws nothing."""
    probs = next_token_probs(logits, temperature, top_k, top_p)
    if temperature == 0:
        return int(np.argmax(probs))
    rng = random.generator() if rng is None else rng
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]  # exactly 1.0 at the end, so u < 1 always lands on some token
    u = rng.random()  # U[0, 1)
    return int(np.searchsorted(cdf, u, side="right"))  # first i with cdf_i > u (p_i > 0)


def _device(model) -> backend.Device:
    p = next(iter(model.parameters()), None)
    return backend.CPU if p is None else p.device


def generate_ids(model, ids, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = None) -> list[int]:
    """The ``max_new_tokens`` token ids that ``model`` generates after the prompt ``ids``
    (a non-empty list of ints); the prompt is not included. Arguments as ``generate``."""
    _check_sampling("generate", temperature, top_k, top_p)
    if (isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral)
            or max_new_tokens < 0):
        raise ValueError(f"generate: max_new_tokens must be an int >= 0, got "
                         f"{max_new_tokens!r}")
    seq = [int(i) for i in ids]
    if not seq:
        raise ValueError("generate: the prompt has no tokens; the model needs at least one "
                         "token to condition on")
    context = getattr(model, "context_length", None)
    device = _device(model)
    modes = [(m, m.training) for m in model.modules()]
    saved_rng = None
    if seed is not None:
        saved_rng = random.get_rng_state()
        random.manual_seed(seed)
    new: list[int] = []
    try:
        model.eval()  # no dropout while sampling
        with no_grad():
            state = None
            feed = seq[-context:] if context else seq
            for _ in range(int(max_new_tokens)):
                x = tensor([feed], dtype=int64, device=device)  # (1, T)
                logits, state = model(x, state)  # (1, T, V)
                tok = sample_next(logits.data[0, -1], temperature, top_k, top_p)
                new.append(tok)
                seq.append(tok)
                if state is not None:  # recurrent: the state has read all but the new token
                    feed = [tok]
                else:  # re-read the sequence, at most the last context_length tokens
                    feed = seq[-context:] if context else seq
    finally:
        for m, training in modes:
            m.training = training
        if saved_rng is not None:
            random.set_rng_state(saved_rng)
    return new


def generate(model, tokenizer, prompt: str, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None) -> str:
    """Continue ``prompt`` by ``max_new_tokens`` tokens; return the prompt and its
    continuation, decoded together by ``tokenizer``.

    - ``temperature`` >= 0 (0: greedy), ``top_k`` >= 1, ``top_p`` in (0, 1]: see the module
      docstring for exactly what each keeps.
    - ``seed``: seed tinylm's generator for this call only (``manual_seed(seed)``, and the
      generator's previous state is restored afterwards), so the same seed gives the same
      text and the global random stream is undisturbed. ``None`` draws from the global
      stream (and advances it).
    - Runs under ``no_grad`` in eval mode; every submodule's train/eval mode is restored.
    - The prompt must encode to at least one token; a character unknown to a
      ``CharTokenizer`` raises the tokenizer's error, naming it.

    The returned text starts with the prompt exactly for the char and BPE tokenizers
    (they round-trip); a word tokenizer returns its normalised form of the prompt.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"generate: prompt must be a str, got {type(prompt).__name__}")
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError(f"generate: the prompt {prompt!r} encodes to no tokens; give a "
                         "prompt with at least one token (e.g. a newline for a char model)")
    V = getattr(getattr(model, "config", None), "vocab_size", None)
    if V is not None and V != tokenizer.vocab_size:
        raise ValueError(f"generate: the tokenizer has {tokenizer.vocab_size} tokens but the "
                         f"model was built for vocab_size={V}")
    new = generate_ids(model, ids, max_new_tokens, temperature, top_k, top_p, seed)
    return tokenizer.decode(list(ids) + new)
