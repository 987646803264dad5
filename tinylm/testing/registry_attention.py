"""Registry entries for attention: ``F.scaled_dot_product_attention``,
``nn.MultiheadAttention``, ``nn.TransformerBlock`` and the positional encodings.

Masks are positional arguments of the entries' ops (so that a float mask is a leaf
whose gradient is checked, and a bool one a constant); a float mask holding ``-inf``
is listed in ``nondiff`` (central differences cannot step an infinity). Dropout
samples fix the seed (``seed=``, an argument of the entry's op only), so every call
draws the same mask, and the NumPy references draw the same numbers from
``np.random.default_rng(seed)`` (tinylm's generator is that PCG64 stream). Layers are
built once per configuration with the RNG state kept, and the sample's tensors put in
as their parameters at each call.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import nn
from ..nn import functional as F
from ..nn.positional import sinusoidal_table
from .opinfo import ErrorInput, OpInfo, SampleInput
from .registry_nn import KeepRng, normal, np_layer_norm

_erf = np.vectorize(math.erf, otypes=[np.float64])
NEG_INF = -math.inf


@functools.lru_cache(maxsize=32)
def _layer(cls, *args, **kwargs):
    """One layer per configuration, built once (RNG left untouched): the gradient checks
    call an op hundreds of times, and building costs as much as a forward."""
    with KeepRng():
        return cls(*args, **kwargs)


def _with_params(m, **params):
    """``m`` with the given tensors as its parameters (names may be dotted)."""
    for name, t in params.items():
        owner, _, leaf = name.rpartition(".")
        sub = dict(m.named_modules())[owner] if owner else m
        sub._parameters[leaf] = t  # the sample's leaf itself, so its gradient is checked
    return m


def _seeded(seed, fn):
    if seed is None:
        return fn()
    with KeepRng(seed):
        return fn()


# ----------------------------------------------------------------------------- references


def np_masked_softmax(s):
    """Softmax over the last dim; a row of -inf gives zeros (see MaskedSoftmaxFn)."""
    if s.shape[-1] == 0:
        return s.copy()
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    d = e.sum(axis=-1, keepdims=True)
    return e / np.where(d == 0, 1.0, d)


class _Draws:
    """Dropout masks in the order tinylm draws them from one seeded generator."""

    def __init__(self, seed):
        self.rng = None if seed is None else np.random.default_rng(seed)

    def drop(self, a, p):
        if p == 0:
            return a
        return a * (self.rng.random(a.shape) >= p) / (1 - p)


def np_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
            seed=None):
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    s = (query @ np.swapaxes(key, -1, -2)) * scale  # (..., L, S)
    L, S = s.shape[-2:]
    if is_causal:
        s = np.where(np.tril(np.ones((L, S), bool)), s, NEG_INF)
    elif attn_mask is not None and attn_mask.dtype == bool:
        s = np.where(attn_mask, s, NEG_INF)
    elif attn_mask is not None:
        s = s + attn_mask
    return _Draws(seed).drop(np_masked_softmax(s), dropout_p) @ value


def _additive(mask):
    return np.where(mask, NEG_INF, 0.0) if mask.dtype == bool else mask


def np_mha(query, key, value, w_in, b_in, w_out, b_out, key_padding_mask=None, attn_mask=None,
           num_heads=2, batch_first=False, need_weights=True, average_attn_weights=True,
           is_causal=False, dropout=0.0, train=True, seed=None, draws=None):
    key = query if key is None else key
    value = key if value is None else value
    batched = query.ndim == 3
    if not batched:
        query, key, value = query[None], key[None], value[None]
    elif not batch_first:
        query, key, value = (np.swapaxes(t, 0, 1) for t in (query, key, value))
    (N, L, E), S, H = query.shape, key.shape[1], num_heads
    D = E // H
    b_in = np.zeros(3 * E) if b_in is None else b_in
    heads = [(t @ w_in[i * E:(i + 1) * E].T + b_in[i * E:(i + 1) * E])
             .reshape(N, -1, H, D).transpose(0, 2, 1, 3)
             for i, t in enumerate((query, key, value))]  # (N, H, T, D) each
    s = heads[0] @ np.swapaxes(heads[1], -1, -2) / math.sqrt(D)  # (N, H, L, S)
    if attn_mask is not None:
        s = s + _additive(attn_mask).reshape((L, S) if attn_mask.ndim == 2 else (N, H, L, S))
    if key_padding_mask is not None:
        s = s + _additive(key_padding_mask).reshape(N, 1, 1, S)
    draws = draws or _Draws(seed)
    a = draws.drop(np_masked_softmax(s), dropout if train else 0.0)
    y = (a @ heads[2]).transpose(0, 2, 1, 3).reshape(N, L, E) @ w_out.T
    y = y + (0.0 if b_out is None else b_out)
    w = a.mean(axis=1) if average_attn_weights else a
    if not batched:
        y, w = y[0], w[0]
    elif not batch_first:
        y = np.swapaxes(y, 0, 1)
    return (y, w) if need_weights else y


def np_block(x, ln1_w, ln1_b, w_in, b_in, w_out, b_out, ln2_w, ln2_b, fc_w, fc_b, proj_w,
             proj_b, n_heads=2, mlp_ratio=2, dropout=0.0, seed=None, d_model=None):
    T = x.shape[-2]
    draws = _Draws(seed)
    h = np_layer_norm(x, x.shape[-1], ln1_w, ln1_b)
    causal = np.triu(np.ones((T, T), bool), 1)
    a = np_mha(h, h, h, w_in, b_in, w_out, b_out, attn_mask=causal, num_heads=n_heads,
               batch_first=True, need_weights=False, dropout=dropout, draws=draws)
    x = x + draws.drop(a, dropout)
    u = np_layer_norm(x, x.shape[-1], ln2_w, ln2_b) @ fc_w.T + (0.0 if fc_b is None else fc_b)
    u = 0.5 * u * (1 + _erf(u / math.sqrt(2)))
    u = u @ proj_w.T + (0.0 if proj_b is None else proj_b)
    return x + draws.drop(u, dropout)


# ----------------------------------------------------------------------------- ops


def f_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
           seed=None):
    """F.scaled_dot_product_attention; with ``seed``, the RNG is seeded for the call."""
    return _seeded(seed, lambda: F.scaled_dot_product_attention(
        query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
        scale=scale))


def nn_mha(query, key, value, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias,
           key_padding_mask=None, attn_mask=None, num_heads=2, batch_first=False,
           need_weights=True, average_attn_weights=True, is_causal=False, dropout=0.0,
           train=True, seed=None):
    """MultiheadAttention with the sample's parameters; key=None (value=None) means
    self-attention: the same tensor is query, key and value."""
    key = query if key is None else key
    value = key if value is None else value
    E = in_proj_weight.shape[1]
    bias = in_proj_bias is not None
    params = {"in_proj_weight": in_proj_weight, "out_proj.weight": out_proj_weight}
    if bias:
        params.update({"in_proj_bias": in_proj_bias, "out_proj.bias": out_proj_bias})
    m = _with_params(_layer(nn.MultiheadAttention, E, num_heads, dropout, bias=bias,
                            batch_first=batch_first, dtype=in_proj_weight.dtype),
                     **params).train(train)
    y, w = _seeded(seed, lambda: m(query, key, value, key_padding_mask=key_padding_mask,
                                   need_weights=need_weights, attn_mask=attn_mask,
                                   average_attn_weights=average_attn_weights,
                                   is_causal=is_causal))
    return (y, w) if need_weights else y


_BLOCK_PARAMS = ("ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
                 "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias",
                 "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias")


def nn_block(x, *params, n_heads=2, mlp_ratio=2, dropout=0.0, seed=None, d_model=None):
    """TransformerBlock with the sample's parameters, in ``_BLOCK_PARAMS`` order
    (``d_model`` defaults to the input's last dim)."""
    d = x.shape[-1] if d_model is None else d_model
    bias = params[1] is not None
    named = {k: p for k, p in zip(_BLOCK_PARAMS, params) if p is not None}
    m = _with_params(_layer(nn.TransformerBlock, d, n_heads, dropout, mlp_ratio, bias=bias,
                            dtype=x.dtype), **named)
    return _seeded(seed, lambda: m(x))


def nn_sinusoidal(x, max_len=8):
    return _layer(nn.SinusoidalPositionalEncoding, x.shape[-1], max_len, dtype=x.dtype,
                  device=x.device)(x)


def nn_learned(x, weight):
    m = _layer(nn.LearnedPositionalEmbedding, *weight.shape, dtype=weight.dtype)
    return _with_params(m, weight=weight)(x)


# ----------------------------------------------------------------------------- samples


def sdpa_samples(rng):
    n = lambda *s: normal(rng, s)  # noqa: E731
    keep = np.array([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1], [1, 1, 0, 0, 0]], bool)  # (L=3, S=5)
    full = keep.copy()
    full[1] = False  # query 1 may attend to nothing
    inf_mask = np.where(rng.random((2, 3, 5)) < 0.3, NEG_INF, n(2, 3, 5))
    inf_mask[:, :, 0] = 0.0  # key 0 stays visible: no fully masked row
    return [
        SampleInput((n(2, 3, 4), n(2, 3, 4), n(2, 3, 4)), name="self-attention shapes (2, 3, 4)"),
        SampleInput((n(2, 3, 4), n(2, 5, 4), n(2, 5, 3)), name="cross: L=3, S=5, Ev=3"),
        SampleInput((n(1, 2, 3, 2), n(1, 2, 4, 2), n(1, 2, 4, 2)), name="heads (1, 2, 3, 2)"),
        SampleInput((n(3, 4), n(5, 4), n(5, 2)), name="unbatched (3, 4) x (5, 4)"),
        SampleInput((n(2, 1, 3, 2), n(1, 2, 4, 2), n(1, 2, 4, 3)),
                    name="broadcast batch dims (2, 1) with (1, 2)"),
        SampleInput((n(2, 3, 4), n(2, 5, 4), n(2, 5, 3), keep), name="bool mask (3, 5)"),
        SampleInput((n(2, 3, 4), n(2, 5, 4), n(2, 5, 3), keep[None, :1]),
                    name="bool mask (1, 1, 5) broadcast"),
        SampleInput((n(2, 3, 4), n(2, 5, 4), n(2, 5, 3), n(3, 5)),
                    name="additive mask (3, 5), its gradient checked"),
        SampleInput((n(2, 3, 4), n(2, 5, 4), n(2, 5, 3), inf_mask), nondiff=(3,),
                    name="additive mask with -inf (2, 3, 5)"),
        SampleInput((n(2, 4, 3), n(2, 4, 3), n(2, 4, 3)), {"is_causal": True},
                    name="is_causal L=S=4"),
        SampleInput((n(3, 2), n(5, 2), n(5, 2)), {"is_causal": True},
                    name="is_causal L=3 < S=5 (top-left)"),
        SampleInput((n(2, 3, 4), n(2, 5, 4), n(2, 5, 3)), {"scale": 0.3}, name="scale=0.3"),
        SampleInput((n(2, 3, 4), n(2, 5, 4), n(2, 5, 3), full),
                    name="fully masked row (bool): zeros"),
        SampleInput((n(2, 3, 4), n(2, 5, 4), n(2, 5, 3), np.where(full, 0.0, NEG_INF)),
                    nondiff=(3,), name="fully masked row (-inf): zeros"),
        SampleInput((n(2, 3, 4) * 20, n(2, 5, 4) * 20, n(2, 5, 3)),
                    name="large scores (saturated softmax)"),
        SampleInput((n(2, 3, 4), n(2, 5, 4), n(2, 5, 3)), {"dropout_p": 0.5, "seed": 0},
                    name="dropout_p=0.5, seed 0"),
        SampleInput((n(2, 0, 4), n(2, 5, 4), n(2, 5, 3)), name="zero-size L=0"),
        SampleInput((n(2, 3, 4), n(2, 0, 4), n(2, 0, 3)), name="no keys S=0: zeros"),
    ]


def sdpa_errors():
    x, k, v = np.ones((2, 3, 4)), np.ones((2, 5, 4)), np.ones((2, 5, 3))
    pre = "scaled_dot_product_attention: "
    return [
        ErrorInput(SampleInput((x, k, v, np.ones((3, 5), bool)), {"is_causal": True}),
                   RuntimeError, pre + r"attn_mask must not be given with is_causal=True"),
        ErrorInput(SampleInput((x, np.ones((2, 5, 3)), v)), ValueError,
                   pre + r"query \(2, 3, 4\) and key \(2, 5, 3\) must have the same last dim"),
        ErrorInput(SampleInput((x, k, np.ones((2, 4, 3)))), ValueError,
                   pre + r"key \(2, 5, 4\) and value \(2, 4, 3\) must have the same number"),
        ErrorInput(SampleInput((x, k, v, np.ones((3, 4), bool))), ValueError,
                   pre + r"attn_mask of shape \(3, 4\) does not broadcast to the scores' shape "
                   r"\(2, 3, 5\)"),
        ErrorInput(SampleInput((x, k, v, np.ones((3, 5), np.int64))), TypeError,
                   pre + r"attn_mask must be bool or of the query's dtype float64, got int64"),
        ErrorInput(SampleInput((x, k.astype(np.float32), v)), TypeError,
                   pre + r"query, key and value must share one float dtype"),
        ErrorInput(SampleInput((np.ones(4), k, v)), ValueError,
                   pre + r"query, key and value must be at least 2-D \(..., L, E\), got query of "
                   r"shape \(4,\)"),
        ErrorInput(SampleInput((np.ones((3, 3, 4)), k, v)), ValueError,
                   pre + r"shapes \(3,\) and \(2,\) do not broadcast"),
        ErrorInput(SampleInput((x, k, v), {"dropout_p": 1.5}), ValueError,
                   pre + r"dropout probability has to be between 0 and 1, but got 1.5"),
    ]


def _mha_params(rng, E=4, bias=True):
    n = lambda *s: normal(rng, s)  # noqa: E731
    return (n(3 * E, E) * 0.5, n(3 * E) if bias else None, n(E, E) * 0.5,
            n(E) if bias else None)


def mha_samples(rng):
    """To keep the sweep quick, second derivatives (the slowest check) run on the samples
    marked ``gg`` (each path of the layer once; the layer is a product of ops whose own
    entries check theirs), and the mask samples check the gradients of the inputs and
    masks only (``inputs_only``: the parameters as constants)."""
    n = lambda *s: normal(rng, s)  # noqa: E731
    P = lambda **kw: _mha_params(rng, **kw)  # noqa: E731
    L, S, N, E = 2, 3, 2, 4
    kpm = np.array([[False, True, False], [True, False, False]])  # (N, S), True: padding
    am = np.array([[0, 1, 0], [0, 0, 1]], bool)  # (L, S), True: masked out
    am3 = rng.random((N * 2, L, S)) < 0.4
    am3[..., 0] = False  # key 0 always visible
    kpm_full = kpm.copy()
    kpm_full[0] = True  # batch 0 attends to nothing
    cross = lambda: (n(L, N, E), n(S, N, E), n(S, N, E))  # noqa: E731

    def sample(args, kwargs=None, name="", gg=False, inputs_only=False, nondiff=()):
        nondiff = (3, 4, 5, 6, *nondiff) if inputs_only else nondiff
        return SampleInput(args, kwargs or {}, name=name, gradgrad=gg, nondiff=nondiff)

    return [
        sample((n(L, N, E), None, None, *P()), name="self-attention (L, N, E)", gg=True),
        sample((*cross(), *P()), name="cross-attention L=2, S=3"),
        sample((n(N, L, E), n(N, S, E), n(N, S, E), *P()), {"batch_first": True},
               name="batch_first (N, L, E)"),
        sample((n(L, E), n(S, E), n(S, E), *P()), name="unbatched (L, E)"),
        sample((*cross(), *P(), kpm), name="key_padding_mask bool (N, S)", gg=True,
               inputs_only=True),
        sample((*cross(), *P(), None, am), name="attn_mask bool (L, S)", inputs_only=True),
        sample((*cross(), *P(), None, n(L, S)), name="attn_mask float (L, S), its gradient "
               "checked", gg=True, inputs_only=True),
        sample((*cross(), *P(), kpm, am3), {"average_attn_weights": False},
               name="3-D attn_mask (N*H, L, S) and kpm, per-head weights", inputs_only=True),
        sample((*cross(), *P(), np.where(kpm, NEG_INF, 0.0), am), nondiff=(7,),
               name="float key_padding_mask (-inf) with bool attn_mask", inputs_only=True),
        sample((*cross(), *P(), kpm, n(L, S)), {"need_weights": False},
               name="need_weights=False: the F.scaled_dot_product_attention path", gg=True),
        sample((n(N, L, E), None, None, *P(), None, np.triu(np.ones((L, L), bool), 1)),
               {"batch_first": True, "is_causal": True, "need_weights": False},
               name="is_causal hint with the causal attn_mask"),
        sample((*cross(), *P(bias=False)), name="bias=False"),
        sample((*cross(), *P(), kpm_full), name="fully masked batch: zeros + out bias"),
        sample((*cross(), *P(), kpm_full), {"need_weights": False},
               name="fully masked batch, need_weights=False", inputs_only=True),
        sample((*cross(), *P()), {"dropout": 0.5, "seed": 0}, name="dropout=0.5, seed 0"),
        sample((*cross(), *P()), {"dropout": 0.5, "train": False}, name="dropout, eval",
               inputs_only=True),
        sample((n(L, N, E), None, None, *P()), {"num_heads": 4}, name="4 heads of dim 1"),
    ]


def mha_errors():
    x, k = np.ones((3, 2, 4)), np.ones((5, 2, 4))
    P = (np.ones((12, 4)), np.ones(12), np.ones((4, 4)), np.ones(4))
    pre = "MultiheadAttention: "
    return [
        ErrorInput(SampleInput((np.ones((3, 2, 5)), None, None, *P)), ValueError,
                   pre + r"query of shape \(3, 2, 5\) does not end in embed_dim=4"),
        ErrorInput(SampleInput((x, np.ones((5, 4)), np.ones((5, 4)), *P)), ValueError,
                   pre + r"query, key and value must all be 3-D \(batched\) or all 2-D"),
        ErrorInput(SampleInput((x, k, np.ones((4, 2, 4)), *P)), ValueError,
                   pre + r"key \(5, 2, 4\) and value \(4, 2, 4\) must have the same shape"),
        ErrorInput(SampleInput((x, k, k, *P, None, np.ones((3, 4), bool))), ValueError,
                   pre + r"the 2-D attn_mask has shape \(3, 4\), but should be \(L, S\) = "
                   r"\(3, 5\)"),
        ErrorInput(SampleInput((x, k, k, *P, None, np.ones((2, 3, 5), bool))), ValueError,
                   pre + r"the 3-D attn_mask has shape \(2, 3, 5\), but should be "
                   r"\(N \* num_heads, L, S\) = \(4, 3, 5\)"),
        ErrorInput(SampleInput((x, k, k, *P, np.ones((5, 2), bool))), ValueError,
                   pre + r"key_padding_mask has shape \(5, 2\), but should be \(N, S\) = "
                   r"\(2, 5\)"),
        ErrorInput(SampleInput((x, k, k, *P, np.ones((2, 5), np.int64))), TypeError,
                   pre + r"key_padding_mask must be bool or of the query's dtype float64"),
        ErrorInput(SampleInput((x, None, None, *P), {"is_causal": True}), RuntimeError,
                   pre + r"is_causal=True needs attn_mask"),
        ErrorInput(SampleInput((x, None, None, *P), {"num_heads": 3}), ValueError,
                   pre + r"embed_dim 4 must be divisible by num_heads 3"),
    ]


def block_samples(rng):
    n = lambda *s: normal(rng, s)  # noqa: E731
    d, h = 4, 8  # mlp_ratio 2

    def params(bias=True):
        b = (lambda *s: n(*s)) if bias else (lambda *s: None)
        return (1 + 0.1 * n(d), b(d), 0.5 * n(3 * d, d), b(3 * d), 0.5 * n(d, d), b(d),
                1 + 0.1 * n(d), b(d), 0.5 * n(h, d), b(h), 0.5 * n(d, h), b(d))

    return [  # second derivatives (the slowest check) on the smallest sample only
        SampleInput((n(2, 3, d), *params()), name="(B=2, T=3, d=4), 2 heads", gradgrad=False),
        SampleInput((n(2, d), *params()), name="unbatched (T=2, d=4)"),
        SampleInput((n(1, 3, d), *params(bias=False)), {"dropout": 0.2, "seed": 0},
                    name="bias=False, dropout=0.2, seed 0", gradgrad=False),
    ]


def block_errors():
    P = [np.ones(s) for s in [4, 4, (12, 4), 12, (4, 4), 4, 4, 4, (8, 4), 8, (4, 8), 4]]
    return [ErrorInput(SampleInput((np.ones((2, 3, 5)), *P), {"d_model": 4}), ValueError,
                       r"TransformerBlock: input \(2, 3, 5\) must be \(B, T, d_model\) or "
                       r"\(T, d_model\) with d_model=4")]


def positional_samples(rng, learned):
    n = lambda *s: normal(rng, s)  # noqa: E731

    def sample(x, max_len, name):
        return SampleInput((x, n(max_len, x.shape[-1])) if learned else (x,),
                           {} if learned else {"max_len": max_len}, name=name)

    return [sample(n(2, 3, 4), 5, "(2, 3, 4), max_len 5"),
            sample(n(3, 5), 3, "unbatched, odd d_model 5, T = max_len 3"),
            sample(n(2, 2, 3, 4), 6, "two batch dims")]


def positional_errors(name, learned):
    def errors():
        def sample(x, max_len):
            return SampleInput((x, np.ones((max_len, x.shape[-1]))) if learned else (x,),
                               {} if learned else {"max_len": max_len})

        return [ErrorInput(sample(np.ones((2, 6, 4)), 5), ValueError,
                           name + r": sequence length 6 exceeds max_len=5"),
                ErrorInput(sample(np.ones(4), 5), ValueError,
                           name + r": input of shape \(4,\) must be \(..., T, d_model=4\)")]

    return errors


def _np_positional(learned):
    if learned:
        return lambda x, w: x + w[: x.shape[-2]]
    return lambda x, max_len=8: x + sinusoidal_table(max_len, x.shape[-1])[: x.shape[-2]]


ATTENTION = [
    OpInfo("F.scaled_dot_product_attention", f_sdpa, sdpa_samples, sdpa_errors, ref=np_sdpa,
           notes="fully masked rows give zeros (as PyTorch 2.5+); dropout with fixed seeds"),
    OpInfo("nn.MultiheadAttention", nn_mha, mha_samples, mha_errors, ref=np_mha,
           notes="bool masks True = masked out (PyTorch's MHA convention)"),
    OpInfo("nn.TransformerBlock", nn_block, block_samples, block_errors, ref=np_block),
    OpInfo("nn.SinusoidalPositionalEncoding", nn_sinusoidal,
           lambda rng: positional_samples(rng, learned=False),
           positional_errors("SinusoidalPositionalEncoding", learned=False),
           ref=_np_positional(learned=False)),
    OpInfo("nn.LearnedPositionalEmbedding", nn_learned,
           lambda rng: positional_samples(rng, learned=True),
           positional_errors("LearnedPositionalEmbedding", learned=True),
           ref=_np_positional(learned=True)),
]
