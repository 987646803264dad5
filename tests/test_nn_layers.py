"""Layers and F: PyTorch's default initialisation (checked statistically with a seed),
embedding's strict ids and scatter-add gradient, dropout's mask, the norms, and the
registry meta-test for tinylm.nn (every F function and layer has an entry)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinylm
from tinylm import nn
from tinylm.autograd import Function
from tinylm.nn import functional as F
from tinylm.nn import init
from tinylm.nn.functional import _scatter_add_rows
from tinylm.testing import get_op, op_db
from tinylm.testing.opinfo import SampleInput
from tinylm.testing.sweep import check_gradgrad, check_gradient, check_layouts, check_reference

pytestmark = pytest.mark.lesson03


def leaf(a):
    return tinylm.Tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def check_uniform(a: np.ndarray, bound: float) -> None:
    """Draws from U(-bound, bound): inside it, reaching near both ends, mean 0 and variance
    bound^2 / 3 within 5 standard errors."""
    a = a.astype(np.float64).ravel()
    n = a.size
    assert a.min() >= -bound and a.max() <= bound
    assert a.min() < -0.98 * bound and a.max() > 0.98 * bound
    assert abs(a.mean()) < 5 * bound / math.sqrt(3 * n)
    var = bound**2 / 3
    assert abs(a.var() - var) < 5 * var * math.sqrt(0.8 / n)  # Var(x^2) = 4/45 b^4 = 0.8 var^2


def check_normal(a: np.ndarray, std: float) -> None:
    a = a.astype(np.float64).ravel()
    n = a.size
    assert abs(a.mean()) < 5 * std / math.sqrt(n)
    assert abs(a.std() - std) < 5 * std / math.sqrt(2 * n)
    inside = np.mean(np.abs(a) < std)  # P(|z| < 1) = 0.6827
    assert abs(inside - 0.6827) < 5 * math.sqrt(0.6827 * 0.3173 / n)


# ----------------------------------------------------------------------------- init


def test_linear_default_init_is_uniform_one_over_sqrt_fan_in():
    tinylm.manual_seed(0)
    m = nn.Linear(256, 300)
    assert m.weight.shape == (300, 256) and m.bias.shape == (300,)
    assert m.weight.dtype == np.float32 and m.weight.requires_grad
    check_uniform(m.weight.data, 1 / 16)
    b = m.bias.data
    assert b.min() >= -1 / 16 and b.max() <= 1 / 16 and b.std() > 0.02


def test_init_is_reproducible_under_manual_seed():
    tinylm.manual_seed(3)
    a = nn.Linear(5, 4)
    tinylm.manual_seed(3)
    b = nn.Linear(5, 4)
    c = nn.Linear(5, 4)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(b.weight.data, c.weight.data)


def test_embedding_default_init_is_standard_normal():
    tinylm.manual_seed(1)
    m = nn.Embedding(1000, 64)
    assert m.weight.shape == (1000, 64)
    check_normal(m.weight.data, 1.0)


def test_init_functions():
    tinylm.manual_seed(2)
    w = tinylm.zeros(200, 300)
    init.kaiming_uniform_(w, nonlinearity="relu")
    check_uniform(w.data, math.sqrt(2) * math.sqrt(3 / 300))
    init.kaiming_uniform_(w, a=math.sqrt(5))
    check_uniform(w.data, 1 / math.sqrt(300))
    init.xavier_uniform_(w, gain=2.0)
    check_uniform(w.data, 2.0 * math.sqrt(6 / 500))
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    check_normal(w.data, math.sqrt(2) / math.sqrt(200))
    init.xavier_normal_(w)
    check_normal(w.data, math.sqrt(2 / 500))
    init.normal_(w, mean=3.0, std=0.5)
    check_normal(w.data - 3.0, 0.5)
    init.uniform_(w, -2.0, 2.0)
    check_uniform(w.data, 2.0)
    assert init.ones_(w) is w and np.all(w.data == 1)
    assert np.all(init.zeros_(w).data == 0) and np.all(init.constant_(w, 0.5).data == 0.5)
    conv = tinylm.zeros(4, 3, 5)  # (out, in, kernel): fan_in = 15
    init.kaiming_uniform_(conv, a=math.sqrt(5))
    assert np.abs(conv.data).max() <= 1 / math.sqrt(15)


def test_calculate_gain_and_fan_errors():
    assert init.calculate_gain("linear") == 1.0 and init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(2 / 6)
    with pytest.raises(ValueError, match="calculate_gain: unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match=r"fewer than 2 dimensions \(got shape \(3,\)\)"):
        init.xavier_uniform_(tinylm.zeros(3))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(tinylm.zeros(2, 2), mode="fan_avg")


# ----------------------------------------------------------------------------- Linear


def test_linear_layer():
    m = nn.Linear(3, 2, bias=False, dtype=tinylm.float64)
    assert m.bias is None and list(m.state_dict()) == ["weight"]
    assert m.weight.dtype == np.float64
    assert repr(m) == "Linear(in_features=3, out_features=2, bias=False)"
    x = tinylm.randn(4, 5, 3, dtype=tinylm.float64)
    np.testing.assert_allclose(m(x).data, x.data @ m.weight.data.T, rtol=1e-12)
    empty = nn.Linear(0, 3)
    assert np.all(empty.bias.data == 0) and empty(tinylm.zeros(2, 0)).shape == (2, 3)
    with pytest.raises(ValueError, match="Linear: in_features must be a non-negative int, got -1"):
        nn.Linear(-1, 2)


def test_f_linear_gradients_by_formula():
    x, w, b = leaf(np.ones((2, 3))), leaf(np.arange(12).reshape(4, 3)), leaf(np.zeros(4))
    y = F.linear(x, w, b)
    assert y.grad_fn.__name__ == "LinearFn"
    dy = np.arange(8.0).reshape(2, 4)
    y.backward(tinylm.Tensor(dy))
    np.testing.assert_allclose(x.grad.data, dy @ w.data)
    np.testing.assert_allclose(w.grad.data, dy.T @ x.data)
    np.testing.assert_allclose(b.grad.data, dy.sum(0))


# ----------------------------------------------------------------------------- Embedding


def test_embedding_gradient_is_a_scatter_add_of_repeated_ids():
    ids = tinylm.tensor([[1, 1, 2], [1, 0, 2]])
    W = leaf(np.random.default_rng(0).standard_normal((4, 3)))
    y = F.embedding(ids, W)
    np.testing.assert_array_equal(y.data, W.data[ids.data])
    y.sum().backward()
    np.testing.assert_array_equal(W.grad.data, np.array([1, 3, 2, 0])[:, None] * np.ones(3))


def test_scatter_add_agrees_with_add_at():
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 7, 200)  # many repeats
    rows = rng.standard_normal((200, 4))
    want = np.zeros((9, 4))
    np.add.at(want, ids, rows)
    np.testing.assert_allclose(_scatter_add_rows(9, ids, rows), want, rtol=1e-12, atol=1e-12)


def test_padding_row_never_gets_a_gradient():
    m = nn.Embedding(5, 3, padding_idx=1, dtype=tinylm.float64)
    assert np.all(m.weight.data[1] == 0) and np.any(m.weight.data[0] != 0)
    ids = tinylm.tensor([[1, 1, 2], [0, 1, 4]])
    m(ids).sum().backward()
    np.testing.assert_array_equal(m.weight.grad.data[1], 0.0)
    np.testing.assert_array_equal(m.weight.grad.data[:, 0], [1, 0, 1, 0, 1])
    m.weight.data[1] = 7.0  # as PyTorch: the forward still returns the row as it is
    np.testing.assert_array_equal(m(tinylm.tensor([1])).data, [[7.0, 7.0, 7.0]])
    assert nn.Embedding(5, 3, padding_idx=-1).padding_idx == 4
    assert repr(nn.Embedding(5, 3, padding_idx=-1)) == "Embedding(5, 3, padding_idx=4)"


def test_embedding_second_derivative_through_the_scatter():
    ids = np.array([[0, 2, 2], [3, 0, 1]])
    W = leaf(np.random.default_rng(1).standard_normal((4, 2)))
    assert tinylm.gradgradcheck(lambda W: F.embedding(ids, W) ** 2, (W,))


@pytest.mark.parametrize("padding_idx", [None, 1])
def test_embedding_grad_op_is_checked_on_its_own(padding_idx):
    """dy -> dW is linear (padding row zero included), so here gradcheck judges the padding
    rule too: its backward must mask the padding positions as its forward does."""
    ids = np.array([[1, 2, 1], [0, 1, 4]])
    dy = leaf(np.random.default_rng(2).standard_normal((2, 3, 2)))
    c = tinylm.Tensor(np.random.default_rng(3).standard_normal((5, 2)))  # nonzero on row 1

    def fn(dy):
        dw = F.EmbeddingGradFn.apply(dy, ids, num_embeddings=5, padding_idx=padding_idx)
        return dw * c + dw**2

    assert tinylm.gradcheck(fn, (dy,)) and tinylm.gradgradcheck(fn, (dy,))


@pytest.mark.parametrize(("ids", "message"), [
    (np.array([[1, 2], [3, 70]]), r"embedding: token id 70 out of range \[0, 65\) at index "
                                  r"\(1, 1\)"),
    (np.array([0, -1, 5]), r"embedding: token id -1 out of range \[0, 65\) at index \(1,\)"),
    (np.array(65), r"embedding: token id 65 out of range \[0, 65\) at index \(\)"),
])
def test_embedding_names_the_bad_id_its_position_and_the_range(ids, message):
    m = nn.Embedding(65, 4)
    with pytest.raises(IndexError, match=message):
        m(tinylm.tensor(ids))


def test_embedding_refuses_float_ids_and_bad_padding():
    with pytest.raises(TypeError, match="embedding: ids must be an integer tensor, got dtype "
                       "float32"):
        nn.Embedding(5, 2)(tinylm.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"Embedding: padding_idx 5 out of range \[-5, 5\)"):
        nn.Embedding(5, 2, padding_idx=5)


def test_embedding_from_pretrained():
    table = np.arange(6.0).reshape(3, 2)
    m = nn.Embedding.from_pretrained(table)
    assert m.weight.dtype == np.float64 and not m.weight.requires_grad
    np.testing.assert_array_equal(m(tinylm.tensor([2, 0])).data, [[4, 5], [0, 1]])
    assert nn.Embedding.from_pretrained(tinylm.tensor(table), freeze=False).weight.requires_grad


# ----------------------------------------------------------------------------- Dropout


def test_dropout_mask_statistics_and_scaling():
    tinylm.manual_seed(0)
    x = tinylm.ones(400, 250, requires_grad=True)
    p = 0.3
    y = F.dropout(x, p)
    kept = y.data != 0
    n = kept.size
    assert abs((1 - kept.mean()) - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(y.data[kept], np.float32(1) / np.float32(1 - p))
    assert abs(y.data.mean() - 1.0) < 0.01  # E[y] = x
    y.backward(tinylm.ones(400, 250))
    np.testing.assert_array_equal(x.grad.data, y.data)  # dx = dy m / (1 - p)


def test_dropout_is_reproducible_and_identity_in_eval():
    m = nn.Dropout(0.5)
    x = tinylm.randn(50, 40)
    tinylm.manual_seed(7)
    a = m(x).data
    tinylm.manual_seed(7)
    b = m(x).data
    assert np.array_equal(a, b) and not np.array_equal(a, m(x).data)
    assert m.eval()(x) is x
    assert np.all(F.dropout(x, 1.0).data == 0) and F.dropout(x, 0.0) is x
    assert repr(m) == "Dropout(p=0.5, inplace=False)"
    with pytest.raises(ValueError, match="Dropout: probability has to be between 0 and 1, "
                       "but got 2"):
        nn.Dropout(2)


# ----------------------------------------------------------------------------- norms


def test_layer_norm_layer_normalises_and_initialises_like_pytorch():
    m = nn.LayerNorm((3, 4))
    assert np.all(m.weight.data == 1) and np.all(m.bias.data == 0)
    assert m.weight.shape == (3, 4) and list(m.state_dict()) == ["weight", "bias"]
    x = tinylm.randn(5, 3, 4, dtype=tinylm.float64) * 3 + 2
    m.double()
    y = m(x).data.reshape(5, 12)
    np.testing.assert_allclose(y.mean(1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(1), 1, rtol=1e-5)  # eps=1e-5 under a variance of ~9
    assert nn.LayerNorm(4, elementwise_affine=False).weight is None
    assert list(nn.LayerNorm(4, bias=False).state_dict()) == ["weight"]
    assert repr(nn.LayerNorm(4)) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)"
    with pytest.raises(ValueError, match="LayerNorm: normalized_shape must be a non-empty"):
        nn.LayerNorm(())


def test_rms_norm_eps_defaults_to_the_machine_epsilon_of_the_input():
    m = nn.RMSNorm(8)
    assert m.eps is None and np.all(m.weight.data == 1)
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).standard_normal((3, 8)).astype(dtype) * 1e-4
        eps = np.finfo(dtype).eps  # comparable to mean(x^2) ~ 1e-8 here: it matters
        want = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
        got = F.rms_norm(tinylm.tensor(x), (8,)).data
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
        assert not np.allclose(got, F.rms_norm(tinylm.tensor(x), (8,), eps=1e-5).data)
    assert repr(m) == "RMSNorm((8,), eps=None, elementwise_affine=True)"
    assert list(nn.RMSNorm(8, elementwise_affine=False).state_dict()) == []


# ----------------------------------------------------------------------------- activations


def test_activation_layers_are_the_ops():
    x = tinylm.randn(3, 4)
    for layer, fn in [(nn.ReLU(), tinylm.relu), (nn.Tanh(), tinylm.tanh),
                      (nn.Sigmoid(), tinylm.sigmoid), (nn.GELU(), tinylm.gelu),
                      (nn.Softmax(dim=1), lambda t: tinylm.softmax(t, 1))]:
        np.testing.assert_array_equal(layer(x).data, fn(x).data)
    np.testing.assert_array_equal(nn.GELU("tanh")(x).data, tinylm.gelu(x, "tanh").data)
    assert repr(nn.GELU()) == "GELU(approximate='none')" and repr(nn.Softmax(1)) == "Softmax(dim=1)"
    with pytest.raises(ValueError, match="GELU: approximate must be 'none' or 'tanh'"):
        nn.GELU("fast")
    with pytest.raises(TypeError, match="softmax: dim is required"):
        nn.Softmax()(x)


def test_a_small_model_learns():
    """Embedding -> LayerNorm -> Linear fits a fixed next-token table by plain SGD."""
    tinylm.manual_seed(0)
    model = nn.Sequential(nn.Embedding(6, 8), nn.LayerNorm(8), nn.Linear(8, 6))
    ids = tinylm.tensor([0, 1, 2, 3, 4, 5])
    target = np.array([1, 2, 3, 4, 5, 0])

    def loss():
        logp = F.log_softmax(model(ids), dim=-1)
        return -logp[np.arange(6), target].mean()

    first = loss().item()
    for _ in range(100):
        model.zero_grad()
        loss().backward()
        with tinylm.no_grad():
            for p in model.parameters():
                p.data -= 0.5 * p.grad.data
    assert loss().item() < 0.1 * first


# ----------------------------------------------------------------------------- hypothesis

SETTINGS = settings(max_examples=10, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
batches = hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)
features = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=3)


def floats(draw, shape):
    return draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2, width=64)))


def run_all(name, sample):
    info = get_op(name)
    for check in (check_reference, check_gradient, check_gradgrad, check_layouts):
        check(info, sample)


@SETTINGS
@given(data=st.data(), batch=batches, n_in=st.integers(0, 3), n_out=st.integers(0, 3),
       bias=st.booleans())
def test_linear_on_random_shapes(data, batch, n_in, n_out, bias):
    x, w = floats(data.draw, batch + (n_in,)), floats(data.draw, (n_out, n_in))
    b = floats(data.draw, (n_out,)) if bias else None
    run_all("F.linear", SampleInput((x, w, b)))


@SETTINGS
@given(data=st.data(), ids_shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0,
                                                  max_side=4), V=st.integers(1, 4),
       C=st.integers(1, 3))
def test_embedding_on_random_ids(data, ids_shape, V, C):
    ids = data.draw(hnp.arrays(np.int64, ids_shape, elements=st.integers(0, V - 1)))
    pad = data.draw(st.one_of(st.none(), st.integers(-V, V - 1)))
    run_all("F.embedding", SampleInput((ids, floats(data.draw, (V, C))),
                                       {"padding_idx": pad}))


@SETTINGS
@given(data=st.data(), batch=batches, shape=features, affine=st.booleans())
def test_norms_on_random_shapes(data, batch, shape, affine):
    # each row spread over [-2, 2] (+-0.2 of noise): a row of (nearly) equal values has
    # variance ~0, where 1/sqrt(var + eps) is too steep for central differences, and a row
    # of (nearly) zeros is the same for rms_norm
    spread = 2 * np.linspace(-1, 1, int(np.prod(shape))).reshape(shape)
    x = spread + 0.1 * floats(data.draw, batch + shape)
    w = floats(data.draw, shape) if affine else None
    b = floats(data.draw, shape) if affine else None
    run_all("F.layer_norm", SampleInput((x, shape, w, b)))
    run_all("F.rms_norm", SampleInput((x, shape, w)))


# ----------------------------------------------------------------------------- registry


def test_every_f_function_and_layer_has_a_registry_entry():
    names = {i.name for i in op_db}
    ops_names = {i.name: i.op for i in op_db}
    missing = []
    for name in F.__all__:
        fn = getattr(F, name)
        # an op of tinylm.ops re-exported unchanged is covered by that op's own entry
        if f"F.{name}" not in names and ops_names.get(name) is not fn:
            missing.append(f"F.{name}")
    without_forward = (nn.Module, nn.ModuleList, nn.ModuleDict)
    for name in dir(nn):
        obj = getattr(nn, name)
        if (isinstance(obj, type) and issubclass(obj, nn.Module) and obj not in without_forward
                and f"nn.{name}" not in names):
            missing.append(f"nn.{name}")
    assert not missing, f"tinylm.nn functions and layers without a registry entry: {missing}"


def test_nn_functions_derive_their_gradients_in_the_docstring():
    for cls in (F.LinearFn, F.EmbeddingFn, F.EmbeddingGradFn, F.LayerNormFn, F.RMSNormFn):
        assert issubclass(cls, Function)
        doc = cls.__doc__
        assert all(k in doc for k in ("Forward:", "Backward:", "Shapes:", "Saves:")), cls
