"""Grades lesson 03 (lessons/03_embeddings.py): a lookup is a one-hot matmul, its gradient
is a scatter-add in which repeated ids accumulate, padding_idx, and strict ids. Run with
``pytest -m lesson03``."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
import tinylm.nn.functional as F
from tinylm.autograd import Function

pytestmark = pytest.mark.lesson03

V, C = 7, 4


def weight(seed: int = 0, requires_grad: bool = True) -> tinylm.Tensor:
    tinylm.manual_seed(seed)
    return tinylm.randn(V, C, dtype=tinylm.float64, requires_grad=requires_grad)


def one_hot(ids: np.ndarray, num_classes: int) -> np.ndarray:
    return (ids[..., None] == np.arange(num_classes)).astype(np.float64)


class LastWriteWinsEmbedding(Function):
    """The lesson's buggy op: a buffered ``dW[ids] += dy`` keeps one row per distinct id."""

    @staticmethod
    def forward(ctx, ids, w):
        ctx.ids, ctx.num_rows = ids, w.shape[0]
        return w[ids]

    @staticmethod
    def backward(ctx, dy):
        dw = np.zeros((ctx.num_rows, dy.shape[-1]))
        dw[ctx.ids] += dy.numpy()
        return None, dw


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 2, 3)])
def test_one_hot_matmul_equals_lookup(shape):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, V, shape)
    ids.flat[0] = ids.flat[-1]  # at least one repeat
    W = weight()
    by_matmul = tinylm.tensor(one_hot(ids, V)) @ W  # (..., V) @ (V, C)
    by_lookup = F.embedding(tinylm.tensor(ids), W)
    assert by_lookup.shape == (*shape, C)
    assert np.array_equal(by_matmul.detach().numpy(), by_lookup.detach().numpy())


def test_embedding_grad_is_one_hot_transpose_times_dy():
    ids = np.array([[3, 1, 3], [0, 3, 6]])
    W = weight()
    dy = np.random.default_rng(2).standard_normal((2, 3, C))
    F.embedding(tinylm.tensor(ids), W).backward(tinylm.tensor(dy))
    O = one_hot(ids.reshape(-1), V)  # (N, V)
    np.testing.assert_allclose(W.grad.numpy(), O.T @ dy.reshape(-1, C), rtol=1e-12)


def test_repeated_ids_accumulate_gradient():
    ids = np.array([3, 1, 3, 0, 3])
    W = weight()
    dy = np.random.default_rng(3).standard_normal((5, C))
    F.embedding(tinylm.tensor(ids), W).backward(tinylm.tensor(dy))
    expected = np.zeros((V, C))
    for p, v in enumerate(ids):
        expected[v] += dy[p]
    np.testing.assert_allclose(W.grad.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(W.grad.numpy()[3], dy[[0, 2, 4]].sum(axis=0), rtol=1e-12)


def test_unused_rows_get_zero_gradient():
    ids = tinylm.tensor([2, 2, 5])
    W = weight()
    (F.embedding(ids, W) * 3.0).sum().backward()
    unused = [v for v in range(V) if v not in (2, 5)]
    assert not W.grad.numpy()[unused].any()
    np.testing.assert_allclose(W.grad.numpy()[2], 6.0)  # two uses, 3 each


def test_numpy_fancy_add_keeps_only_the_last_write():
    ids = np.array([3, 1, 3, 0, 3])
    dy = np.random.default_rng(4).standard_normal((5, C))
    buffered = np.zeros((V, C))
    buffered[ids] += dy
    np.testing.assert_allclose(buffered[3], dy[4])  # the lesson's claim: last write wins
    accumulated = np.zeros((V, C))
    np.add.at(accumulated, ids, dy)
    np.testing.assert_allclose(accumulated[3], dy[[0, 2, 4]].sum(axis=0))


def test_gradcheck_catches_last_write_wins_only_with_repeats():
    W = weight()
    distinct = tinylm.tensor([4, 1, 0])
    assert tinylm.gradcheck(lambda w: LastWriteWinsEmbedding.apply(distinct, w), (W,))
    repeated = tinylm.tensor([3, 1, 3, 0, 3])
    with pytest.raises(tinylm.GradcheckError) as info:
        tinylm.gradcheck(lambda w: LastWriteWinsEmbedding.apply(repeated, w), (W,))
    assert info.value.index[0] == 3  # the repeated row
    assert info.value.numerical == pytest.approx(1.0) and info.value.analytic == 0.0


@pytest.mark.parametrize(
    "ids",
    [[3, 1, 3, 0, 3], [[3, 1, 3], [0, 3, 6]], [[[0, 0], [6, 6]]], [5]],
    ids=["1-d repeats", "2-d repeats", "3-d pairs", "single"],
)
def test_embedding_passes_gradcheck_and_gradgradcheck(ids):
    ids = tinylm.tensor(ids)
    W = weight()
    assert tinylm.gradcheck(lambda w: F.embedding(ids, w), (W,))
    assert tinylm.gradgradcheck(lambda w: F.embedding(ids, w), (W,))


@pytest.mark.parametrize("padding_idx", [0, -1])
def test_padding_row_starts_at_zero_and_gets_no_gradient(padding_idx):
    tinylm.manual_seed(5)
    emb = nn.Embedding(V, C, padding_idx=padding_idx, dtype=tinylm.float64)
    pad = padding_idx % V
    assert not emb.weight.detach().numpy()[pad].any()
    ids = tinylm.tensor([[4, 2, 2], [5, pad, pad]])
    out = emb(ids)
    assert not out.detach().numpy()[1, 1:].any()  # padding positions look up the zero row
    (out * tinylm.randn(*out.shape, dtype=tinylm.float64)).sum().backward()
    assert not emb.weight.grad.numpy()[pad].any()
    assert emb.weight.grad.numpy()[2].any()


def test_padding_gradcheck_passes_once_padding_is_masked():
    W = weight()
    padded = tinylm.tensor([[4, 2, 2], [5, 0, 0]])
    plain = tinylm.gradcheck(
        lambda w: F.embedding(padded, w, padding_idx=0), (W,), raise_exception=False
    )
    assert plain is False  # the zeroed row is a decision, not the derivative
    keep = (padded != 0).double().unsqueeze(-1)
    assert tinylm.gradcheck(lambda w: F.embedding(padded, w, padding_idx=0) * keep, (W,))


def test_negative_id_raises_where_numpy_wraps():
    W = weight(requires_grad=False)
    ids = np.array([[3, 1, 2], [0, -1, 5]])
    np.testing.assert_array_equal(W.numpy()[ids][1, 1], W.numpy()[V - 1])  # NumPy wraps
    with pytest.raises(IndexError, match=r"token id -1 out of range \[0, 7\) at index \(1, 1\)"):
        F.embedding(tinylm.tensor(ids), W)


def test_out_of_range_id_raises_naming_id_position_and_range():
    W = weight(requires_grad=False)
    message = r"embedding: token id 7 out of range \[0, 7\) at index \(0, 2\)"
    with pytest.raises(IndexError, match=message):
        F.embedding(tinylm.tensor([[0, 6, 7]]), W)
    with pytest.raises(IndexError, match="token id 9"):
        nn.Embedding(V, C)(tinylm.tensor([9]))


def test_float_ids_are_refused():
    W = weight(requires_grad=False)
    with pytest.raises(TypeError, match="ids must be an integer tensor"):
        F.embedding(tinylm.tensor([0.0, 2.0]), W)
