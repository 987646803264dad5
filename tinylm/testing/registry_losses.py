"""Registry entries for the losses: F.cross_entropy, F.nll_loss, F.mse_loss.

Each has a NumPy reference written from PyTorch's definition (the smoothing term and the
NLL term reduced separately, as ``torch.nn.functional.cross_entropy`` does), samples over
(N, C), (N, C, d) and (C,) inputs, weights, ignore_index hits, label smoothing, every
reduction, probability targets and repeated targets, and error inputs.
"""

from __future__ import annotations

import numpy as np

from ..nn.losses import cross_entropy, mse_loss, nll_loss
from .opinfo import ErrorInput, OpInfo, SampleInput, strided

# ----------------------------------------------------------------------------- references


def _np_log_softmax(z, axis):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def _np_reduce(loss, reduction, total):
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / total


def _np_nll(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    cdim = 0 if logp.ndim == 1 else 1
    c = logp.shape[cdim]
    w = np.ones(c) if weight is None else weight
    counted = target != ignore_index
    safe = np.where(counted, target, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, cdim), axis=cdim).squeeze(cdim)
    loss = np.where(counted, -w[safe] * picked, 0.0)
    return _np_reduce(loss, reduction, np.where(counted, w[safe], 0.0).sum())


def np_cross_entropy(x, target, weight=None, ignore_index=-100, reduction="mean",
                     label_smoothing=0.0):
    cdim = 0 if x.ndim == 1 else 1
    c = x.shape[cdim]
    logp = _np_log_softmax(x, cdim)
    wshape = (c,) + (1,) * (x.ndim - 1 - cdim)
    w = np.ones(wshape) if weight is None else weight.reshape(wshape)
    if target.dtype.kind == "f":  # class probabilities
        q = target * (1 - label_smoothing) + label_smoothing / c
        loss = -(logp * q * w).sum(axis=cdim)
        return _np_reduce(loss, reduction, loss.size)
    nll = _np_nll(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    counted = target != ignore_index
    smooth = np.where(counted, -(logp * w).sum(axis=cdim), 0.0)
    total = np.where(counted, w.reshape(-1)[np.where(counted, target, 0)], 0.0).sum()
    return (1 - label_smoothing) * nll + _np_reduce(smooth, reduction, total) * (
        label_smoothing / c)


def np_mse(x, t, reduction="mean"):
    return _np_reduce((x - t) ** 2, reduction, x.size)


# ----------------------------------------------------------------------------- samples

REDUCTIONS = ("mean", "sum", "none")


def _ids(rng, shape, c):
    return rng.integers(0, c, size=shape).astype(np.int64)


def _probs(rng, shape, cdim):
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(axis=cdim, keepdims=True)


def _class_id_samples(rng, logits: bool):
    """Samples shared by cross_entropy (logits) and nll_loss (log-probabilities)."""
    def scores(shape):
        x = rng.standard_normal(shape) * 2
        return x if logits else _np_log_softmax(x, 0 if x.ndim == 1 else 1)

    w = rng.uniform(0.5, 2.0, size=4)
    ign = np.array([1, -100, 3, -100, 0], dtype=np.int64)
    out = []
    for red in REDUCTIONS:
        out += [
            SampleInput((scores((5, 4)), _ids(rng, 5, 4)), {"reduction": red},
                        name=f"(N, C) {red}"),
            SampleInput((scores((3, 4, 2)), _ids(rng, (3, 2), 4)), {"reduction": red},
                        name=f"(N, C, d) {red}"),
            SampleInput((scores(4), np.array(2)), {"reduction": red}, name=f"(C,) {red}"),
            SampleInput((scores((5, 4)), ign, w), {"reduction": red}, nondiff=(2,),
                        name=f"weight, ignored -100 {red}"),
            SampleInput((scores((5, 4)), np.array([1, 3, 3, 0, 2]), w),
                        {"reduction": red, "ignore_index": 3}, nondiff=(2,),
                        name=f"weight, ignore_index=3 in range {red}"),
            SampleInput((scores((5, 4)), np.full(5, -100)), {"reduction": red},
                        name=f"every target ignored {red}") if red != "mean" else None,
        ]
    out += [
        SampleInput((scores((6, 4)), np.array([2, 2, 2, 0, 2, 2])), {}, name="repeated targets"),
        SampleInput((scores((2, 4, 3, 2)), _ids(rng, (2, 3, 2), 4), w), {"reduction": "mean"},
                    nondiff=(2,), name="(N, C, d1, d2) weight"),
        SampleInput((scores((3, 4, 2)), np.array([[0, 7], [7, 1], [3, 7]])),
                    {"ignore_index": 7}, name="(N, C, d) ignore_index=7 >= C"),
        SampleInput((scores((5, 4)), np.array([0, -1, 3, 2, -1])), {"ignore_index": -1},
                    name="ignore_index=-1"),
        SampleInput((scores((0, 4)), np.zeros(0, np.int64)), {"reduction": "sum"},
                    name="zero-size batch, sum"),
        SampleInput((strided(scores((5, 4))), _ids(rng, 5, 4)), {}, name="strided input"),
        SampleInput((scores((5, 4)), _ids(rng, 5, 4).astype(np.int32)), {}, name="int32 ids"),
    ]
    if logits:
        big = np.array([[1e4, -1e4, 0.0], [3.0, 1e4, 1e4 - 1.0], [-1e4, -1e4, -1e4]])
        out.append(SampleInput((big, np.array([1, 2, 0])), {"label_smoothing": 0.1},
                               name="logits +-1e4, smoothing"))
    return [s for s in out if s is not None]


def _cross_entropy_samples(rng):
    out = _class_id_samples(rng, logits=True)
    w = rng.uniform(0.5, 2.0, size=4)
    ign = np.array([1, -100, 3, 3, 0], dtype=np.int64)
    for red in REDUCTIONS:
        out += [
            SampleInput((rng.standard_normal((5, 4)), ign), {"reduction": red,
                        "label_smoothing": 0.2}, name=f"smoothing, ignored {red}"),
            SampleInput((rng.standard_normal((5, 4)), ign, w),
                        {"reduction": red, "label_smoothing": 0.3}, nondiff=(2,),
                        name=f"smoothing, weight, ignored {red}"),
            SampleInput((rng.standard_normal((3, 4, 2)), _ids(rng, (3, 2), 4), w),
                        {"reduction": red, "label_smoothing": 0.1, "ignore_index": 2},
                        nondiff=(2,), name=f"(N, C, d) smoothing, weight, ignore_index=2 {red}"),
            # class probabilities: the target is a float leaf, so its gradient is checked too
            SampleInput((rng.standard_normal((5, 4)), _probs(rng, (5, 4), 1)),
                        {"reduction": red}, name=f"probabilities {red}"),
            SampleInput((rng.standard_normal((3, 4, 2)), _probs(rng, (3, 4, 2), 1), w),
                        {"reduction": red, "label_smoothing": 0.25}, nondiff=(2,),
                        name=f"(N, C, d) probabilities, weight, smoothing {red}"),
        ]
    out += [
        SampleInput((rng.standard_normal(4), _probs(rng, 4, 0)), {}, name="(C,) probabilities"),
        SampleInput((rng.standard_normal((5, 4)), ign), {"label_smoothing": 1.0},
                    name="label_smoothing=1 (uniform target)"),
        SampleInput((rng.standard_normal(4), np.array(-100)), {"reduction": "sum",
                    "label_smoothing": 0.2}, name="(C,) ignored, smoothing, sum"),
    ]
    return out


def _mse_samples(rng):
    out = [SampleInput((rng.standard_normal(s), rng.standard_normal(s)), {"reduction": r})
           for s in [(3, 4), (2, 3, 2), (5,), ()] for r in REDUCTIONS]
    out.append(SampleInput((rng.standard_normal((3, 4)), rng.standard_normal((3, 4))), {},
                           nondiff=(1,), name="constant target"))
    out.append(SampleInput((rng.standard_normal((0, 3)), rng.standard_normal((0, 3))),
                           {"reduction": "sum"}, name="zero-size, sum"))
    return out


# ----------------------------------------------------------------------------- errors


def _class_id_errors(op):
    x = np.zeros((3, 4))

    def err(args, kw, exc, match, nondiff=(2,)):
        return ErrorInput(SampleInput(args, kw, nondiff=nondiff), exc, f"{op}: {match}")

    ids = np.array([0, 1, 2])
    out = [
        err((x, np.array([0, 4, 1])), {}, IndexError,
            r"target id 4 out of range \[0, 4\) at index \(1,\)"),
        err((x, np.array([0, 1, -1])), {}, IndexError,
            r"target id -1 out of range \[0, 4\) at index \(2,\) \(negative ids are not "
            r"wrapped; only ignore_index=-100 is skipped\)"),
        err((np.zeros((2, 4, 3)), np.array([[0, 1, 2], [3, 9, 0]])), {}, IndexError,
            r"target id 9 out of range \[0, 4\) at index \(1, 1\)"),
        err((x, np.array([0, -100, 4])), {"ignore_index": 4}, IndexError,
            r"target id -100 out of range \[0, 4\) at index \(1,\)"),
        err((x, np.array([0, 1])), {}, ValueError,
            r"target of shape \(2,\) does not match input of shape \(3, 4\); class ids need "
            r"shape \(3,\)"),
        err((np.zeros(4), np.array([1])), {}, ValueError,
            r"target of shape \(1,\) does not match input of shape \(4,\); class ids need "
            r"shape \(\)"),
        err((x, np.array([True, False, True])), {}, TypeError,
            r"target must be an integer tensor of class ids"),
        err((x, ids, np.ones(3)), {}, ValueError,
            r"weight must have shape \(C,\) = \(4,\) for input of shape \(3, 4\), got \(3,\)"),
        err((x, ids, np.ones(4, np.float32)), {}, TypeError,
            r"weight dtype float32 does not match input dtype float64"),
        err((x, ids, np.ones(4)), {}, RuntimeError, r"weight requires grad", nondiff=()),
        err((x, ids), {"reduction": "avg"}, ValueError,
            r"reduction='avg' is not valid; expected 'none', 'mean' or 'sum'"),
        err((x, ids), {"ignore_index": 1.0}, TypeError, r"ignore_index must be an int"),
        err((np.arange(12).reshape(3, 4), ids), {}, TypeError,
            r"input must be a floating point tensor, got dtype int64"),
        err((np.array(1.0), np.array(0)), {}, ValueError, r"input must have a class dim"),
        err((np.zeros((3, 0)), ids), {}, ValueError,
            r"input of shape \(3, 0\) has no classes \(C = 0\)"),
        err((x, list(ids)), {}, TypeError, r"target must be a Tensor, got list"),
    ]
    if op == "nll_loss":
        out.append(err((x, np.zeros(3)), {}, TypeError,
                       r"target must be an integer tensor of class ids, got dtype float64"))
    return out


def _cross_entropy_errors():
    x, ids = np.zeros((3, 4)), np.array([0, 1, 2])

    def err(args, kw, exc, match, nondiff=()):
        return ErrorInput(SampleInput(args, kw, nondiff=nondiff), exc,
                          f"cross_entropy: {match}")

    return _class_id_errors("cross_entropy") + [
        err((x, np.zeros(3)), {}, ValueError,
            r"a floating point target holds class probabilities and must have the input's "
            r"shape \(3, 4\), got \(3,\); class ids need an integer tensor of shape \(3,\)"),
        err((x, np.full((3, 4), 0.25, np.float32)), {}, TypeError,
            r"target dtype float32 does not match input dtype float64"),
        err((x, np.full((3, 4), 0.25)), {"ignore_index": 0}, ValueError,
            r"ignore_index=0 is not supported for class-probability"),
        err((x, ids), {"label_smoothing": 1.5}, ValueError,
            r"label_smoothing must be in \[0.0, 1.0\], got 1.5"),
        err((x, ids), {"label_smoothing": -0.1}, ValueError,
            r"label_smoothing must be in \[0.0, 1.0\], got -0.1"),
        err((x, ids), {"label_smoothing": "0.1"}, TypeError, r"label_smoothing must be a float"),
    ]


def _mse_errors():
    def err(args, kw, exc, match):
        return ErrorInput(SampleInput(args, kw), exc, f"mse_loss: {match}")

    return [
        err((np.zeros(3), np.zeros((3, 1))), {}, ValueError,
            r"target of shape \(3, 1\) does not match input of shape \(3,\) \(tinylm does not "
            r"broadcast losses\)"),
        err((np.zeros(3), np.zeros(3, np.float32)), {}, TypeError,
            r"target dtype float32 does not match input dtype float64"),
        err((np.arange(3), np.zeros(3)), {}, TypeError,
            r"input must be a floating point tensor, got dtype int64"),
        err((np.zeros(3), np.zeros(3)), {"reduction": "elementwise_mean"}, ValueError,
            r"reduction='elementwise_mean' is not valid"),
    ]


LOSSES = [
    OpInfo("F.cross_entropy", cross_entropy, _cross_entropy_samples, _cross_entropy_errors,
           ref=np_cross_entropy),
    OpInfo("F.nll_loss", nll_loss, lambda rng: _class_id_samples(rng, logits=False),
           lambda: _class_id_errors("nll_loss"), ref=_np_nll),
    OpInfo("F.mse_loss", mse_loss, _mse_samples, _mse_errors, ref=np_mse),
]
