r"""Scaled dot-product attention (``F.scaled_dot_product_attention``) and ``MultiheadAttention``.

Attention lets each of L query positions read a weighted average of S value vectors,
the weights saying how well the query matches each key:

    A = softmax(Q K^T / \sqrt{E} + mask)      (..., L, S), each row sums to 1
    Y = A V                                    (..., L, Ev)

The softmax, the scaling and the mask are one Function (``MaskedSoftmaxFn``) whose
backward is the softmax Jacobian applied to the upstream gradient; the two products
are ordinary ``matmul`` s, so their gradients come from ``MatMul``. Heads are a batch
dim: ``(B, H, T, D)`` tensors and batched matmuls, no Python loop over heads.
See lessons/09_attention_transformer.py for the derivation.

Masks follow PyTorch, whose two APIs use opposite boolean conventions:

- ``F.scaled_dot_product_attention``: a bool ``attn_mask`` is True where a query MAY
  attend to a key; a float mask is added to the scores (``-inf`` forbids).
- ``nn.MultiheadAttention``: a bool ``attn_mask`` or ``key_padding_mask`` is True
  where attention is NOT allowed (padding); float masks are added.

A query whose every key is masked out (a fully masked row) gets zero weights and a
zero output (zero gradients, too), not NaN: the softmax of a row of ``-inf`` is taken
to be 0, as PyTorch 2.5+'s ``scaled_dot_product_attention`` does. (PyTorch's
``nn.MultiheadAttention`` with ``need_weights=True`` still returns NaN for such a row;
tinylm returns zeros there too.)
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from .. import backend, kernels
from ..autograd import Function
from ..backend import xp_of
from ..ops import matmul, reshape, transpose
from ..ops._util import check_broadcast
from ..ops.shape import unbroadcast
from ..tensor import Tensor, _grad_mode
from . import functional as F
from . import init
from .linear import Linear
from .module import Module
from .parameter import new_parameter

__all__ = ["scaled_dot_product_attention", "MultiheadAttention", "MaskedSoftmaxFn",
           "masked_softmax"]

# ----------------------------------------------------------------------------- the softmax


class MaskedSoftmaxFn(Function):
    r"""Softmax over the last dim of scaled, masked attention scores.

    Forward:  z = scale s + bias,  z_j = -\infty where keep_j is False,
              a_j = e^{z_j - m} / \sum_k e^{z_k - m},   m = \max_k z_k
              A row with every z_j = -\infty (nothing to attend to) gives a = 0.
    Backward: the softmax Jacobian is \partial a_i / \partial z_j = a_i (\delta_{ij} - a_j), so
              dz_i = \sum_j g_j a_j (\delta_{ji} - a_i) = a_i (g_i - \sum_j g_j a_j)
              ds = scale dz,   dbias = dz (summed over broadcast dims),   keep: none.
              Masked entries have a_i = 0, hence dz_i = 0: a forbidden key gets no
              gradient, and a fully masked row passes none at all.
    Shapes:   s (..., L, S), bias and keep broadcastable with it -> a (broadcast, L, S)
    Saves:    a (the output; the backward above is written with Tensor ops of it, so
              it can be differentiated again)

    On NumPy float arrays both directions run as fused kernels (forward: scale, bias, mask
    and softmax in one sweep per row; backward, when no graph is recorded: dz with the
    scale folded in), see ``tinylm.kernels.softmax``; the code below is their reference.
    """

    @staticmethod
    def forward(ctx, s, bias, keep, scale):
        xp = xp_of(s)
        ctx.s_shape, ctx.scale = s.shape, scale
        ctx.b_shape = None if bias is None else bias.shape
        if _masked_kernel(s, bias, keep):
            z = kernels.softmax.masked_softmax(s, bias, keep, scale, _out_shape(s, bias, keep))
            ctx.save_for_backward(z)
            return z
        z = s * xp.asarray(scale, dtype=s.dtype)  # a new array: the steps below work in place
        if bias is not None:
            z = z + bias
        if keep is not None:
            z = xp.where(keep, z, xp.asarray(-math.inf, dtype=z.dtype))
        if z.size:
            m = z.max(axis=-1, keepdims=True)  # (..., L, 1)
            m[m == -math.inf] = 0  # a fully masked row: exp(-inf - 0) = 0 below, not NaN
            z -= m
            xp.exp(z, out=z)
            d = z.sum(axis=-1, keepdims=True)
            d[d == 0] = 1  # only a fully masked row sums to 0 (otherwise some e^0 = 1 is in it)
            z /= d
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, dy):
        (a,) = ctx.saved_tensors
        need = ctx.needs_input_grad
        if not _grad_mode.enabled and _masked_kernel(a.data, dy.data, None):
            return _masked_softmax_backward_kernel(ctx, a.data, dy.data)
        dz = a * (dy - (dy * a).sum(dim=-1, keepdim=True))  # a_i (g_i - sum_j g_j a_j)
        ds = db = None
        if need[0]:
            ds = unbroadcast(dz * ctx.scale if ctx.scale != 1.0 else dz, ctx.s_shape)
        if need[1]:
            db = unbroadcast(dz, ctx.b_shape)
        return ds, db, None


def _masked_kernel(s, bias, keep) -> bool:
    """MaskedSoftmaxFn's kernels apply: kernels on, NumPy arrays, s (and bias) of one float
    dtype, keep bool."""
    return (kernels._enabled and type(s) is np.ndarray and s.dtype in _FLOATS
            and (bias is None or (type(bias) is np.ndarray and bias.dtype == s.dtype))
            and (keep is None or (type(keep) is np.ndarray and keep.dtype == np.bool_)))


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _out_shape(s, *others) -> tuple:
    """The broadcast shape of s and the others (None skipped); s's own when they fit in it."""
    shapes = [o.shape for o in others if o is not None]
    if all(len(o) <= s.ndim and all(a == b or a == 1 for a, b in zip(o[::-1], s.shape[::-1]))
           for o in shapes):
        return s.shape
    return np.broadcast_shapes(s.shape, *shapes)


def _masked_softmax_backward_kernel(ctx, a, dy):
    """MaskedSoftmaxFn.backward by the kernel: dz = a (g - sum g a), times the scale for
    ds (folded into the kernel when bias needs no gradient), summed to each input's shape."""
    need, scale = ctx.needs_input_grad, ctx.scale
    dz = kernels.softmax.softmax_backward(a, dy, 1.0 if need[1] else scale)
    ds = db = None
    if need[0]:
        ds = unbroadcast(Tensor._wrap(dz * scale if need[1] and scale != 1.0 else dz),
                         ctx.s_shape)
    if need[1]:
        db = unbroadcast(Tensor._wrap(dz), ctx.b_shape)
    return ds, db, None


def masked_softmax(scores: Tensor, keep=None, bias: Tensor | None = None,
                   scale: float = 1.0) -> Tensor:
    """``softmax(scale * scores + bias)`` over the last dim with the entries where the bool
    ``keep`` is False left out; a row with nothing left gives zeros (see MaskedSoftmaxFn)."""
    if isinstance(keep, Tensor):
        keep = keep.data
    return MaskedSoftmaxFn.apply(scores, bias, keep, scale=float(scale))


@functools.lru_cache(maxsize=16)
def _causal_keep(L: int, S: int, device: backend.Device):
    """The causal mask, True where query i may attend to key j <= i (top-left aligned, as
    PyTorch's ``is_causal``): built once per (L, S, device), read-only."""
    xp = backend.xp_for(device)
    keep = xp.tril(xp.ones((L, S), dtype=bool))
    if not backend.is_cupy_array(keep):
        keep.flags.writeable = False
    return keep


# ----------------------------------------------------------------------------- F-level


def _check_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale) -> None:
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{op}: query, key and value must be at least 2-D (..., L, E), "
                             f"got {name} of shape {tuple(t.shape)}")
    if query.dtype.kind != "f" or not query.dtype == key.dtype == value.dtype:
        raise TypeError(f"{op}: query, key and value must share one float dtype, got "
                        f"{query.dtype}, {key.dtype} and {value.dtype}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"{op}: query {tuple(query.shape)} and key {tuple(key.shape)} must "
                         f"have the same last dim E")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"{op}: key {tuple(key.shape)} and value {tuple(value.shape)} must "
                         f"have the same number of positions S (dim -2)")
    check_broadcast(op, query.shape[:-2], key.shape[:-2])
    check_broadcast(op, query.shape[:-2], value.shape[:-2])
    check_broadcast(op, key.shape[:-2], value.shape[:-2])
    if attn_mask is not None:
        if is_causal:
            raise RuntimeError(f"{op}: attn_mask must not be given with is_causal=True "
                               "(PyTorch refuses it too); pass one or the other")
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"{op}: attn_mask must be a Tensor, got {type(attn_mask).__name__}")
        if attn_mask.dtype.kind != "b" and attn_mask.dtype != query.dtype:
            raise TypeError(f"{op}: attn_mask must be bool or of the query's dtype "
                            f"{query.dtype}, got {attn_mask.dtype}")
        scores = (*np.broadcast_shapes(query.shape[:-2], key.shape[:-2]), query.shape[-2],
                  key.shape[-2])
        if len(attn_mask.shape) > len(scores) or any(
                m != 1 and m != s for m, s in zip(reversed(attn_mask.shape), reversed(scores))):
            raise ValueError(f"{op}: attn_mask of shape {tuple(attn_mask.shape)} does not "
                             f"broadcast to the scores' shape {scores} (..., L, S)")
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, numbers.Real) or not (
            0.0 <= dropout_p <= 1.0):
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, "
                         f"but got {dropout_p}")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)):
        raise TypeError(f"{op}: scale must be a number or None, got {scale!r}")


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Tensor | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None) -> Tensor:
    r"""``softmax(query key^T * scale + mask) @ value``, with PyTorch's signature.

    Forward:  S = Q K^T,   A = softmax(scale S + M) row by row (MaskedSoftmaxFn),   Y = A V
    Backward: with G = dY, the products give   dV = A^T G,   dA = G V^T;
              the softmax gives (its Jacobian diag(a) - a a^T, one row a at a time)
              dZ = A \odot (dA - rowsum(dA \odot A)),   dM = dZ,   dS = scale dZ;
              and S = Q K^T gives   dQ = dS K,   dK = dS^T Q.
              A masked entry has A_{ij} = 0, so dS_{ij} = 0: nothing flows to a key a query
              may not see. (With dropout, Y = D(A) V and dA = D(G V^T): the same mask.)
    Shapes:   query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); the
              batch dims ``...`` broadcast.
    Saves:    A (MaskedSoftmaxFn's output), Q and K (for S), A and V (for Y).

    ``scale`` defaults to 1/\sqrt{E}: the scores of random unit-variance vectors then
    have unit variance, so the softmax does not saturate.

    ``attn_mask``: bool, True where a query may attend to a key; or float (the query's
    dtype), added to the scores (``-inf`` forbids). It broadcasts to (..., L, S).
    ``is_causal=True``: query i attends to keys j <= i (top-left aligned when L != S); it
    may not be combined with ``attn_mask``. ``dropout_p``: dropout on the attention
    weights (always applied when > 0, as PyTorch; pass 0.0 in evaluation).

    Fully masked rows: a query whose every key is masked out gets an output of zeros and
    passes no gradient, as PyTorch 2.5+ does (the plain formula would give NaN, 0/0).
    """
    _check_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale)
    E, L, S = query.shape[-1], query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    keep = bias = None
    if is_causal:
        keep = _causal_keep(L, S, query.device)  # (L, S)
    elif attn_mask is not None and attn_mask.dtype.kind == "b":
        keep = attn_mask.data
    elif attn_mask is not None:
        bias = attn_mask
    # BEGIN SOLUTION lesson09 attention: scores Q K^T, masked softmax, dropout, weights @ V
    scores = matmul(query, transpose(key, -2, -1))  # (..., L, S): q_i . k_j
    weights = masked_softmax(scores, keep, bias, scale)  # (..., L, S), rows sum to 1 (or 0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p)
    y = matmul(weights, value)  # (..., L, Ev): sum_j a_ij v_j
    # END SOLUTION
    return y


# ----------------------------------------------------------------------------- the layer


class MultiheadAttention(Module):
    r"""Multi-head attention with PyTorch's API, parameters and initialisation.

    Each of H heads attends in its own D = E/H dims:

        Q = query W_q^T + b_q,  K = key W_k^T + b_k,  V = value W_v^T + b_v   (..., E)
        head_h = softmax(Q_h K_h^T / \sqrt{D} + mask) V_h                     (..., D)
        y = concat(head_1..head_H) W_o^T + b_o

    Parameters: ``in_proj_weight`` (3E, E) = [W_q; W_k; W_v] and ``in_proj_bias`` (3E,),
    initialised ``xavier_uniform_`` and zeros; ``out_proj`` a Linear(E, E) whose bias starts
    at zero. The names, shapes and order match ``torch.nn.MultiheadAttention`` (with
    ``kdim = vdim = embed_dim``), so its state dict loads as is.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(attn_output, attn_weights)``:

    - query (L, N, E), key and value (S, N, E); (N, L, E) and (N, S, E) when
      ``batch_first``; or unbatched (L, E), (S, E). The output has the query's shape.
    - ``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or (N*H, L, S): bool masks are
      True where attention is NOT allowed (the opposite of F.scaled_dot_product_attention);
      float masks are added to the scores.
    - ``attn_weights``: (N, L, S) averaged over heads, or (N, H, L, S) with
      ``average_attn_weights=False`` (after dropout, as PyTorch); None when
      ``need_weights=False``, which takes the F.scaled_dot_product_attention path.
    - ``is_causal`` is a hint, as in PyTorch: it requires ``attn_mask`` (the causal mask)
      and lets the fast path use the cached causal mask instead.

    A fully masked query row gets zero weights and output ``out_proj.bias`` (PyTorch
    gives NaN there with ``need_weights=True``; see the module docstring).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        for name, v in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"MultiheadAttention: {name} must be a positive int, got {v!r}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible by "
                             f"num_heads {num_heads}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not (
                0.0 <= dropout <= 1.0):
            raise ValueError(f"MultiheadAttention: dropout probability has to be between 0 and "
                             f"1, but got {dropout}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.in_proj_weight = new_parameter((3 * embed_dim, embed_dim), device, dtype)
        if bias:
            self.in_proj_bias = new_parameter((3 * embed_dim,), device, dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        # built before the reset, so the random draws come in PyTorch's order
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}")

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False):
        E, H, D = self.embed_dim, self.num_heads, self.head_dim
        batched = _check_mha_inputs(query, key, value, E)
        if not batched:  # (L, E) -> (1, L, E)
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
        elif not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = (transpose(t, 0, 1) for t in (query, key, value))
        N, L, S = query.shape[0], query.shape[1], key.shape[1]
        if is_causal and attn_mask is None:
            raise RuntimeError("MultiheadAttention: is_causal=True needs attn_mask: is_causal is "
                               "only a hint that attn_mask is the causal mask (as in PyTorch)")
        mask = _merge_masks(attn_mask, key_padding_mask, batched, N, H, L, S, query.dtype)
        causal = is_causal and key_padding_mask is None and not need_weights

        w_q, w_k, w_v = self.in_proj_weight.chunk(3)  # (E, E) each
        b = self.in_proj_bias
        b_q, b_k, b_v = b.chunk(3) if b is not None else (None, None, None)
        q = _split_heads(F.linear(query, w_q, b_q), H, D)  # (N, H, L, D)
        k = _split_heads(F.linear(key, w_k, b_k), H, D)  # (N, H, S, D)
        v = _split_heads(F.linear(value, w_v, b_v), H, D)  # (N, H, S, D)
        p = self.dropout if self.training else 0.0

        weights = None
        if need_weights:
            keep, bias = (mask.data, None) if mask is not None and mask.dtype.kind == "b" else (
                None, mask)
            # BEGIN SOLUTION lesson09 multi-head attention weights and output, per head
            scores = matmul(q, transpose(k, -2, -1))  # (N, H, L, S)
            weights = masked_softmax(scores, keep, bias, 1.0 / math.sqrt(D))
            if p > 0.0:
                weights = F.dropout(weights, p)
            y = matmul(weights, v)  # (N, H, L, D)
            # END SOLUTION
        else:
            y = scaled_dot_product_attention(q, k, v, attn_mask=None if causal else mask,
                                             dropout_p=p, is_causal=causal)
        y = reshape(transpose(y, 1, 2), N, L, E)  # (N, L, H, D) -> (N, L, E): heads side by side
        y = self.out_proj(y)  # (N, L, E)

        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)  # (N, L, S)
        if not batched:
            y = y.squeeze(0)
            weights = weights.squeeze(0) if weights is not None else None
        elif not self.batch_first:
            y = transpose(y, 0, 1)  # (L, N, E)
        return y, weights


def _split_heads(t: Tensor, H: int, D: int) -> Tensor:
    """(N, T, H*D) -> (N, H, T, D): each head becomes a batch entry (a view, no copy)."""
    N, T, _ = t.shape
    return transpose(reshape(t, N, T, H, D), 1, 2)


def _check_mha_inputs(query, key, value, E: int) -> bool:
    """Check the shapes; True for batched (3-D) inputs, False for unbatched (2-D)."""
    op = "MultiheadAttention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(f"{op}: query, key and value must all be 3-D (batched) or all 2-D "
                         f"(unbatched), got shapes {tuple(query.shape)}, {tuple(key.shape)} "
                         f"and {tuple(value.shape)}")
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.shape[-1] != E:
            raise ValueError(f"{op}: {name} of shape {tuple(t.shape)} does not end in "
                             f"embed_dim={E}")
    if key.shape[:-1] != value.shape[:-1]:
        raise ValueError(f"{op}: key {tuple(key.shape)} and value {tuple(value.shape)} must "
                         f"have the same shape")
    return query.ndim == 3


def _merge_masks(attn_mask, key_padding_mask, batched, N, H, L, S, dtype):
    """PyTorch's MultiheadAttention masks as one F.scaled_dot_product_attention mask,
    broadcastable to (N, H, L, S): bool (True = may attend) when both are bool, else float
    (bool ones become -inf)."""
    op = "MultiheadAttention"
    for name, m in (("attn_mask", attn_mask), ("key_padding_mask", key_padding_mask)):
        if m is None:
            continue
        if not isinstance(m, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(m).__name__}")
        if m.dtype.kind != "b" and m.dtype != dtype:
            raise TypeError(f"{op}: {name} must be bool or of the query's dtype {dtype}, got "
                            f"{m.dtype}")
    masks = []
    if attn_mask is not None:
        shape = tuple(attn_mask.shape)
        if attn_mask.ndim == 2 and shape != (L, S):
            raise ValueError(f"{op}: the 2-D attn_mask has shape {shape}, but should be "
                             f"(L, S) = {(L, S)}")
        if attn_mask.ndim == 3 and shape != (N * H, L, S):
            raise ValueError(f"{op}: the 3-D attn_mask has shape {shape}, but should be "
                             f"(N * num_heads, L, S) = {(N * H, L, S)}")
        if attn_mask.ndim not in (2, 3):
            raise ValueError(f"{op}: attn_mask must be 2-D or 3-D, got shape {shape}")
        masks.append(attn_mask if attn_mask.ndim == 2 else reshape(attn_mask, N, H, L, S))
    if key_padding_mask is not None:
        shape = tuple(key_padding_mask.shape)
        want = (N, S) if batched else (S,)
        if shape != want:
            raise ValueError(f"{op}: key_padding_mask has shape {shape}, but should be "
                             f"{'(N, S)' if batched else '(S,)'} = {want}")
        masks.append(reshape(key_padding_mask, N, 1, 1, S))
    if not masks:
        return None
    if all(m.dtype.kind == "b" for m in masks):
        keep = None
        for m in masks:
            k = ~m.data
            keep = k if keep is None else keep & k
        return Tensor._wrap(keep)
    bias = None
    for m in masks:
        if m.dtype.kind == "b":
            xp = xp_of(m.data)
            m = Tensor._wrap(xp.where(m.data, xp.asarray(-math.inf, dtype=dtype),
                                      xp.asarray(0.0, dtype=dtype)))
        bias = m if bias is None else bias + m
    return bias
