"""What every language model shares: the forward contract, the ids check, detaching state.

Every model in ``tinylm.models`` is called the same way:

    logits, state = model(idx, state=None)     idx (B, T) int ids -> logits (B, T, V)

``logits[b, t]`` scores the token that follows ``idx[b, : t + 1]``. ``state`` is what a
recurrent model carries from one call to the next (h, or (h, c) for an LSTM); the GPT has
none and returns None. Feeding a sequence in two calls, the second with the first's
state, gives the same logits as one call (the tests check it to 1e-12 in float64).
"""

from __future__ import annotations

from ..nn.module import Module
from ..tensor import Tensor

__all__ = ["LanguageModel", "detach_state", "resolve_config"]


def detach_state(state):
    """``state`` with every Tensor in it detached from the graph (None stays None).

    Truncated backpropagation through time: carry the state of one window into the next
    for its values, but cut the graph, so the next backward stops at the window's start::

        logits, state = model(x, state)
        loss.backward()
        state = detach_state(state)   # h, or (h, c) for an LSTM
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"detach_state: expected None, a Tensor or a tuple of them, got "
                    f"{type(state).__name__}")


def resolve_config(name: str, config, fields: dict, cls: type, fixed: dict | None = None):
    """``config`` as given, or built from keyword fields; ``fixed`` are fields a class pins
    (``GRULM`` pins ``cell="gru"``)."""
    fixed = fixed or {}
    if config is None:
        if not fields:
            raise TypeError(f"{name}: pass a {cls.__name__} or its fields as keywords, e.g. "
                            f"{name}(vocab_size=65)")
        for k, v in fixed.items():
            if fields.setdefault(k, v) != v:
                raise ValueError(f"{name}: {k} is {v!r} for this class, got {fields[k]!r}")
        return cls(**fields)
    if fields:
        raise TypeError(f"{name}: pass either a config or keyword fields, not both "
                        f"(got {sorted(fields)} besides the config)")
    if not isinstance(config, cls):
        raise TypeError(f"{name}: config must be a {cls.__name__}, got {type(config).__name__}")
    for k, v in fixed.items():
        if getattr(config, k) != v:
            raise ValueError(f"{name}: needs {k}={v!r}, got a config with {k}="
                             f"{getattr(config, k)!r} (use build_model(config))")
    return config


class LanguageModel(Module):
    """Base class of RNNLM and GPT: holds ``config``, checks the ids, counts parameters."""

    config: object

    @staticmethod
    def detach_state(state):
        """Same as ``tinylm.models.detach_state``."""
        return detach_state(state)

    def num_parameters(self) -> int:
        """Number of learned numbers (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    def _check_idx(self, idx) -> tuple[int, int]:
        """Check that ``idx`` is a (B, T) integer Tensor with T >= 1; return (B, T)."""
        name = type(self).__name__
        if not isinstance(idx, Tensor):
            raise TypeError(f"{name}: idx must be a (B, T) integer Tensor of token ids, got "
                            f"{type(idx).__name__} (make one with tinylm.tensor(ids))")
        if idx.ndim != 2:
            raise ValueError(f"{name}: idx must be 2-D (B, T), got shape {tuple(idx.shape)} "
                             "(a single sequence: idx.unsqueeze(0))")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"{name}: idx must hold integer token ids, got dtype {idx.dtype}")
        B, T = idx.shape
        if T == 0:
            raise ValueError(f"{name}: idx has no tokens (shape {tuple(idx.shape)})")
        return B, T
