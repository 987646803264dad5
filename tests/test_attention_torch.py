"""PyTorch as an oracle for attention (optional: skipped without torch).

The registry's own samples (tinylm.testing.registry_attention) run through both
libraries: F.scaled_dot_product_attention against torch's, nn.MultiheadAttention
against torch.nn.MultiheadAttention with the same weights, TransformerBlock against the
same composition of torch modules. Outputs, attention weights and the gradients of
inputs, parameters and float masks agree in float64 to 1e-10.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinylm
from tinylm import nn
from tinylm.testing import get_op
from tinylm.testing.opinfo import SampleInput
from tinylm.testing.registry_attention import _BLOCK_PARAMS

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.lesson09

TOL = 1e-10


def _torch_leaves(args, nondiff=()):
    """The sample's args as torch tensors: float arrays become leaves that require grad."""
    out = []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            t = torch.from_numpy(a.copy())
            if a.dtype.kind == "f" and i not in nondiff:
                t.requires_grad_(True)
            out.append(t)
        else:
            out.append(a)
    return out


def _seeds(ys):
    rng = np.random.default_rng(5)
    return [rng.standard_normal(tuple(y.shape)) for y in ys]


def _run_tinylm(info, sample):
    args = sample.tensors()
    ys = info.op(*args, **sample.kwargs)
    ys = [ys] if isinstance(ys, tinylm.Tensor) else list(ys)
    gs = _seeds(ys)
    live = [(y, g) for y, g in zip(ys, gs) if y.requires_grad]
    if live:
        tinylm.autograd.backward([y for y, _ in live], [tinylm.tensor(g, dtype=np.float64)
                                                        for _, g in live])
    grads = [None if not (isinstance(a, tinylm.Tensor) and a.requires_grad) or a.grad is None
             else a.grad.numpy() for a in args]
    return [y.detach().numpy() for y in ys], gs, grads


def _check(name, ys, ys_t, grads, leaves, zero_where_missing=True):
    for k, (y, yt) in enumerate(zip(ys, ys_t)):
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=TOL, atol=TOL,
                                   err_msg=f"{name}: output {k}")
    for i, (g, t) in enumerate(zip(grads, leaves)):
        if not (isinstance(t, torch.Tensor) and t.requires_grad):
            continue
        gt = t.grad.numpy() if t.grad is not None else np.zeros(tuple(t.shape))
        g = np.zeros(tuple(t.shape)) if g is None else g
        np.testing.assert_allclose(g, gt, rtol=TOL, atol=TOL, err_msg=f"{name}: gradient {i}")


def _backward_torch(ys_t, gs):
    live = [(y, torch.from_numpy(g)) for y, g in zip(ys_t, gs) if y.requires_grad]
    if live:
        torch.autograd.backward([y for y, _ in live], [g for _, g in live])


# ----------------------------------------------------------------------------- F-level

SDPA = get_op("F.scaled_dot_product_attention")
SDPA_CASES = [s for s in SDPA.sample_inputs() if "seed" not in s.kwargs]  # torch's RNG differs


@pytest.mark.parametrize("sample", SDPA_CASES, ids=[s.describe() for s in SDPA_CASES])
def test_scaled_dot_product_attention_matches_torch(sample):
    ys, gs, grads = _run_tinylm(SDPA, sample)
    leaves = _torch_leaves(sample.args, sample.nondiff)
    q, k, v, *mask = leaves
    kw = {key: val for key, val in sample.kwargs.items()}
    y_t = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask[0] if mask else None, **kw)
    _backward_torch([y_t], gs)
    _check(sample.describe(), ys, [y_t], grads, leaves)


def test_fully_masked_row_is_zero_in_both():
    """PyTorch 2.5+ returns zeros (not NaN) for a query that may attend to nothing."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    keep = np.ones((3, 5), bool)
    keep[1] = False
    y_t = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (q, k, v)), attn_mask=torch.from_numpy(keep))
    y = tinylm.nn.functional.scaled_dot_product_attention(
        *(tinylm.tensor(a, dtype=np.float64) for a in (q, k, v)), attn_mask=tinylm.tensor(keep))
    np.testing.assert_array_equal(y_t.numpy()[1], 0.0)
    np.testing.assert_array_equal(y.numpy()[1], 0.0)


# ----------------------------------------------------------------------------- MultiheadAttention

MHA = get_op("nn.MultiheadAttention")
MHA_CASES = [s for s in MHA.sample_inputs() if "seed" not in s.kwargs]


def _torch_mha(sample, leaves):
    q, k, v, w_in, b_in, w_out, b_out, *masks = leaves
    kw = dict(sample.kwargs)
    H = kw.pop("num_heads", 2)
    train = kw.pop("train", True)
    dropout = kw.pop("dropout", 0.0)
    E = w_in.shape[1]
    tm = torch.nn.MultiheadAttention(E, H, dropout=dropout, bias=b_in is not None,
                                     batch_first=kw.pop("batch_first", False),
                                     dtype=torch.float64).train(train)
    # the sample's leaves become torch's parameters, so their gradients can be read back
    tm.in_proj_weight = torch.nn.Parameter(w_in)
    tm.out_proj.weight = torch.nn.Parameter(w_out)
    if b_in is not None:
        tm.in_proj_bias = torch.nn.Parameter(b_in)
        tm.out_proj.bias = torch.nn.Parameter(b_out)
    k = q if k is None else k
    v = k if v is None else v
    kpm, am = (masks + [None, None])[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mixed bool/float masks: torch's deprecation note
        y, w = tm(q, k, v, key_padding_mask=kpm, attn_mask=am, **kw)
    params = [tm.in_proj_weight, tm.in_proj_bias, tm.out_proj.weight, tm.out_proj.bias]
    return [y] if w is None else [y, w], params


@pytest.mark.parametrize("sample", MHA_CASES, ids=[s.describe() for s in MHA_CASES])
def test_multihead_attention_matches_torch(sample):
    # every parameter's gradient compared, also where the sweep skips them (inputs_only)
    sample = SampleInput(sample.args, sample.kwargs, name=sample.name,
                         nondiff=tuple(i for i in sample.nondiff if i > 6))
    ys, gs, grads = _run_tinylm(MHA, sample)
    leaves = _torch_leaves(sample.args, sample.nondiff)
    ys_t, params = _torch_mha(sample, leaves)
    if "fully masked" in sample.describe() and len(ys_t) == 2:
        # torch's need_weights=True path gives NaN for the row that attends to nothing;
        # tinylm gives zero weights and the output out_proj.bias (torch's other path)
        assert np.isnan(ys_t[1].detach().numpy()[0]).all()
        np.testing.assert_array_equal(ys[1][0], 0.0)
        np.testing.assert_allclose(ys[0][:, 0], np.broadcast_to(sample.args[6], ys[0][:, 0].shape),
                                   rtol=TOL, atol=TOL)
        return
    _backward_torch(ys_t, gs)
    leaves[3:7] = params  # torch's parameters hold the gradients of w_in, b_in, w_out, b_out
    _check(sample.describe(), ys, ys_t, grads, leaves)


def test_multihead_attention_state_dict_round_trip():
    tm = torch.nn.MultiheadAttention(8, 2, dtype=torch.float64)
    m = nn.MultiheadAttention(8, 2).double()
    assert list(m.state_dict()) == list(tm.state_dict())
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == {
        k: tuple(v.shape) for k, v in tm.state_dict().items()}
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    res = tm.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                              for k, v in m.state_dict().items()})
    assert not res.missing_keys and not res.unexpected_keys
    tm_nb = torch.nn.MultiheadAttention(8, 2, bias=False)
    assert list(nn.MultiheadAttention(8, 2, bias=False).state_dict()) == list(tm_nb.state_dict())


def test_initialisation_matches_torchs_distributions():
    """Same formulas (the random streams differ): xavier bound on in_proj_weight, zero
    biases, and out_proj.weight within Linear's 1/sqrt(E) bound."""
    E = 64
    tm = torch.nn.MultiheadAttention(E, 4)
    m = nn.MultiheadAttention(E, 4)
    bound = np.sqrt(6 / (E + 3 * E))
    for w in (tm.in_proj_weight.detach().numpy(), m.in_proj_weight.detach().numpy()):
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    for b in (tm.in_proj_bias, tm.out_proj.bias):
        assert not b.detach().numpy().any()
    assert not m.in_proj_bias.detach().numpy().any() and not m.out_proj.bias.detach().numpy().any()
    assert np.abs(m.out_proj.weight.detach().numpy()).max() <= 1 / np.sqrt(E)


# ----------------------------------------------------------------------------- TransformerBlock


class TorchBlock(torch.nn.Module):
    """The same block written with torch modules (and the same child names)."""

    def __init__(self, d, H, mlp_ratio=4, bias=True):
        super().__init__()
        h = int(mlp_ratio * d)
        self.ln_1 = torch.nn.LayerNorm(d, bias=bias)
        self.attn = torch.nn.MultiheadAttention(d, H, bias=bias, batch_first=True)
        self.ln_2 = torch.nn.LayerNorm(d, bias=bias)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, h, bias=bias), torch.nn.GELU(),
                                       torch.nn.Linear(h, d, bias=bias), torch.nn.Dropout(0.0))

    def forward(self, x):
        T = x.shape[-2]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        h = self.ln_1(x)
        a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False, is_causal=True)
        x = x + a
        return x + self.mlp(self.ln_2(x))


@pytest.mark.parametrize("bias", [True, False])
def test_transformer_block_matches_torch_composition(bias):
    torch.manual_seed(0)
    tm = TorchBlock(8, 2, mlp_ratio=3, bias=bias).double()
    with torch.no_grad():
        for p in tm.parameters():  # off the initial ones and zeros
            p.add_(0.1 * torch.randn(p.shape, dtype=p.dtype))
    m = nn.TransformerBlock(8, 2, mlp_ratio=3, bias=bias).double()
    sd = {k: v.numpy() for k, v in tm.state_dict().items()}
    assert list(sd) == list(m.state_dict())
    m.load_state_dict(sd)
    x = np.random.default_rng(1).standard_normal((3, 5, 8))
    g = np.random.default_rng(2).standard_normal((3, 5, 8))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = tm(xt)
    yt.backward(torch.from_numpy(g))
    xm = tinylm.tensor(x, dtype=np.float64, requires_grad=True)
    y = m(xm)
    y.backward(tinylm.tensor(g, dtype=np.float64))
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=TOL, atol=TOL)
    grads_t = {k: p.grad.numpy() for k, p in tm.named_parameters()}
    for k, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads_t[k], rtol=TOL, atol=TOL, err_msg=k)


def test_block_parameter_order_is_the_registrys():
    assert tuple(nn.TransformerBlock(4, 2).state_dict()) == _BLOCK_PARAMS
