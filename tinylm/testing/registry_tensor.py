"""Registry entries for reductions, matmul, shape ops, indexing, joins, softmax, to."""

from __future__ import annotations

import numpy as np

from .. import ops
from .opinfo import ErrorInput, OpInfo, SampleInput, distinct, strided, transposed


def _normal(rng, s):
    return rng.standard_normal(s)


# ----------------------------------------------------------------------------- reductions

DIMS = [None, 0, 1, -1, (0, 2), (2, 0, 1)]


def reduce_samples(values, allow_empty=True, extra=()):
    def samples(rng):
        out = []
        for dim in DIMS:
            for keepdim in (False, True):
                out.append(SampleInput((values(rng, (2, 3, 4)),), {"dim": dim, "keepdim": keepdim}))
        out.append(SampleInput((values(rng, ()),), {"dim": None}, name="0-d, dim=None"))
        out.append(SampleInput((values(rng, (5,)),), {"dim": 0}))
        out.append(SampleInput((strided(values(rng, (3, 4))),), {"dim": 1}, name="strided"))
        out.append(SampleInput((transposed(values(rng, (3, 4))),), {"dim": 0},
                               name="transposed"))
        if allow_empty:
            out.append(SampleInput((values(rng, (0, 3)),), {"dim": 0}, name="zero-size, dim 0"))
            out.append(SampleInput((values(rng, (0, 3)),), {"dim": 1}, name="zero-size, dim 1"))
        for e in extra:
            out.append(SampleInput((np.array(e[0], dtype=np.float64),), e[1], name=e[2]))
        return out

    return samples


def reduce_errors(name, empty_raises=False, float_only=False):
    def errors():
        out = [
            ErrorInput(SampleInput((np.ones((2, 3)),), {"dim": 2}), IndexError,
                       rf"{name}: dim 2 out of range for a 2-d tensor \(expected in \[-2, 1\]\)"),
            ErrorInput(SampleInput((np.ones((2, 3)),), {"dim": (1, -1)}), ValueError,
                       rf"{name}: dim \(1, -1\) names a dimension twice"),
        ]
        if empty_raises:
            out.append(ErrorInput(SampleInput((np.ones((0, 3)),), {"dim": 0}), ValueError,
                                  rf"{name}: cannot reduce over zero elements"))
        if float_only:
            out.append(ErrorInput(SampleInput((np.arange(3),), {"dim": 0}), TypeError,
                                  rf"{name}: expected a floating point tensor"))
        return out

    return errors


def _np_reduce(fn):
    def ref(x, dim=None, keepdim=False, **kw):
        axis = dim if dim is None or isinstance(dim, int) else tuple(dim)
        return fn(x, axis=axis, keepdims=keepdim, **kw)

    return ref


def _np_logsumexp(x, dim=None, keepdim=False):
    axis = dim if dim is None or isinstance(dim, int) else tuple(dim)
    m = np.max(x, axis=axis, keepdims=True)
    y = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return y if keepdim else np.squeeze(y, axis=axis) if axis is not None else y.reshape(())


def _var_samples(rng):
    out = [s for s in reduce_samples(_normal, allow_empty=False)(rng) if s.args[0].ndim]
    out.append(SampleInput((_normal(rng, (3, 4)),), {"dim": 1, "correction": 0},
                           name="population variance"))
    return out


def _var_errors():
    return reduce_errors("var", float_only=True)() + [
        ErrorInput(SampleInput((np.ones((1, 3)),), {"dim": 0}), ValueError,
                   r"var: 1 element\(s\) per slice with correction=1 leaves 0 degrees of freedom"),
    ]


REDUCTIONS = [
    OpInfo("sum", ops.sum, reduce_samples(_normal), reduce_errors("sum"), ref=_np_reduce(np.sum)),
    OpInfo("mean", ops.mean, reduce_samples(_normal), reduce_errors("mean", float_only=True),
           ref=_np_reduce(np.mean), notes="the mean over zero elements is nan, as NumPy/PyTorch"),
    OpInfo("var", ops.var, _var_samples, _var_errors,
           ref=lambda x, dim=None, correction=1, keepdim=False: _np_reduce(np.var)(
               x, dim, keepdim, ddof=correction)),
    OpInfo("amax", ops.amax, reduce_samples(distinct, allow_empty=False),
           reduce_errors("amax", empty_raises=True), ref=_np_reduce(np.max),
           notes="tie rule: equal maxima share the gradient evenly (PyTorch's amax); samples "
           "use distinct values"),
    OpInfo("amin", ops.amin, reduce_samples(distinct, allow_empty=False),
           reduce_errors("amin", empty_raises=True), ref=_np_reduce(np.min),
           notes="tie rule as amax"),
    OpInfo("logsumexp", ops.logsumexp, reduce_samples(_normal, allow_empty=False, extra=[
        ([[1e4, -1e4, 0.0], [1e4, 1e4 - 1.0, -1e4]], {"dim": 1}, "logits +-1e4"),
    ]), reduce_errors("logsumexp", empty_raises=True, float_only=True), ref=_np_logsumexp),
]

# ----------------------------------------------------------------------------- matmul


def _matmul_samples(rng):
    pairs = [((2, 3), (3, 4)), ((3,), (3, 2)), ((2, 3), (3,)), ((3,), (3,)),
             ((4, 2, 3), (3, 5)), ((2, 3), (4, 3, 2)), ((2, 1, 2, 3), (3, 3, 2)),
             ((0, 3), (3, 2)), ((2, 0), (0, 3))]
    out = [SampleInput((_normal(rng, a), _normal(rng, b))) for a, b in pairs]
    out.append(SampleInput((transposed(_normal(rng, (2, 3))), strided(_normal(rng, (3, 4)))),
                           name="transposed @ strided"))
    return out


def _matmul_errors():
    return [
        ErrorInput(SampleInput((np.ones((2, 3)), np.ones((4, 5)))), ValueError,
                   r"matmul: shapes \(2, 3\) and \(4, 5\) do not line up \(inner dims 3 != 4\)"),
        ErrorInput(SampleInput((np.ones(()), np.ones(3))), ValueError,
                   r"matmul: both operands must be at least 1-D"),
        ErrorInput(SampleInput((np.ones((2, 2, 3)), np.ones((3, 3, 2)))), ValueError,
                   r"matmul: batch dims of \(2, 2, 3\) and \(3, 3, 2\) do not broadcast"),
    ]


# ----------------------------------------------------------------------------- shapes


def _shape_samples(calls):
    """calls: (input shape, args tuple, kwargs) -> samples with normal values."""

    def samples(rng):
        out = [SampleInput((_normal(rng, s), *a), k) for s, a, k in calls]
        s0, a0, k0 = calls[0]
        if len(s0) >= 2:
            out.append(SampleInput((strided(_normal(rng, s0)), *a0), k0, name="strided"))
            out.append(SampleInput((transposed(_normal(rng, s0)), *a0), k0,
                                   name="transposed"))
        return out

    return samples


SHAPES = [
    OpInfo("reshape", ops.reshape, _shape_samples([
        ((2, 6), ((3, 4),), {}), ((2, 3, 2), ((-1,),), {}), ((), ((1, 1),), {}),
        ((0, 4), ((2, 0, 2),), {}), ((6,), ((2, -1),), {})]),
        lambda: [ErrorInput(SampleInput((np.ones((2, 3)), (4, 2))), ValueError,
                            r"reshape: shape \(4, 2\) is invalid for a tensor of shape \(2, 3\)"),
                 ErrorInput(SampleInput((np.ones(6), (-1, -1))), ValueError,
                            r"reshape: only one dimension can be -1")],
        ref=lambda x, s: np.reshape(x, s)),
    OpInfo("transpose", ops.transpose, _shape_samples([
        ((2, 3), (0, 1), {}), ((2, 3, 4), (-1, 0), {}), ((3,), (0, 0), {}), ((0, 2), (0, 1), {})]),
        lambda: [ErrorInput(SampleInput((np.ones((2, 3)), 0, 2)), IndexError,
                            r"transpose: dim 2 out of range")],
        ref=lambda x, a, b: np.swapaxes(x, a, b)),
    OpInfo("permute", ops.permute, _shape_samples([
        ((2, 3, 4), (2, 0, 1), {}), ((2, 3), (1, 0), {}), ((2, 3, 4), (-1, -3, 1), {})]),
        lambda: [ErrorInput(SampleInput((np.ones((2, 3)), 0, 0)), ValueError,
                            r"permute: dims \(0, 0\) are not a permutation of 0..1"),
                 ErrorInput(SampleInput((np.ones((2, 3)), 0)), ValueError,
                            r"permute: got 1 dims \(0,\) for a 2-d tensor")],
        ref=lambda x, *d: np.transpose(x, d)),
    OpInfo("unsqueeze", ops.unsqueeze, _shape_samples([
        ((2, 3), (1,), {}), ((2, 3), (-1,), {}), ((), (0,), {}), ((2, 3), (0,), {})]),
        lambda: [ErrorInput(SampleInput((np.ones((2, 3)), 3)), IndexError,
                            r"unsqueeze: dim 3 out of range for a 3-d tensor")],
        ref=np.expand_dims),
    OpInfo("squeeze", ops.squeeze, _shape_samples([
        ((2, 1, 3), (1,), {}), ((1, 2, 1), (), {}), ((2, 3), (0,), {}), ((1,), (), {})]),
        lambda: [ErrorInput(SampleInput((np.ones((2, 1)), 2)), IndexError,
                            r"squeeze: dim 2 out of range")],
        ref=lambda x, d=None: np.squeeze(x, d) if d is None or x.shape[d] == 1 else x),
    OpInfo("expand", ops.expand, _shape_samples([
        ((2, 1), (2, 3), {}), ((3,), (4, 3), {}), ((1, 1), (-1, 5), {}), ((), (2, 2), {}),
        ((2, 1), (0, 2, 4), {})]),
        lambda: [ErrorInput(SampleInput((np.ones((2, 3)), 4, 3)), ValueError,
                            r"expand: dim 0 of shape \(2, 3\) has size 2, which can only expand"),
                 ErrorInput(SampleInput((np.ones((2, 3)), 3)), ValueError,
                            r"expand: the number of sizes \(1\) must be at least")],
        ref=lambda x, *s: np.broadcast_to(
            x, tuple(x.shape[i - len(s) + x.ndim] if v == -1 else v for i, v in enumerate(s)))),
    OpInfo("flatten", ops.flatten, _shape_samples([
        ((2, 3, 4), (), {}), ((2, 3, 4), (1,), {}), ((2, 3, 4, 5), (1, 2), {}), ((), (), {})]),
        lambda: [ErrorInput(SampleInput((np.ones((2, 3, 4)), 2, 1)), ValueError,
                            r"flatten: start_dim 2 comes after end_dim 1")],
        ref=lambda x, s=0, e=-1: x.reshape(1) if x.ndim == 0 else x.reshape(
            x.shape[:s] + (-1,) + x.shape[e % x.ndim + 1:])),
    OpInfo("contiguous", ops.contiguous, _shape_samples([((3, 4), (), {}), ((2,), (), {})]),
           ref=np.ascontiguousarray),
    OpInfo("sum_to", ops.sum_to, _shape_samples([
        ((2, 3), ((3,),), {}), ((4, 2, 3), ((2, 1),), {}), ((2, 3), ((1, 1),), {}),
        ((2, 3), ((),), {}), ((0, 3), ((3,),), {})]),
        ref=lambda x, s: x.sum(axis=tuple(range(x.ndim - len(s)))).sum(
            axis=tuple(i for i, n in enumerate(s) if n == 1), keepdims=True).reshape(s)),
]

# ----------------------------------------------------------------------------- indexing


def _getitem_samples(rng):
    keys = [
        (2, "int"), (-1, "negative int"), (slice(1, 3), "slice"), (slice(None, None, -1),
                                                                   "negative step"),
        ((slice(None), None, 1), "None inserts a dim"), ((Ellipsis, 1), "ellipsis"),
        ((slice(3, 0, -2), slice(None, None, 2)), "two negative/positive steps"),
        (np.array([0, 2, 2, 3, 0]), "repeated indices accumulate"),
        ((np.array([1, 1, 3]), np.array([0, 0, 2])), "paired repeated indices"),
        ((slice(None), np.array([[1, 1], [0, 2]])), "2-d index array, repeated"),
        (np.array([-1, -4]), "negative array indices"),
        (np.array([True, False, True, True]), "bool mask"),
    ]
    out = [SampleInput((_normal(rng, (4, 3)), k), name=n) for k, n in keys]
    out.append(SampleInput((_normal(rng, ()), ()), name="0-d, empty key"))
    out.append(SampleInput((_normal(rng, (0, 3)), slice(None)), name="zero-size"))
    out.append(SampleInput((strided(_normal(rng, (4, 3))), np.array([3, 3, 1])),
                           name="strided, repeated"))
    return out


def _getitem_errors():
    return [
        ErrorInput(SampleInput((np.ones((4, 3)), 5)), IndexError,
                   r"getitem: index 5 is out of bounds for axis 0 with size 4"),
        ErrorInput(SampleInput((np.ones((4, 3)), np.array([0, 7]))), IndexError,
                   r"getitem: index 7 is out of bounds"),
        ErrorInput(SampleInput((np.ones((4, 3)), np.array([0.5]))), IndexError,
                   r"getitem: index arrays must be integer or bool, got dtype float64"),
        ErrorInput(SampleInput((np.ones((4, 3)), np.array([True, False]))), IndexError,
                   r"getitem: bool mask of shape \(2,\) does not match"),
    ]


def _list_of(n):
    """An op taking n leading array args as one list: cat([a, b], dim) and friends."""

    def wrap(fn):
        def call(*args, **kw):
            return fn(list(args[:n]), *args[n:], **kw)

        return call

    return wrap


def _cat_samples(rng):
    return [
        SampleInput((_normal(rng, (2, 3)), _normal(rng, (4, 3))), {"dim": 0}),
        SampleInput((_normal(rng, (2, 3)), _normal(rng, (2, 1))), {"dim": -1}),
        SampleInput((_normal(rng, (2, 3)), _normal(rng, (0, 3))), {"dim": 0}, name="zero-size"),
        SampleInput((strided(_normal(rng, (2, 3))), transposed(_normal(rng, (2, 3)))),
                    {"dim": 1}, name="strided + transposed"),
    ]


def _stack_samples(rng):
    return [
        SampleInput((_normal(rng, (2, 3)), _normal(rng, (2, 3))), {"dim": 0}),
        SampleInput((_normal(rng, (2, 3)), _normal(rng, (2, 3))), {"dim": -1}),
        SampleInput((_normal(rng, ()), _normal(rng, ())), {"dim": 0}, name="0-d"),
        SampleInput((strided(_normal(rng, (2, 3))), transposed(_normal(rng, (2, 3)))),
                    {"dim": 1}, name="strided + transposed"),
    ]


def _split_samples(rng):
    return [
        SampleInput((_normal(rng, (5, 3)), 2), {"dim": 0}, name="size 2, last smaller"),
        SampleInput((_normal(rng, (5, 3)), [1, 0, 2]), {"dim": 1}, name="sections"),
        SampleInput((strided(_normal(rng, (3, 4))), 3), {"dim": -1}, name="strided"),
    ]


def _chunk_samples(rng):
    return [
        SampleInput((_normal(rng, (5, 3)), 2), {"dim": 0}),
        SampleInput((_normal(rng, (2, 6)), 4), {"dim": 1}, name="6 into 4 gives 3 of 2"),
        SampleInput((transposed(_normal(rng, (3, 4))), 3), {"dim": 0}, name="transposed"),
    ]


def _softmax_samples(rng):
    out = [SampleInput((_normal(rng, s),), {"dim": d}) for s, d in [
        ((2, 5), -1), ((2, 5), 0), ((3, 2, 4), 1), ((4,), 0), ((0, 3), 1)]]
    out.append(SampleInput((strided(_normal(rng, (3, 4))),), {"dim": -1}, name="strided"))
    out.append(SampleInput((np.array([[1e4, -1e4, 0.0], [3.0, 1e4, 1e4 - 1.0]]),), {"dim": 1},
                           name="logits +-1e4"))
    return out


def _softmax_errors(name):
    def errors():
        return [
            ErrorInput(SampleInput((np.ones((2, 3)),), {"dim": 2}), IndexError,
                       rf"{name}: dim 2 out of range"),
            ErrorInput(SampleInput((np.ones((2, 3)),), {"dim": None}), TypeError,
                       rf"{name}: dim is required"),
            ErrorInput(SampleInput((np.arange(3),), {"dim": 0}), TypeError,
                       rf"{name}: expected a floating point tensor"),
        ]

    return errors


def _np_softmax(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True)) if x.size else x
    return e / e.sum(axis=dim, keepdims=True) if x.size else x


def _to_samples(rng):
    return [SampleInput((_normal(rng, (2, 3)),), {"device": "cpu"}, name="same device"),
            SampleInput((_normal(rng, (2, 3)),), {"dtype": np.float32}, name="to float32",
                        gradcheck=False, gradgrad=False)]


OTHERS = [
    OpInfo("matmul", ops.matmul, _matmul_samples, _matmul_errors, ref=np.matmul),
    OpInfo("getitem", ops.getitem, _getitem_samples, _getitem_errors,
           ref=lambda x, k: x[k]),
    OpInfo("cat", _list_of(2)(ops.cat), _cat_samples, lambda: [
        ErrorInput(SampleInput((np.ones((2, 3)), np.ones((2, 4))), {"dim": 0}), ValueError,
                   r"cat: item 1 has shape \(2, 4\), item 0 has \(2, 3\)"),
        ErrorInput(SampleInput((np.ones(2), np.ones(2, np.float32)), {"dim": 0}), TypeError,
                   r"cat: item 1 has dtype float32")],
        ref=lambda a, b, dim: np.concatenate([a, b], axis=dim)),
    OpInfo("stack", _list_of(2)(ops.stack), _stack_samples, lambda: [
        ErrorInput(SampleInput((np.ones((2, 3)), np.ones((3, 2))), {"dim": 0}), ValueError,
                   r"stack: item 1 has shape \(3, 2\), item 0 has \(2, 3\)")],
        ref=lambda a, b, dim: np.stack([a, b], axis=dim)),
    OpInfo("split", ops.split, _split_samples, lambda: [
        ErrorInput(SampleInput((np.ones((5, 3)), [2, 2]), {"dim": 0}), ValueError,
                   r"split: sections \[2, 2\] must be non-negative and sum to the size 5"),
        ErrorInput(SampleInput((np.ones((5, 3)), 0), {"dim": 0}), ValueError,
                   r"split: split_size must be positive")]),
    OpInfo("chunk", ops.chunk, _chunk_samples, lambda: [
        ErrorInput(SampleInput((np.ones((5, 3)), 0), {"dim": 0}), ValueError,
                   r"chunk: chunks must be a positive int")]),
    OpInfo("softmax", ops.softmax, _softmax_samples, _softmax_errors("softmax"), ref=_np_softmax),
    OpInfo("log_softmax", ops.log_softmax, _softmax_samples, _softmax_errors("log_softmax"),
           ref=lambda x, dim: x - _np_logsumexp(x, dim, keepdim=True) if x.size else x),
    OpInfo("to", ops.to, _to_samples, lambda: [
        ErrorInput(SampleInput((np.array([1.0, np.inf]),), {"dtype": np.int64}), ValueError,
                   r"to: cannot convert non-finite values to int64"),
        ErrorInput(SampleInput((np.ones(2),), {"device": "gpu"}), ValueError,
                   r"unknown device 'gpu'")],
        notes="a cast to float32 cannot be checked by float64 central differences (its "
        "rounding swamps eps); that sample checks that the gradient comes back as float64"),
]
