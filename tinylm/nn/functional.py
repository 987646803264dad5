r"""``tinylm.nn.functional`` (``F``): the stateless side of the layers, PyTorch's names.

``linear``, ``embedding``, ``layer_norm`` and ``rms_norm`` are Functions of their
own, each deriving its gradient below; ``dropout`` is a product with a random mask;
``relu``, ``gelu``, ``tanh``, ``sigmoid``, ``softmax`` and ``log_softmax`` are the
ops of ``tinylm.ops``; ``cross_entropy``, ``nll_loss`` and ``mse_loss`` are those of
``tinylm/nn/losses.py``. Every backward is written with Tensor ops, so second
derivatives work (``gradgradcheck``). See lessons/03_embeddings.py.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend, kernels, random
from ..autograd import Function
from ..ops import (
    gelu,
    log_softmax,
    matmul,
    relu,
    reshape,
    sigmoid,
    softmax,
    sqrt,
    tanh,
    transpose,
)
from ..tensor import Tensor, is_grad_enabled
from .attention import scaled_dot_product_attention
from .losses import cross_entropy, mse_loss, nll_loss

__all__ = [
    "linear", "embedding", "dropout", "layer_norm", "rms_norm",
    "relu", "gelu", "tanh", "sigmoid", "softmax", "log_softmax",
    "cross_entropy", "nll_loss", "mse_loss",
    "scaled_dot_product_attention",
]  # fmt: skip


def _dtype_check(op: str, x: Tensor, **others) -> None:
    """Every other tensor argument has x's float dtype (no silent promotion)."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got dtype {x.dtype}")
    for name, t in others.items():
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{op}: dtype mismatch: input is {x.dtype}, {name} is {t.dtype}")


# ----------------------------------------------------------------------------- linear


class LinearFn(Function):
    r"""Affine map of the last dim.

    Forward:  y = x W^T + b,   y_{n,o} = \sum_i x_{n,i} W_{o,i} + b_o
    Backward: dx = dy W;   dW = dy^T x;   db = \sum_n dy_n
              (batch dims ``...`` flattened into n for dW and db: every position
              uses the same W, so their contributions add)
    Shapes:   x (..., in), W (out, in), b (out,) -> y (..., out)
    Saves:    x, W
    """

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        # one (N, in) @ (in, out) product: NumPy would run one small matmul per batch entry
        # of a (B, T, in) input
        n = math.prod(x.shape[:-1])
        y = (x.reshape(n, x.shape[-1]) @ w.T).reshape(x.shape[:-1] + (w.shape[0],))
        return y + b if b is not None else y

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        need = ctx.needs_input_grad
        dx = dw = db = None
        n = math.prod(dy.shape[:-1])
        dy2 = reshape(dy, n, w.shape[0])  # (N, out)
        if need[0]:
            dx = reshape(matmul(dy2, w), *x.shape)  # (N, out) @ (out, in) -> (..., in)
        if need[1] or need[2]:
            if need[1]:
                dw = matmul(transpose(dy2, 0, 1), reshape(x, n, w.shape[1]))  # (out, in)
            if need[2]:
                db = dy2.sum(dim=0)  # (out,)
        return dx, dw, db


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` over the last dim of ``input``."""
    _dtype_check("linear", input, weight=weight, bias=bias)
    backend.check_same_device("linear", input=input.data, weight=weight.data,
                              bias=None if bias is None else bias.data)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                         f"{tuple(weight.shape)}")
    out_f, in_f = weight.shape
    if input.ndim == 0 or input.shape[-1] != in_f:
        raise ValueError(f"linear: input of shape {tuple(input.shape)} does not end in "
                         f"in_features={in_f} (weight of shape {tuple(weight.shape)})")
    if bias is not None and tuple(bias.shape) != (out_f,):
        raise ValueError(f"linear: bias of shape {tuple(bias.shape)} does not match "
                         f"out_features={out_f} (expected shape ({out_f},))")
    return LinearFn.apply(input, weight, bias)


# ----------------------------------------------------------------------------- embedding


def _scatter_add_rows(num_rows: int, ids, rows):
    """``out = zeros(num_rows, C); out[ids[p]] += rows[p]`` for every p, repeats adding.

    NumPy: sort the ids and sum each run with ``add.reduceat`` (about 3x faster than
    ``np.add.at`` and deterministic); CuPy: ``cupy.add.at`` (atomic: not bit-deterministic).
    """
    xp = backend.xp_of(rows)
    out = xp.zeros((num_rows, rows.shape[1]), dtype=rows.dtype)
    if ids.size == 0:
        return out
    if backend.is_cupy_array(rows):
        backend.scatter_add(out, ids, rows)
        return out
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # first of each run
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


class EmbeddingFn(Function):
    r"""Row lookup: the product of a one-hot matrix with W, without building the one-hot.

    Forward:  y_p = W_{ids_p}                 (y = onehot(ids) W)
    Backward: dW = scatter_add of the rows of dy at ids:
              dW_v = \sum_{p : ids_p = v} dy_p   (= onehot(ids)^T dy; repeated ids add up)
              dW_{padding\_idx} = 0;  the integer ids get no gradient
    Shapes:   ids (...), W (V, C) -> y (..., C)
    Saves:    ids (a constant)
    """

    @staticmethod
    def forward(ctx, ids, w, padding_idx):
        ctx.ids, ctx.num_embeddings, ctx.padding_idx = ids, w.shape[0], padding_idx
        # BEGIN SOLUTION lesson03 embedding forward: the rows of w at ids, shape (..., C)
        return backend.xp_of(w).take(w, ids, axis=0)  # (..., C)
        # END SOLUTION

    @staticmethod
    def backward(ctx, dy):
        dw = EmbeddingGradFn.apply(dy, ctx.ids, num_embeddings=ctx.num_embeddings,
                                   padding_idx=ctx.padding_idx)
        return None, dw


class EmbeddingGradFn(Function):
    r"""Embedding's gradient as an op of its own, so that it can be differentiated too.

    Forward:  dW = zeros(V, C);  dW_{ids_p} += dy_p  for every position p;  dW_{padding\_idx} = 0
    Backward: it is linear in dy, so its adjoint is a gather:
              d(dy)_p = g_{ids_p}  (0 where ids_p = padding_idx)  -- EmbeddingFn again
    Shapes:   dy (..., C), ids (...) -> dW (V, C)
    Saves:    ids (a constant)
    """

    @staticmethod
    def forward(ctx, dy, ids, num_embeddings, padding_idx):
        ctx.ids, ctx.padding_idx = ids, padding_idx
        if kernels.numba_applies(dy):  # the same sum as a serial Numba loop (kernels/embedding)
            from ..kernels.embedding import scatter_add_rows

            rows = dy.reshape(ids.size, dy.shape[-1])  # (N, C)
            return scatter_add_rows(num_embeddings, ids.reshape(-1), rows, padding_idx)
        # BEGIN SOLUTION lesson03 embedding backward: dW_v = sum of dy_p over ids_p = v; pad row 0
        rows = dy.reshape(ids.size, dy.shape[-1])  # (N, C)
        dw = _scatter_add_rows(num_embeddings, ids.reshape(-1), rows)  # (V, C)
        if padding_idx is not None:
            dw[padding_idx] = 0  # the padding row never learns
        return dw
        # END SOLUTION

    @staticmethod
    def backward(ctx, g):
        ddy = EmbeddingFn.apply(ctx.ids, g, padding_idx=ctx.padding_idx)  # (..., C)
        if ctx.padding_idx is None:
            return ddy, None
        keep = (ctx.ids != ctx.padding_idx)[..., None].astype(g.dtype)  # (..., 1)
        return ddy * Tensor._wrap(keep), None


def _check_ids(ids, num_embeddings: int) -> None:
    """Raise on the first negative or too large id, naming it and its position."""
    xp = backend.xp_of(ids)
    bad = (ids < 0) | (ids >= num_embeddings)
    if ids.size and bool(bad.any()):
        pos = tuple(int(i) for i in np.unravel_index(int(xp.argmax(bad)), ids.shape))
        raise IndexError(f"embedding: token id {int(ids[pos])} out of range "
                         f"[0, {num_embeddings}) at index {pos}")


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (V, C) picked by the integer ids in ``input``: shape ``(..., C)``.

    Strict where NumPy is not: a float id tensor, a negative id (NumPy would wrap it to
    the end of the table) or an id >= V raises, naming the id and its position.
    ``padding_idx`` (negative counts from the end, as PyTorch) marks a row that gets no
    gradient.
    """
    ids = input.data if isinstance(input, Tensor) else input
    if not hasattr(ids, "dtype"):
        raise TypeError(f"embedding: ids must be an integer tensor, got {type(input).__name__}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be an integer tensor, got dtype {ids.dtype}")
    if weight.ndim != 2:
        raise ValueError("embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {tuple(weight.shape)}")
    if backend.device_of(ids) != weight.device:
        raise RuntimeError(f"embedding: ids are on {backend.device_of(ids)}, weight is on "
                           f"{weight.device}; move one with .to(device)")
    V = weight.shape[0]
    if padding_idx is not None:
        if not -V <= padding_idx < V:
            raise ValueError(f"embedding: padding_idx {padding_idx} out of range [{-V}, {V}) "
                             f"for num_embeddings={V}")
        padding_idx = int(padding_idx) % V
    _check_ids(ids, V)
    return EmbeddingFn.apply(ids, weight, padding_idx=padding_idx)


# ----------------------------------------------------------------------------- dropout


def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:
    r"""Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p).

    Forward:  y = x m / (1 - p),   m_i ~ Bernoulli(1 - p) from tinylm's generator
              (``tinylm.manual_seed``), so E[y] = x
    Backward: dx = dy m / (1 - p)   (the same mask; it is the backward of the product)
    Identity when ``training=False`` or ``p == 0``; zeros when ``p == 1`` (as PyTorch).
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if inplace:
        raise ValueError("dropout: inplace=True is not supported (tinylm never updates a "
                         "tensor in place)")
    if input.dtype.kind != "f":
        raise TypeError(f"dropout: expected a floating point input, got dtype {input.dtype}")
    if not training or p == 0:
        return input
    xp = backend.xp_of(input.data)
    if p == 1:
        return input * Tensor._wrap(xp.zeros((), dtype=input.dtype))
    u = random.generator(input.device).random(input.shape)  # U[0, 1)
    scaled_mask = (u >= p).astype(input.dtype) / input.dtype.type(1.0 - p)
    return input * Tensor._wrap(scaled_mask)


# ----------------------------------------------------------------------------- norms


def _norm_checks(op: str, x: Tensor, normalized_shape, **params) -> tuple:
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (int(normalized_shape),)
    shape = tuple(int(s) for s in normalized_shape)
    _dtype_check(op, x, **params)
    backend.check_same_device(op, input=x.data,
                              **{k: t.data for k, t in params.items() if t is not None})
    if not shape:
        raise ValueError(f"{op}: normalized_shape must have at least one dim, got ()")
    k = len(shape)
    if x.ndim < k or tuple(x.shape[-k:]) != shape:
        want = ", ".join(map(str, shape))
        raise ValueError(f"{op}: normalized_shape {shape} does not match the trailing dims of "
                         f"the input of shape {tuple(x.shape)} (expected (*, {want}))")
    for name, t in params.items():
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{op}: {name} of shape {tuple(t.shape)} does not match "
                             f"normalized_shape {shape}")
    return shape


class LayerNormFn(Function):
    r"""Normalise over the trailing D elements, then scale and shift.

    Forward:  \mu = \frac1D \sum_i x_i,   \sigma^2 = \frac1D \sum_i (x_i - \mu)^2  (biased),
              r = (\sigma^2 + \epsilon)^{-1/2},   \hat x_i = (x_i - \mu) r,
              y_i = w_i \hat x_i + b_i
    Backward: with g_i = dy_i w_i and bars for means over the D elements:
              dx_i = r (g_i - \bar g - \hat x_i \overline{g \hat x})
              dw = \sum_{batch} dy \hat x,   db = \sum_{batch} dy
    Derivation: \partial\mu/\partial x_k = 1/D and \partial r/\partial x_k = -r^3 (x_k - \mu)/D
              give \partial \hat x_i/\partial x_k = r (\delta_{ik} - 1/D) - r \hat x_i \hat x_k / D;
              contracting with g_i gives dx_k.
    Shapes:   x (..., *S), w (*S), b (*S) -> y (..., *S),   D = prod(S)
    Saves:    x, w;  \hat x and r as arrays for a plain backward (recomputed from x
              with Tensor ops when a graph of the gradient is being built)
    Kernel:   on NumPy float32/float64, forward and plain backward run row by row in Numba
              (tinylm/kernels/layernorm.py), which saves the mean and r instead of \hat x
    """

    @staticmethod
    def forward(ctx, x, w, b, k, eps):
        dims = tuple(range(x.ndim - k, x.ndim))
        ctx.dims, ctx.batch, ctx.eps = dims, tuple(range(x.ndim - k)), eps
        ctx.save_for_backward(*((x,) if w is None else (x, w)))
        if kernels.numba_applies(x, *(t for t in (w, b) if t is not None)):
            from ..kernels.layernorm import layer_norm_forward

            y, ctx.mean, ctx.r = layer_norm_forward(x, w, b, k, eps)
            ctx.xhat = None  # the kernel's backward recomputes it from x, mean and r
            return y
        ctx.mean = None
        xc = x - x.mean(axis=dims, keepdims=True)
        r = 1.0 / backend.xp_of(x).sqrt((xc * xc).mean(axis=dims, keepdims=True) + eps)
        xhat = xc * r
        ctx.xhat, ctx.r = xhat, r
        y = xhat * w if w is not None else xhat
        return y + b if b is not None else y

    @staticmethod
    def backward(ctx, dy):
        x, *w = ctx.saved_tensors
        dims = ctx.dims
        need = ctx.needs_input_grad
        if (not is_grad_enabled() and ctx.mean is not None
                and kernels.numba_applies(dy.data, x.data, *(t.data for t in w))):
            from ..kernels.layernorm import layer_norm_backward

            dx, dw, db = layer_norm_backward(dy.data, x.data, w[0].data if w else None,
                                             ctx.mean, ctx.r, len(dims), need[1], need[2])
            return dx if need[0] else None, dw, db
        if is_grad_enabled():  # create_graph: xhat and r as functions of x
            xc = x - x.mean(dim=dims, keepdim=True)
            r = 1.0 / sqrt((xc * xc).mean(dim=dims, keepdim=True) + ctx.eps)
            xhat = xc * r
        elif ctx.xhat is None:  # the kernel ran forward, but not now (kernels switched off)
            xhat = Tensor._wrap((x.data - ctx.mean) * ctx.r)
            r = Tensor._wrap(ctx.r)
        else:
            xhat, r = Tensor._wrap(ctx.xhat), Tensor._wrap(ctx.r)
        dx = dw = db = None
        if need[0]:
            g = dy * w[0] if w else dy
            dx = r * (g - g.mean(dim=dims, keepdim=True)
                      - xhat * (g * xhat).mean(dim=dims, keepdim=True))
        if need[1]:
            dw = _sum_batch(dy * xhat, ctx.batch)
        if need[2]:
            db = _sum_batch(dy, ctx.batch)
        return dx, dw, db


class RMSNormFn(Function):
    r"""Divide by the root mean square over the trailing D elements, then scale.

    Forward:  r = (\frac1D \sum_i x_i^2 + \epsilon)^{-1/2},   \hat x_i = x_i r,   y_i = w_i \hat x_i
    Backward: with g_i = dy_i w_i:   dx_i = r (g_i - \hat x_i \overline{g \hat x}),
              dw = \sum_{batch} dy \hat x
    Derivation: \partial r/\partial x_k = -r^3 x_k / D, so
              \partial \hat x_i/\partial x_k = r \delta_{ik} - r \hat x_i \hat x_k / D.
    Shapes:   x (..., *S), w (*S) -> y (..., *S),   D = prod(S)
    Saves:    x, w;  \hat x and r as arrays (recomputed from x under create_graph)
    """

    @staticmethod
    def forward(ctx, x, w, k, eps):
        dims = tuple(range(x.ndim - k, x.ndim))
        ctx.dims, ctx.batch, ctx.eps = dims, tuple(range(x.ndim - k)), eps
        r = 1.0 / backend.xp_of(x).sqrt((x * x).mean(axis=dims, keepdims=True) + eps)
        xhat = x * r
        ctx.xhat, ctx.r = xhat, r
        ctx.save_for_backward(*((x,) if w is None else (x, w)))
        return xhat * w if w is not None else xhat

    @staticmethod
    def backward(ctx, dy):
        x, *w = ctx.saved_tensors
        dims = ctx.dims
        if is_grad_enabled():
            r = 1.0 / sqrt((x * x).mean(dim=dims, keepdim=True) + ctx.eps)
            xhat = x * r
        else:
            xhat, r = Tensor._wrap(ctx.xhat), Tensor._wrap(ctx.r)
        need = ctx.needs_input_grad
        dx = dw = None
        if need[0]:
            g = dy * w[0] if w else dy
            dx = r * (g - xhat * (g * xhat).mean(dim=dims, keepdim=True))
        if need[1]:
            dw = _sum_batch(dy * xhat, ctx.batch)
        return dx, dw


def _sum_batch(t: Tensor, batch: tuple) -> Tensor:
    return t.sum(dim=batch) if batch else t


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims (mean 0, variance 1), then
    ``* weight + bias``. The variance is the biased one (divided by D), as PyTorch."""
    shape = _norm_checks("layer_norm", input, normalized_shape, weight=weight, bias=bias)
    if not eps >= 0:
        raise ValueError(f"layer_norm: eps must be non-negative, got {eps}")
    return LayerNormFn.apply(input, weight, bias, k=len(shape), eps=float(eps))


def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """Divide by the root mean square over the trailing ``normalized_shape`` dims, then
    ``* weight``. ``eps=None`` means ``finfo(input.dtype).eps``, as PyTorch 2.4+."""
    shape = _norm_checks("rms_norm", input, normalized_shape, weight=weight)
    if eps is None:
        eps = float(np.finfo(input.dtype).eps)
    if not eps >= 0:
        raise ValueError(f"rms_norm: eps must be non-negative, got {eps}")
    return RMSNormFn.apply(input, weight, k=len(shape), eps=float(eps))
