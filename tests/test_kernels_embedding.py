"""The embedding backward kernel (tinylm/kernels/embedding.py) against the reference.

Through the public API (F.embedding, nn.Embedding, ``.backward()``), kernels on against
``tinylm.kernels.reference()``. The kernel adds the rows in position order, so it gives the
same bits as ``np.add.at`` on a zeroed table: compared exactly. The reference (stable sort,
then ``add.reduceat`` of each run) adds the same k terms of a row in its own order; each
order is within (k - 1) u sum|terms| of the exact sum (u = eps/2 of the dtype), so the two
differ by at most 2 (k - 1) u sum|terms|: that is the tolerance against the reference.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
import tinylm.nn.functional as F
from tinylm import kernels
from tinylm.kernels import embedding as kemb

pytestmark = pytest.mark.lesson11  # lesson 11 (kernels and backends) is graded by these

DTYPES = [np.float32, np.float64]


def add_at(num_rows, ids, rows, padding_idx=None):
    out = np.zeros((num_rows, rows.shape[-1]), rows.dtype)
    np.add.at(out, ids.reshape(-1), rows.reshape(-1, rows.shape[-1]))
    if padding_idx is not None:
        out[padding_idx] = 0
    return out


def assert_same_sum(got, want, ids, G, num_rows):
    """|got - want| <= 2 (k - 1) u sum|G| row by row, k = how often the row's id occurs."""
    u = np.finfo(G.dtype).eps / 2
    k = np.bincount(ids.reshape(-1).astype(np.int64), minlength=num_rows)[:, None]
    bound = 2 * np.maximum(k - 1, 0) * u * add_at(num_rows, ids, np.abs(G))
    assert np.all(np.abs(got.astype(np.float64) - want) <= bound), np.max(np.abs(got - want))


def weight_grad(ids, V, C, dtype, padding_idx=None, seed=0, layer=False):
    """W.grad of sum(embedding(ids, W) * G) for a fixed random G: dW = scatter_add(G)."""
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((*ids.shape, C)).astype(dtype)
    if layer:
        m = nn.Embedding(V, C, padding_idx=padding_idx, dtype=dtype)
        y = m(tinylm.tensor(ids))
        W = m.weight
    else:
        W = tinylm.Tensor(rng.standard_normal((V, C)).astype(dtype), requires_grad=True)
        y = F.embedding(tinylm.tensor(ids), W, padding_idx=padding_idx)
    (y * tinylm.Tensor(G)).sum().backward()
    return W.grad.data, G


def both(fn):
    got = fn()
    with kernels.reference():
        want = fn()
    return got, want


@pytest.fixture
def count_kernel_calls(monkeypatch):
    calls = []
    real = kemb.scatter_add_rows

    def counting(*args, **kw):
        calls.append(args[2].dtype)
        return real(*args, **kw)

    monkeypatch.setattr(kemb, "scatter_add_rows", counting)
    return calls


IDS = [
    np.array([3, 1, 3, 0, 3]),  # repeats
    np.array([[1, 2, 1], [0, 1, 4]]),
    np.random.default_rng(7).integers(0, 9, (4, 6, 5)),  # many repeats, 3-D batch
    np.array([], dtype=np.int64),  # zero-size
    np.zeros((2, 0), dtype=np.int64),
    np.array(4),  # 0-d ids: one lookup
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ids", IDS, ids=lambda a: str(a.shape))
@pytest.mark.parametrize("padding_idx", [None, 1, -1])
@pytest.mark.parametrize("layer", [False, True], ids=["F", "nn"])
def test_weight_gradient_equals_reference_and_add_at(dtype, ids, padding_idx, layer,
                                                     count_kernel_calls):
    V, C = 9, 5
    (got, G), (want, _) = both(lambda: weight_grad(ids, V, C, dtype, padding_idx, layer=layer))
    assert count_kernel_calls == [np.dtype(dtype)], "the kernel ran exactly once, kernels on"
    assert got.dtype == dtype and got.shape == (V, C)
    pad = None if padding_idx is None else padding_idx % V
    np.testing.assert_array_equal(got, add_at(V, ids, G, pad))
    assert_same_sum(got, want, ids, G, V)


@pytest.mark.parametrize("id_dtype", [np.int32, np.int64, np.uint8, np.int16, np.uint64])
def test_every_integer_id_dtype(id_dtype):
    ids = np.array([[0, 5, 5], [2, 0, 5]], dtype=id_dtype)
    (got, G), (want, _) = both(lambda: weight_grad(ids, 6, 4, np.float32, padding_idx=2))
    np.testing.assert_array_equal(got, add_at(6, ids.astype(np.int64), G, 2))
    assert_same_sum(got, want, ids, G, 6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_upstream_gradient_and_strided_weight(dtype):
    """dy reaches the kernel as a transposed view, and as the broadcast ones of sum()."""
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 11, (4, 7))
    table = rng.standard_normal((11, 2 * 6)).astype(dtype)

    def grads():
        W = tinylm.Tensor(table, requires_grad=True)
        Ws = W[:, ::2]  # a strided view of the weight
        y = F.embedding(tinylm.tensor(ids), Ws).transpose(0, 1)  # (7, 4, 6), not contiguous
        (y * tinylm.Tensor(np.arange(7 * 4 * 6, dtype=dtype).reshape(7, 4, 6))).sum().backward()
        W2 = tinylm.Tensor(table[:, :6], requires_grad=True)
        F.embedding(tinylm.tensor(ids), W2).sum().backward()  # dy: broadcast ones
        return W.grad.data, W2.grad.data

    got, want = both(grads)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_scatter_add_rows_directly_matches_add_at_bits():
    """A larger case with many repeats: the same additions in the same order."""
    rng = np.random.default_rng(11)
    ids = rng.integers(0, 50, 3000)
    rows = rng.standard_normal((3000, 33)).astype(np.float32)
    np.testing.assert_array_equal(kemb.scatter_add_rows(50, ids, rows), add_at(50, ids, rows))
    np.testing.assert_array_equal(kemb.scatter_add_rows(50, ids, rows[:, ::-1]),
                                  add_at(50, ids, rows[:, ::-1].copy()))


def test_unused_rows_stay_zero_and_nan_passes_through():
    ids = np.array([2, 2, 5])
    rows = np.array([[1.0, np.nan], [np.inf, 1.0], [-np.inf, 2.0]])
    got = kemb.scatter_add_rows(7, ids, rows, padding_idx=5)
    want = np.zeros((7, 2))
    want[2] = [np.inf, np.nan]
    np.testing.assert_array_equal(got, want)


def test_same_bits_with_one_and_two_numba_threads():
    ids = np.random.default_rng(4).integers(0, 40, (8, 64))
    results = []
    old = numba.get_num_threads()
    try:
        for n in (1, 2, 1):
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            results.append(weight_grad(ids, 40, 16, np.float32, seed=5)[0])
    finally:
        numba.set_num_threads(old)
    assert all(np.array_equal(results[0], r) for r in results[1:])


def test_gradcheck_and_gradgradcheck_with_the_kernel(count_kernel_calls):
    """First order runs the kernel; under create_graph EmbeddingGradFn records itself and its
    backward (a gather) gives the second derivative."""
    ids = np.array([[0, 2, 2], [3, 0, 1]])
    W = tinylm.Tensor(np.random.default_rng(1).standard_normal((4, 3)), requires_grad=True)
    assert tinylm.gradcheck(lambda W: F.embedding(ids, W) ** 2, (W,))
    assert count_kernel_calls, "gradcheck's backward used the kernel"
    assert tinylm.gradgradcheck(lambda W: F.embedding(ids, W) ** 2, (W,))


@pytest.mark.parametrize("padding_idx", [None, 1])
def test_the_grad_op_with_padding_is_checked_on_its_own(padding_idx, count_kernel_calls):
    """dy -> dW (its forward is the kernel) is linear, padding row zero included."""
    ids = np.array([[1, 2, 1], [0, 1, 4]])
    dy = tinylm.Tensor(np.random.default_rng(2).standard_normal((2, 3, 2)), requires_grad=True)
    c = tinylm.Tensor(np.random.default_rng(3).standard_normal((5, 2)))

    def fn(dy):
        dw = F.EmbeddingGradFn.apply(dy, ids, num_embeddings=5, padding_idx=padding_idx)
        return dw * c + dw**2

    assert tinylm.gradcheck(fn, (dy,)) and tinylm.gradgradcheck(fn, (dy,))
    assert count_kernel_calls


def test_double_backward_matches_reference():
    ids = np.array([[1, 3, 1], [0, 1, 2]])
    w0 = np.random.default_rng(2).standard_normal((4, 3))

    def second():
        W = tinylm.Tensor(w0, requires_grad=True)
        (g,) = tinylm.autograd.grad((F.embedding(ids, W, padding_idx=0) ** 3).sum(), W,
                                    create_graph=True)
        (g * g).sum().backward()
        return g.data, W.grad.data

    got, want = both(second)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)


def test_bench_cases_run():
    for case in kemb.bench_cases(quick=True):
        case.kernel()
        case.numpy()
        if case.torch is not None:
            case.torch()


def test_an_id_out_of_range_raises_instead_of_writing_outside_the_table():
    """F.embedding checks the ids first; the grad op called on its own must not trust them."""
    rows = np.ones((3, 2))
    with pytest.raises(IndexError, match=r"id 9 at position 1 out of range \[0, 4\)"):
        kemb.scatter_add_rows(4, np.array([0, 9, 1]), rows)
    with pytest.raises(IndexError, match=r"id -1 at position 2"):
        kemb.scatter_add_rows(4, np.array([0, 1, -1]), rows)


def test_negative_padding_idx_counts_from_the_end():
    ids = np.array([3, 1, 3])
    got = kemb.scatter_add_rows(4, ids, np.ones((3, 2)), padding_idx=-1)
    np.testing.assert_array_equal(got, [[0, 0], [1, 1], [0, 0], [0, 0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ids_shape", [(7,), (3, 4), (0,)])
def test_getitem_backward_with_an_id_array_uses_the_scatter_kernel(dtype, ids_shape, monkeypatch):
    """``x[ids]`` (one integer-array key: whole rows) is an embedding lookup, so its backward
    (IndexAdd) uses the same serial scatter kernel: the same bits as np.add.at, which adds
    in the same order. Repeated and negative ids included."""
    from tinylm import kernels

    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 3)).astype(dtype)
    ids = rng.integers(-6, 6, ids_shape)
    dy = rng.standard_normal(ids_shape + (2, 3)).astype(dtype)
    calls = []
    real = kernels.embedding.scatter_add_rows_into
    monkeypatch.setattr(kernels.embedding, "scatter_add_rows_into",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    grads = []
    for on in (True, False):
        old = kernels.set_enabled(on)
        try:
            t = tinylm.tensor(x, requires_grad=True)
            t[tinylm.tensor(ids)].backward(tinylm.tensor(dy))
            grads.append(t.grad.numpy())
        finally:
            kernels.set_enabled(old)
    want = np.zeros_like(x)
    np.add.at(want, ids, dy)
    assert calls == [1]  # the kernel ran once (kernels on), not with the reference
    np.testing.assert_array_equal(grads[0], want)
    np.testing.assert_array_equal(grads[1], want)
