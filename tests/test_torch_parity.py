"""Optional oracle: tinylm's gradients of a composite expression against PyTorch's, float64.

Skipped cleanly where PyTorch is not installed (it is never a required dependency), and
carries no lesson marker: it uses ops from several lessons at once.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
from tinylm.autograd import grad

torch = pytest.importorskip("torch")

ROWS = [0, 2, 2, 1, 0]  # repeated rows: their gradients must add up
PAIRS = ([0, 0, 3], [1, 1, 4])  # a repeated (row, col) pair


def _inputs():
    rng = np.random.default_rng(20240607)
    return {
        "x": rng.standard_normal((4, 3)),
        "w": rng.standard_normal((3, 5)),
        "b": rng.standard_normal(5),
        "c1": rng.standard_normal((4, 5)),
        "c2": rng.standard_normal(5),
        "c3": rng.standard_normal((5, 5)),
    }


def _expression(m, x, w, b, c1, c2, c3):
    """The same composite on either library: ``m`` supplies tanh/softmax/logsumexp."""
    h = m.tanh(x @ w + b)  # (4, 5): matmul, broadcasting add
    s = m.softmax(h, dim=-1)  # (4, 5)
    lse = m.logsumexp(h * 2.0, dim=0)  # (5,)
    r = h[ROWS]  # (5, 5): repeated rows
    r2 = h[PAIRS]  # (3,): a repeated element
    return (s * c1).sum() + (lse * c2).sum() + (r * c3).sum() + (r2 * r2).sum()


def _tinylm(arrays):
    ts = {k: tinylm.tensor(v, requires_grad=k in ("x", "w", "b")) for k, v in arrays.items()}
    return ts, _expression(tinylm, **ts)


def _torch(arrays):
    ts = {k: torch.tensor(v, requires_grad=k in ("x", "w", "b")) for k, v in arrays.items()}
    return ts, _expression(torch, **ts)


def test_composite_gradients_match_torch():
    arrays = _inputs()
    ts, y = _tinylm(arrays)
    rs, ry = _torch(arrays)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.item(), ry.item(), rtol=0, atol=1e-10)
    y.backward()
    ry.backward()
    for k in ("x", "w", "b"):
        ours, theirs = ts[k].grad.numpy(), rs[k].grad.numpy()
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10, err_msg=k)


def test_composite_second_order_matches_torch():
    # a Hessian-vector product: d/dx sum((dy/dx)^2) through every op's backward
    arrays = _inputs()
    ts, y = _tinylm(arrays)
    rs, ry = _torch(arrays)
    (gx,) = grad(y, ts["x"], create_graph=True)
    (rgx,) = torch.autograd.grad(ry, rs["x"], create_graph=True)
    ours = grad((gx * gx).sum(), [ts["x"], ts["w"], ts["b"]])
    theirs = torch.autograd.grad((rgx * rgx).sum(), [rs["x"], rs["w"], rs["b"]])
    for k, o, t in zip("xwb", ours, theirs):
        np.testing.assert_allclose(o.numpy(), t.numpy(), rtol=0, atol=1e-10, err_msg=k)
