"""Attention, MultiheadAttention, positional encodings and the Transformer block.

Forward values against composed references (tinylm's own softmax, a loop over heads),
the properties that define attention (causality, permutation equivariance, rows that
sum to one, fully masked rows), PyTorch's parameter layout and initialisation, and
the caching of the causal mask. Gradients are checked by the registry sweep
(tests/test_registry_sweep.py, entries in tinylm/testing/registry_attention.py);
tests/test_attention_torch.py compares with PyTorch where it is installed.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinylm
from tinylm import nn
from tinylm.autograd import Function
from tinylm.gradcheck import gradcheck, gradgradcheck
from tinylm.nn import attention
from tinylm.nn import functional as F
from tinylm.nn.positional import sinusoidal_table
from tinylm.testing import get_op
from tinylm.testing.opinfo import SampleInput
from tinylm.testing.sweep import check_gradient, check_reference

pytestmark = pytest.mark.lesson09


def t64(a, requires_grad=False):
    return tinylm.tensor(np.asarray(a, dtype=np.float64), dtype=np.float64,
                         requires_grad=requires_grad)


def qkv(rng, L=3, S=5, E=4, Ev=3, batch=(2,)):
    return (rng.standard_normal((*batch, L, E)), rng.standard_normal((*batch, S, E)),
            rng.standard_normal((*batch, S, Ev)))


def simple_attention(q, k, v, keep=None, scale=None):
    """The textbook formula with tinylm's ops: masked_fill, softmax, matmul."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ k.transpose(-2, -1) * scale
    if keep is not None:
        s = s.masked_fill(tinylm.tensor(~keep), -1e30)  # finite: no row is fully masked here
    return s.softmax(-1) @ v


# ----------------------------------------------------------------------------- F-level


def test_sdpa_equals_the_textbook_formula_with_its_gradients():
    rng = np.random.default_rng(0)
    keep = rng.random((3, 5)) < 0.7
    keep[:, 0] = True
    arrays = qkv(rng)
    for mask, kw in [(None, {}), (keep, {}), (None, {"scale": 0.7})]:
        a = [t64(x, True) for x in arrays]
        b = [t64(x, True) for x in arrays]
        y = F.scaled_dot_product_attention(
            *a, attn_mask=None if mask is None else tinylm.tensor(mask), **kw)
        r = simple_attention(*b, keep=mask, **kw)
        np.testing.assert_allclose(y.detach().numpy(), r.detach().numpy(), rtol=1e-12,
                                   atol=1e-12)
        g = t64(rng.standard_normal(y.shape))
        y.backward(g)
        r.backward(g)
        for x, z in zip(a, b):
            np.testing.assert_allclose(x.grad.numpy(), z.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_default_scale_is_one_over_sqrt_e():
    q, k, v = (t64(x) for x in qkv(np.random.default_rng(1), E=9))
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, k, v).numpy(),
                               F.scaled_dot_product_attention(q, k, v, scale=1 / 3).numpy())


def test_is_causal_equals_the_lower_triangular_bool_mask():
    rng = np.random.default_rng(2)
    for L, S in [(4, 4), (3, 5), (5, 3)]:
        q, k, v = (t64(x) for x in qkv(rng, L=L, S=S))
        keep = tinylm.tensor(np.tril(np.ones((L, S), bool)))
        np.testing.assert_array_equal(
            F.scaled_dot_product_attention(q, k, v, is_causal=True).numpy(),
            F.scaled_dot_product_attention(q, k, v, attn_mask=keep).numpy())


def test_causal_attention_never_reads_the_future():
    """Changing the keys and values at positions >= t leaves the outputs before t as they
    were, and their gradients do not reach the future positions."""
    rng = np.random.default_rng(3)
    q, k, v = qkv(rng, L=6, S=6)
    y0 = F.scaled_dot_product_attention(t64(q), t64(k), t64(v), is_causal=True).numpy()
    k2, v2 = k.copy(), v.copy()
    k2[:, 4:] += 5.0
    v2[:, 4:] -= 3.0
    y1 = F.scaled_dot_product_attention(t64(q), t64(k2), t64(v2), is_causal=True).numpy()
    np.testing.assert_array_equal(y0[:, :4], y1[:, :4])
    assert not np.allclose(y0[:, 4:], y1[:, 4:])
    kt = t64(k, True)
    F.scaled_dot_product_attention(t64(q), kt, t64(v), is_causal=True)[:, 2].sum().backward()
    assert not kt.grad.numpy()[:, 3:].any() and kt.grad.numpy()[:, :3].any()


def test_keys_and_values_permuted_together_give_the_same_output():
    rng = np.random.default_rng(4)
    q, k, v = qkv(rng, S=6)
    perm = rng.permutation(6)
    y = F.scaled_dot_product_attention(t64(q), t64(k), t64(v)).numpy()
    yp = F.scaled_dot_product_attention(t64(q), t64(k[:, perm]), t64(v[:, perm])).numpy()
    np.testing.assert_allclose(y, yp, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["bool", "-inf", "no keys"])
def test_fully_masked_rows_give_zeros_and_zero_gradients(kind):
    """Documented behaviour: a query that may attend to nothing outputs zeros, and no
    gradient (no NaN) flows from it, as PyTorch 2.5+ (the plain formula gives 0/0)."""
    rng = np.random.default_rng(5)
    S = 0 if kind == "no keys" else 5
    q, k, v = (t64(x, True) for x in qkv(rng, S=S))
    keep = np.ones((3, S), bool)
    keep[1] = False
    mask = {"bool": tinylm.tensor(keep), "-inf": t64(np.where(keep, 0.0, -np.inf)),
            "no keys": None}[kind]
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = y.detach().numpy()
    assert np.isfinite(out).all()
    rows = slice(None) if kind == "no keys" else 1
    np.testing.assert_array_equal(out[:, rows], 0.0)
    y.backward(t64(np.ones(y.shape)))
    assert all(np.isfinite(x.grad.numpy()).all() for x in (q, k, v))
    np.testing.assert_array_equal(q.grad.numpy()[:, rows], 0.0)


def test_fully_masked_row_passes_gradcheck_and_gradgradcheck():
    rng = np.random.default_rng(6)
    keep = np.ones((3, 4), bool)
    keep[0] = False
    mask = tinylm.tensor(keep)
    q, k, v = (t64(x, True) for x in qkv(rng, S=4, batch=()))
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # noqa: E731
    assert gradcheck(fn, (q, k, v))
    assert gradgradcheck(fn, (q, k, v))


def test_dropout_on_the_weights_is_reproducible_and_unbiased():
    rng = np.random.default_rng(7)
    q, k, v = (t64(x) for x in qkv(rng, batch=(4000,)))
    tinylm.manual_seed(0)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.3).numpy()
    tinylm.manual_seed(0)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.3).numpy()
    np.testing.assert_array_equal(a, b)
    clean = F.scaled_dot_product_attention(q, k, v).numpy()
    assert abs((a - clean).mean()) < 0.02  # E[dropout(A)] = A
    assert not np.allclose(a, clean)


def test_float32_stays_float32():
    q, k, v = (tinylm.tensor(x, dtype=np.float32) for x in qkv(np.random.default_rng(8)))
    assert F.scaled_dot_product_attention(q, k, v, is_causal=True).dtype == np.float32
    m = nn.MultiheadAttention(4, 2)
    y, w = m(tinylm.randn(3, 2, 4), tinylm.randn(5, 2, 4), tinylm.randn(5, 2, 4))
    assert y.dtype == np.float32 and w.dtype == np.float32


def test_causal_mask_is_built_once_and_read_only():
    attention._causal_keep.cache_clear()
    q = t64(np.random.default_rng(9).standard_normal((2, 7, 4)))
    for _ in range(3):
        F.scaled_dot_product_attention(q, q, q, is_causal=True)
    info = attention._causal_keep.cache_info()
    assert info.misses == 1 and info.hits == 2
    keep = attention._causal_keep(7, 7, q.device)
    assert not keep.flags.writeable
    block = nn.TransformerBlock(4, 2).double()
    attention._causal_keep.cache_clear()
    for _ in range(3):
        block(q)
    assert attention._causal_keep.cache_info().misses == 1


SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data(), L=st.integers(1, 3), S=st.integers(1, 3), E=st.integers(1, 3),
       batch=st.lists(st.integers(1, 2), max_size=2), mask=st.sampled_from(
           ["none", "bool", "float", "causal"]))
def test_random_shapes_and_masks_agree_with_the_reference_and_gradcheck(data, L, S, E, batch,
                                                                        mask):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    q, k, v = qkv(rng, L=L, S=S, E=E, Ev=2, batch=tuple(batch))
    args, kwargs = (q, k, v), {}
    if mask == "bool":
        args += (rng.random((L, S)) < 0.6,)  # fully masked rows allowed
    elif mask == "float":
        args += (rng.standard_normal((1, S)),)
    elif mask == "causal":
        kwargs["is_causal"] = True
    info = get_op("F.scaled_dot_product_attention")
    sample = SampleInput(args, kwargs)
    check_reference(info, sample)
    check_gradient(info, sample)


# ----------------------------------------------------------------------------- MultiheadAttention


def test_mha_parameters_have_pytorchs_names_shapes_and_init():
    m = nn.MultiheadAttention(8, 2)
    assert [(k, tuple(p.shape)) for k, p in m.named_parameters()] == [
        ("in_proj_weight", (24, 8)), ("in_proj_bias", (24,)),
        ("out_proj.weight", (8, 8)), ("out_proj.bias", (8,))]
    assert not m.in_proj_bias.detach().numpy().any()
    assert not m.out_proj.bias.detach().numpy().any()
    bound = math.sqrt(6 / (8 + 24))  # xavier_uniform_ of (3E, E)
    assert np.abs(m.in_proj_weight.detach().numpy()).max() <= bound
    assert [k for k, _ in nn.MultiheadAttention(8, 2, bias=False).named_parameters()] == [
        "in_proj_weight", "out_proj.weight"]
    tinylm.manual_seed(3)
    a = nn.MultiheadAttention(8, 2).state_dict()
    tinylm.manual_seed(3)
    b = nn.MultiheadAttention(8, 2).state_dict()
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def per_head_loop(m, query, key, value):
    """MultiheadAttention as a loop over heads, each its own softmax(QK^T/sqrt(D))V."""
    E, H = m.embed_dim, m.num_heads
    D = E // H
    W = m.in_proj_weight.detach().numpy()
    b = m.in_proj_bias.detach().numpy()
    q, k, v = (x @ W[i * E:(i + 1) * E].T + b[i * E:(i + 1) * E]
               for i, x in enumerate((query, key, value)))
    heads, weights = [], []
    for h in range(H):
        cols = slice(h * D, (h + 1) * D)
        s = q[..., cols] @ np.swapaxes(k[..., cols], -1, -2) / math.sqrt(D)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        heads.append(a @ v[..., cols])
        weights.append(a)
    y = np.concatenate(heads, -1) @ m.out_proj.weight.detach().numpy().T
    return y + m.out_proj.bias.detach().numpy(), np.mean(weights, axis=0)


def test_mha_equals_a_loop_over_heads():
    rng = np.random.default_rng(10)
    m = nn.MultiheadAttention(8, 4, batch_first=True).double()
    for p in m.parameters():
        p.data += 0.1 * rng.standard_normal(p.shape)
    x, kv = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 5, 8))
    y, w = m(t64(x), t64(kv), t64(kv))
    y_ref, w_ref = per_head_loop(m, x, kv, kv)
    np.testing.assert_allclose(y.detach().numpy(), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w.detach().numpy(), w_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w.detach().numpy().sum(-1), 1.0, rtol=1e-12)


def test_mha_batch_first_and_unbatched_agree_with_the_default_layout():
    rng = np.random.default_rng(11)
    tinylm.manual_seed(0)
    m = nn.MultiheadAttention(4, 2).double()
    mb = nn.MultiheadAttention(4, 2, batch_first=True).double()
    mb.load_state_dict(m.state_dict())
    x, kv = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4))
    y, w = m(t64(x), t64(kv), t64(kv))
    yb, wb = mb(t64(x.transpose(1, 0, 2)), t64(kv.transpose(1, 0, 2)),
                t64(kv.transpose(1, 0, 2)))
    np.testing.assert_allclose(yb.detach().numpy().transpose(1, 0, 2), y.detach().numpy(),
                               rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(wb.detach().numpy(), w.detach().numpy(), rtol=1e-13, atol=1e-13)
    y1, w1 = m(t64(x[:, 1]), t64(kv[:, 1]), t64(kv[:, 1]))
    np.testing.assert_allclose(y1.detach().numpy(), y.detach().numpy()[:, 1], rtol=1e-13,
                               atol=1e-13)
    np.testing.assert_allclose(w1.detach().numpy(), w.detach().numpy()[1], rtol=1e-13,
                               atol=1e-13)


def test_mha_need_weights_paths_and_head_weights_agree():
    rng = np.random.default_rng(12)
    m = nn.MultiheadAttention(4, 2, batch_first=True).double()
    x = t64(rng.standard_normal((2, 3, 4)))
    kpm = tinylm.tensor(np.array([[False, False, True], [False, True, False]]))
    y, w = m(x, x, x, key_padding_mask=kpm)
    y2, none = m(x, x, x, key_padding_mask=kpm, need_weights=False)
    y3, wh = m(x, x, x, key_padding_mask=kpm, average_attn_weights=False)
    assert none is None and tuple(wh.shape) == (2, 2, 3, 3) and tuple(w.shape) == (2, 3, 3)
    np.testing.assert_allclose(y2.detach().numpy(), y.detach().numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(wh.detach().numpy().mean(1), w.detach().numpy(), rtol=1e-13)
    np.testing.assert_array_equal(w.detach().numpy()[0, :, 2], 0.0)  # padding gets no weight


def test_mha_bool_masks_mean_masked_out_the_opposite_of_sdpa():
    """PyTorch's two conventions: MHA's True = may NOT attend; SDPA's True = may attend."""
    rng = np.random.default_rng(13)
    m = nn.MultiheadAttention(4, 1, batch_first=True, bias=False).double()
    eye = np.eye(4)
    m.load_state_dict({"in_proj_weight": np.concatenate([eye, eye, eye]),
                       "out_proj.weight": eye})
    x = t64(rng.standard_normal((1, 3, 4)))
    blocked = np.array([[False, True, True], [False, False, True], [False, False, False]])
    y, _ = m(x, x, x, attn_mask=tinylm.tensor(blocked))
    ref = F.scaled_dot_product_attention(x, x, x, attn_mask=tinylm.tensor(~blocked))
    np.testing.assert_allclose(y.detach().numpy(), ref.numpy(), rtol=1e-13, atol=1e-13)


def test_mha_dropout_only_while_training():
    rng = np.random.default_rng(14)
    m = nn.MultiheadAttention(4, 2, dropout=0.5).double()
    x = t64(rng.standard_normal((3, 2, 4)))
    m.eval()
    a, _ = m(x, x, x)
    b, _ = m(x, x, x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    m.train()
    c, w = m(x, x, x, average_attn_weights=False)
    assert not np.allclose(c.detach().numpy(), a.detach().numpy())
    assert set(np.unique(w.detach().numpy() == 0)) == {False, True}  # some weights dropped


# ----------------------------------------------------------------------------- positional


def test_sinusoidal_table_follows_the_formula():
    pe = sinusoidal_table(50, 6)
    t, w = 17, 1 / 10000 ** (4 / 6)  # the pair of dims 4 and 5 (i = 2)
    assert pe[t, 4] == pytest.approx(math.sin(t * w), abs=1e-14)
    assert pe[t, 5] == pytest.approx(math.cos(t * w), abs=1e-14)
    np.testing.assert_array_equal(pe[0, 0::2], 0.0)
    np.testing.assert_array_equal(pe[0, 1::2], 1.0)
    assert sinusoidal_table(4, 5).shape == (4, 5)  # odd d_model: one cosine fewer


def test_sinusoidal_shift_is_a_rotation_per_frequency():
    """P_{t+k} = R_k P_t, with R_k a 2x2 rotation by k omega_i on each (sin, cos) pair."""
    pe, k = sinusoidal_table(40, 8), 5
    for i in range(4):
        w = 1 / 10000 ** (2 * i / 8)
        c, s = math.cos(k * w), math.sin(k * w)
        sin_t, cos_t = pe[:-k, 2 * i], pe[:-k, 2 * i + 1]
        np.testing.assert_allclose(pe[k:, 2 * i], sin_t * c + cos_t * s, atol=1e-12)
        np.testing.assert_allclose(pe[k:, 2 * i + 1], cos_t * c - sin_t * s, atol=1e-12)


def test_sinusoidal_module_adds_a_fixed_buffer_outside_the_state_dict():
    m = nn.SinusoidalPositionalEncoding(4, max_len=10)
    assert len(m.state_dict()) == 0
    assert list(m.parameters()) == []
    x = tinylm.zeros(2, 3, 4)
    np.testing.assert_allclose(m(x).numpy()[1], sinusoidal_table(10, 4)[:3], rtol=1e-6)
    m.double()
    assert m(tinylm.zeros(3, 4, dtype=np.float64)).dtype == np.float64
    with pytest.raises(TypeError, match="convert the module"):
        m(tinylm.zeros(3, 4))


def test_learned_positions_get_the_gradient_summed_over_the_batch():
    m = nn.LearnedPositionalEmbedding(6, 3).double()
    assert list(m.state_dict()) == ["weight"]  # an Embedding's state dict
    x = t64(np.zeros((4, 2, 3)), True)
    y = m(x)
    np.testing.assert_array_equal(y.detach().numpy()[2], m.weight.detach().numpy()[:2])
    y.sum().backward()
    g = m.weight.grad.numpy()
    np.testing.assert_array_equal(g[:2], 4.0)
    np.testing.assert_array_equal(g[2:], 0.0)


# ----------------------------------------------------------------------------- block


def test_block_is_causal_and_keeps_its_shape():
    rng = np.random.default_rng(15)
    block = nn.TransformerBlock(8, 2).double()
    x = rng.standard_normal((2, 6, 8))
    y = block(t64(x)).detach().numpy()
    assert y.shape == (2, 6, 8)
    x2 = x.copy()
    x2[:, 4:] = rng.standard_normal((2, 2, 8))
    y2 = block(t64(x2)).detach().numpy()
    np.testing.assert_allclose(y2[:, :4], y[:, :4], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(block(t64(x[1])).detach().numpy(), y[1], rtol=1e-13, atol=1e-13)


def test_block_children_and_a_few_steps_of_training():
    tinylm.manual_seed(0)
    block = nn.TransformerBlock(8, 2, mlp_ratio=2)
    names = [k for k, _ in block.named_parameters()]
    assert names[:2] == ["ln_1.weight", "ln_1.bias"] and "mlp.2.weight" in names
    assert tuple(block.mlp[0].weight.shape) == (16, 8)
    opt = tinylm.optim.Adam(block.parameters(), lr=1e-2)
    rng = np.random.default_rng(16)
    x = tinylm.tensor(rng.standard_normal((4, 5, 8)), dtype=np.float32)
    target = tinylm.tensor(rng.standard_normal((4, 5, 8)), dtype=np.float32)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = F.mse_loss(block(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_block_constructor_errors():
    with pytest.raises(ValueError, match="embed_dim 6 must be divisible by num_heads 4"):
        nn.TransformerBlock(6, 4)
    with pytest.raises(ValueError, match="mlp_ratio must be a positive number"):
        nn.TransformerBlock(8, 2, mlp_ratio=0)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.MultiheadAttention(8, 2, dropout=2.0)


# ----------------------------------------------------------------------------- devices


# `device`: the shared cpu/cuda fixture of tests/conftest.py


def test_attention_layers_agree_across_devices(device):
    """The same block and encodings on ``device`` give the CPU's outputs and gradients."""
    rng = np.random.default_rng(20)
    tinylm.manual_seed(0)
    block = nn.TransformerBlock(8, 2, dropout=0.0).double()
    pos = nn.LearnedPositionalEmbedding(6, 8).double()
    sin = nn.SinusoidalPositionalEncoding(8, 6, dtype=np.float64)
    x = rng.standard_normal((2, 5, 8))
    results = []
    for dev in ("cpu", device):
        for m in (block, pos, sin):
            m.to(dev)
            m.zero_grad()
        xt = tinylm.tensor(x, requires_grad=True, device=dev)
        y = block(sin(pos(xt)))
        assert y.device == tinylm.Device(dev)
        (y * y).sum().backward()
        results.append([y.detach().numpy(), xt.grad.numpy(), block.attn.in_proj_weight.grad.numpy(),
                        pos.weight.grad.numpy()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- code shape


def test_masked_softmax_derives_its_gradient_and_is_twice_differentiable():
    cls = attention.MaskedSoftmaxFn
    assert issubclass(cls, Function) and not cls.once_differentiable
    assert all(k in cls.__doc__ for k in ("Forward:", "Backward:", "Shapes:", "Saves:"))
    s = t64(np.random.default_rng(17).standard_normal((2, 3, 4)), True)
    bias = t64(np.random.default_rng(18).standard_normal((3, 4)), True)
    keep = np.random.default_rng(19).random((3, 4)) < 0.7
    fn = lambda s, b: attention.masked_softmax(s, keep, b, 0.5)  # noqa: E731
    assert gradcheck(fn, (s, bias)) and gradgradcheck(fn, (s, bias))


def test_solution_block_marks_the_core_of_sdpa():
    src = inspect.getsource(F.scaled_dot_product_attention)
    assert "# BEGIN SOLUTION lesson09" in src and "# END SOLUTION" in src
    body = src.split("# BEGIN SOLUTION lesson09")[1].split("# END SOLUTION")[0]
    assert "masked_softmax" in body and "matmul" in body
