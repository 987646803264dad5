"""Grades lesson 09 (lessons/09_attention_transformer.py): the attention backward derived by
hand, the 1/sqrt(d) scaling, causal and fully masked rows, multi-head attention as a batch of
heads, permutation equivariance and positional encodings, the pre-LN block, and gradcheck.
Run with ``pytest -m lesson09``."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
import tinylm.nn.functional as F
from tinylm.nn.attention import masked_softmax

pytestmark = pytest.mark.lesson09


def dbl(*shape, seed: int = 0, requires_grad: bool = True) -> tinylm.Tensor:
    rng = np.random.default_rng(seed)
    return tinylm.tensor(rng.standard_normal(shape), requires_grad=requires_grad)


def softmax_rows(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def upper(T: int) -> tinylm.Tensor:
    """MultiheadAttention's causal mask: True where attending is forbidden (j > i)."""
    return tinylm.tensor(np.triu(np.ones((T, T), dtype=bool), k=1))


@pytest.mark.parametrize("scale", [None, 0.3])
def test_attention_backward_by_hand_matches_autograd(scale):
    B, L, S, d, dv = 2, 4, 6, 8, 3
    Q, K, V = dbl(B, L, d, seed=1), dbl(B, S, d, seed=2), dbl(B, S, dv, seed=3)
    G = np.random.default_rng(4).standard_normal((B, L, dv))
    q, k, v = Q.detach().numpy(), K.detach().numpy(), V.detach().numpy()
    c = 1 / np.sqrt(d) if scale is None else scale
    P = softmax_rows(c * q @ k.transpose(0, 2, 1))  # (B, L, S)
    dV = P.transpose(0, 2, 1) @ G
    dP = G @ v.transpose(0, 2, 1)
    dS = c * P * (dP - (dP * P).sum(-1, keepdims=True))
    dQ, dK = dS @ k, dS.transpose(0, 2, 1) @ q

    Y = F.scaled_dot_product_attention(Q, K, V, scale=scale)
    np.testing.assert_allclose(Y.detach().numpy(), P @ v, atol=1e-13)
    Y.backward(tinylm.tensor(G))
    np.testing.assert_allclose(Q.grad.numpy(), dQ, atol=1e-12)
    np.testing.assert_allclose(K.grad.numpy(), dK, atol=1e-12)
    np.testing.assert_allclose(V.grad.numpy(), dV, atol=1e-12)
    # the shortcut: rowsum(dP * P) = G . Y
    np.testing.assert_allclose((dP * P).sum(-1), (G * (P @ v)).sum(-1), atol=1e-12)


def test_softmax_backward_formula_matches_masked_softmax():
    s = dbl(3, 5, seed=5)
    g = np.random.default_rng(6).standard_normal((3, 5))
    a = masked_softmax(s, scale=0.5)
    a.backward(tinylm.tensor(g))
    p = softmax_rows(0.5 * s.detach().numpy())
    np.testing.assert_allclose(a.detach().numpy(), p, atol=1e-15)
    want = 0.5 * p * (g - (g * p).sum(-1, keepdims=True))
    np.testing.assert_allclose(s.grad.numpy(), want, atol=1e-14)


@pytest.mark.parametrize("d", [4, 64, 256])
def test_scaling_keeps_score_variance_near_one(d):
    rng = np.random.default_rng(d)
    q, k = rng.standard_normal((2, 4000, d))
    raw = (q * k).sum(-1)
    assert abs(raw.var() / d - 1) < 0.1  # Var(q.k) = d
    assert abs((raw / np.sqrt(d)).var() - 1) < 0.1  # Var(q.k / sqrt d) = 1
    # and tinylm's default scale is 1/sqrt(d): weights equal the softmax of the scaled scores
    Q, K, V = (tinylm.tensor(rng.standard_normal((3, d))) for _ in range(3))
    Y = F.scaled_dot_product_attention(Q, K, V)
    A = softmax_rows(Q.numpy() @ K.numpy().T / np.sqrt(d))
    np.testing.assert_allclose(Y.numpy(), A @ V.numpy(), atol=1e-12)


def test_causal_mask_blocks_future_influence():
    T, d = 6, 4
    x = dbl(T, d, seed=7)
    y = F.scaled_dot_product_attention(x, x, x, is_causal=True)
    for t in range(T):  # editing token t changes no earlier output
        x2 = x.detach().numpy().copy()
        x2[t] += 5.0
        y2 = F.scaled_dot_product_attention(*(tinylm.tensor(x2),) * 3, is_causal=True)
        np.testing.assert_array_equal(y2.numpy()[:t], y.detach().numpy()[:t])
        assert not np.allclose(y2.numpy()[t], y.detach().numpy()[t])
    y[2].sum().backward()
    g = np.abs(x.grad.numpy()).sum(axis=1)
    assert (g[3:] == 0).all() and (g[:3] > 0).all()

    # the same for a TransformerBlock: causal by construction
    block = nn.TransformerBlock(8, 2).double()
    h = dbl(1, T, 8, seed=8)
    block(h)[0, 3].sum().backward()
    g = np.abs(h.grad.numpy()[0]).sum(axis=1)
    assert (g[4:] == 0).all() and (g[:4] > 0).all()


def test_fully_masked_row_gives_zero_output_and_gradient():
    Q, K, V = dbl(3, 4, seed=9), dbl(5, 4, seed=10), dbl(5, 2, seed=11)
    allowed = np.ones((3, 5), dtype=bool)
    allowed[1] = False
    y = F.scaled_dot_product_attention(Q, K, V, attn_mask=tinylm.tensor(allowed))
    assert np.isfinite(y.detach().numpy()).all()
    np.testing.assert_array_equal(y.detach().numpy()[1], 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(Q.grad.numpy()[1], 0.0)
    assert np.isfinite(K.grad.numpy()).all() and np.isfinite(V.grad.numpy()).all()

    # MultiheadAttention: zero weights, output = out_proj.bias (no NaN)
    mha = nn.MultiheadAttention(4, 2, batch_first=True).double()
    pad = tinylm.tensor(np.ones((1, 5), dtype=bool))  # every key is padding
    x = dbl(1, 5, 4, seed=12, requires_grad=False)
    out, w = mha(x, x, x, key_padding_mask=pad)
    np.testing.assert_array_equal(w.detach().numpy(), 0.0)
    np.testing.assert_allclose(
        out.detach().numpy()[0], np.broadcast_to(mha.out_proj.bias.detach().numpy(), (5, 4))
    )


@pytest.mark.parametrize("H", [1, 2, 4])
def test_multihead_equals_per_head_loop(H):
    E, T = 8, 5
    tinylm.manual_seed(H)
    mha = nn.MultiheadAttention(E, H, batch_first=True).double()
    for p in mha.parameters():  # nonzero biases, so their placement is tested too
        p.data[...] = np.random.default_rng(H).standard_normal(p.shape)
    X = dbl(2, T, E, seed=13, requires_grad=False)
    for need_weights in (True, False):
        out, w = mha(X, X, X, need_weights=need_weights, average_attn_weights=False)
        W = mha.in_proj_weight.detach().numpy()
        b = mha.in_proj_bias.detach().numpy()
        D = E // H
        for n in range(2):
            x = X.numpy()[n]
            Qf, Kf, Vf = (x @ Wp.T + bp for Wp, bp in zip(np.split(W, 3), np.split(b, 3)))
            heads = []
            for h in range(H):
                cols = slice(h * D, (h + 1) * D)
                a = softmax_rows(Qf[:, cols] @ Kf[:, cols].T / np.sqrt(D))
                if need_weights:
                    np.testing.assert_allclose(w.detach().numpy()[n, h], a, atol=1e-12)
                heads.append(a @ Vf[:, cols])
            want = np.concatenate(heads, 1) @ mha.out_proj.weight.detach().numpy().T
            want = want + mha.out_proj.bias.detach().numpy()
            np.testing.assert_allclose(out.detach().numpy()[n], want, atol=1e-11)


def test_attention_without_positions_is_permutation_equivariant():
    E, T = 8, 6
    mha = nn.MultiheadAttention(E, 2, batch_first=True).double()
    X = dbl(2, T, E, seed=14, requires_grad=False)
    perm = np.random.default_rng(15).permutation(T)
    Xp = tinylm.tensor(X.numpy()[:, perm])
    out, _ = mha(X, X, X)
    out_p, _ = mha(Xp, Xp, Xp)
    np.testing.assert_allclose(out_p.detach().numpy(), out.detach().numpy()[:, perm], atol=1e-12)
    # the bare function too
    y = F.scaled_dot_product_attention(X, X, X).numpy()
    yp = F.scaled_dot_product_attention(Xp, Xp, Xp).numpy()
    np.testing.assert_allclose(yp, y[:, perm], atol=1e-12)


@pytest.mark.parametrize("kind", ["sinusoidal", "learned"])
def test_positional_encoding_breaks_permutation_equivariance(kind):
    E, T = 8, 6
    tinylm.manual_seed(16)
    mha = nn.MultiheadAttention(E, 2, batch_first=True).double()
    pos = (
        nn.SinusoidalPositionalEncoding(E, max_len=T)
        if kind == "sinusoidal"
        else nn.LearnedPositionalEmbedding(T, E)
    ).double()
    X = dbl(1, T, E, seed=17, requires_grad=False)
    perm = np.array([1, 0, 2, 3, 4, 5])  # one swap is enough
    Xp = tinylm.tensor(X.numpy()[:, perm])
    out, _ = mha(pos(X), pos(X), pos(X))
    out_p, _ = mha(pos(Xp), pos(Xp), pos(Xp))
    assert np.abs(out_p.detach().numpy() - out.detach().numpy()[:, perm]).max() > 1e-3


def test_sinusoidal_table_matches_formula():
    E, T = 10, 40
    x = tinylm.zeros(T, E, dtype=tinylm.float64)
    P = nn.SinusoidalPositionalEncoding(E, max_len=64, dtype=tinylm.float64)(x).numpy()
    t, i = np.arange(T)[:, None], np.arange(0, E, 2)
    omega = 10000.0 ** (-i / E)
    np.testing.assert_allclose(P[:, 0::2], np.sin(t * omega), atol=1e-14)
    np.testing.assert_allclose(P[:, 1::2], np.cos(t * omega), atol=1e-14)
    # a shift by k is a rotation of each (sin, cos) pair, the same at every t
    k = 5
    for j, w in enumerate(omega):
        rot = np.array([[np.cos(k * w), -np.sin(k * w)], [np.sin(k * w), np.cos(k * w)]])
        pair = P[:, 2 * j : 2 * j + 2]
        np.testing.assert_allclose(pair[k:], pair[:-k] @ rot, atol=1e-12)


def test_transformer_block_is_pre_ln_residual_composition():
    E, T = 8, 5
    tinylm.manual_seed(18)
    block = nn.TransformerBlock(E, 2).double()
    x = dbl(2, T, E, seed=19, requires_grad=False)
    h = block.ln_1(x)
    a, _ = block.attn(h, h, h, attn_mask=upper(T))
    x1 = x + a
    want = x1 + block.mlp(block.ln_2(x1))
    np.testing.assert_allclose(block(x).detach().numpy(), want.detach().numpy(), atol=1e-12)
    # the mlp is E -> 4E -> E with a GELU
    assert [type(m).__name__ for m in block.mlp][:3] == ["Linear", "GELU", "Linear"]
    assert block.mlp[0].weight.shape == (4 * E, E)


def test_scaled_dot_product_attention_passes_gradcheck():
    Q, K, V = dbl(2, 3, 4, seed=20), dbl(2, 5, 4, seed=21), dbl(2, 5, 3, seed=22)
    keep = tinylm.tensor(np.random.default_rng(23).random((3, 5)) < 0.7)
    add = dbl(3, 5, seed=24, requires_grad=False)
    for mask in (None, keep, add):

        def sdpa(q, k, v, m=mask):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

        assert tinylm.gradcheck(sdpa, (Q, K, V))
    Qc = dbl(2, 5, 4, seed=25)
    assert tinylm.gradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), (Qc, K, V)
    )


def test_multihead_attention_passes_gradcheck():
    tinylm.manual_seed(26)
    mha = nn.MultiheadAttention(4, 2, batch_first=True).double()
    x = dbl(2, 3, 4, seed=27)
    assert tinylm.gradcheck(lambda x: mha(x, x, x, attn_mask=upper(3))[0], (x,))
    xd = x.detach()
    assert tinylm.gradcheck(lambda w: mha(xd, xd, xd)[0], (mha.in_proj_weight,))
    assert tinylm.gradcheck(lambda w: mha(xd, xd, xd)[0], (mha.out_proj.weight,))
