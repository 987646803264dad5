r"""The embedding backward: a serial scatter-add of the rows of dy into the used rows of dW.

Math (``F.embedding``, ``EmbeddingGradFn``): with ids (N,) and dy (N, C),

    dW_v = \sum_{p : ids_p = v} dy_p      (dW_{padding\_idx} = 0)

so each position p adds its C-vector into one row of the (V, C) gradient; repeated ids add
up. The kernel is that sentence as a loop: for p in order, ``dW[ids[p]] += dy[p]`` (the
inner loop over the C contiguous floats vectorizes). It reads dy once and touches only the
rows used, where the NumPy ways either go element by element through ``np.add.at`` (its
general fancy-index machinery: 30-50x slower here, PERFORMANCE.md) or sort the ids and sum runs
(``argsort`` + ``add.reduceat`` + a gathered copy of dy: three more passes).

Determinism. The loop is serial on purpose: a parallel scatter-add races when two threads
hit the same row, and splitting it by rows of dW would make each thread scan all ids. In
this order (position order, each row's sum built left to right) the result has the same
bits as ``np.add.at`` on a zeroed array.

Cost of the whole op. dW must still be a dense (V, C) array (``Tensor.grad`` is dense), so
the op is ``np.zeros`` + the scatter, and the zeros dominate. Measured for V = 50k, C = 128,
2048 ids: scatter 0.05 ms; float32 (25.6 MB) zeros 0.54 ms, because glibc hands out a block
it has used before and calloc must ``memset`` all of it; float64 (51 MB, above glibc's 32 MB
``mmap`` ceiling) gets fresh, lazily zeroed pages each call, and the first touch of the
used rows faults in zeroed (huge) pages: 4 ms or more for the whole op. A row-sparse gradient
(the unique ids and their summed rows, with an optimizer that updates only those rows)
would remove it: see the note in ``scatter_add_rows``.
"""

from __future__ import annotations

import numpy as np

from ._common import BenchCase, jit

__all__ = ["scatter_add_rows", "bench_cases"]


@jit
def _scatter_add(ids, rows, out, padding_idx):
    """``out[ids[p]] += rows[p]`` for p = 0, 1, ... in order, skipping ids == padding_idx.

    ids (N,) int32/int64, rows (N, C) and out (V, C) C-contiguous, out zeroed by the caller;
    padding_idx = -1 for none. Serial: the order of the additions is fixed. Returns -1, or
    the first position p whose id is outside [0, V) (Numba does not check array bounds:
    this check is what keeps a bad id from writing outside ``out``; nothing is added from
    that position on).
    """
    n, c = rows.shape
    num_rows = out.shape[0]
    for p in range(n):
        v = ids[p]
        if v < 0 or v >= num_rows:
            return p
        if v == padding_idx:
            continue
        for j in range(c):  # contiguous: vectorizes
            out[v, j] += rows[p, j]
    return -1


def scatter_add_rows(num_rows: int, ids: np.ndarray, rows: np.ndarray,
                     padding_idx: int | None = None) -> np.ndarray:
    """``dW = zeros(num_rows, C); dW[ids[p]] += rows[p]`` for every p; row padding_idx stays 0.

    ids (N,) integers in [0, num_rows) (``F.embedding`` has checked them; one outside raises
    IndexError here too), rows (N, C) float32/float64, any strides; padding_idx may count
    from the end. Returns a new dense (num_rows, C) array of rows' dtype.

    A row-sparse gradient would skip the zeros (the dominant cost for a large table): return
    (unique ids, summed rows) and let the optimizer update only those rows (lazy Adam, as
    PyTorch's ``SparseAdam``). Not done: ``Tensor.grad`` and the optimizers are dense.
    """
    out = np.zeros((num_rows, rows.shape[1]), dtype=rows.dtype)
    return scatter_add_rows_into(out, ids, rows, padding_idx)


def scatter_add_rows_into(out: np.ndarray, ids: np.ndarray, rows: np.ndarray,
                          padding_idx: int | None = None) -> np.ndarray:
    """``out[ids[p]] += rows[p]`` in place, for a C-contiguous (V, C) ``out`` of rows'
    dtype (e.g. a fresh ``np.zeros``, so no second table is allocated and copied); see
    :func:`scatter_add_rows`. Returns ``out``."""
    num_rows = out.shape[0]
    if ids.dtype != np.int32 and ids.dtype != np.int64:
        ids = ids.astype(np.int64)  # uint8 ... uint64: one compiled signature per int type
    ids = np.ascontiguousarray(ids)
    rows = np.ascontiguousarray(rows)
    if ids.size:
        pad = -1 if padding_idx is None else int(padding_idx) % num_rows
        bad = _scatter_add(ids, rows, out, pad)
        if bad >= 0:
            raise IndexError(f"embedding backward: id {int(ids[bad])} at position {bad} out "
                             f"of range [0, {num_rows})")
    return out


def bench_cases(quick: bool = False) -> list[BenchCase]:
    """The scatter alone (into a zeroed table, against ``np.add.at``), and the whole op
    (allocation included, against the reference's sort + ``add.reduceat``)."""
    from ..nn.functional import _scatter_add_rows

    V, C, N = (5_000, 128, 512) if quick else (50_000, 128, 2048)
    size = f"{V // 1000}k x {C}, {N} ids"
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, N)
    dy = rng.standard_normal((N, C)).astype(np.float32)
    table = np.zeros((V, C), np.float32)  # accumulates; the timing does not depend on values
    ids_t = dy_t = None
    try:
        import torch

        ids_t, dy_t = torch.from_numpy(ids), torch.from_numpy(dy)
        table_t = torch.zeros(V, C)
    except ImportError:
        pass
    return [
        BenchCase(
            "embedding backward (scatter)", size,
            kernel=lambda: _scatter_add(ids, dy, table, -1),
            numpy=lambda: np.add.at(table, ids, dy), numpy_label="np.add.at",
            torch=None if ids_t is None else lambda: table_t.index_add_(0, ids_t, dy_t),
            target=30.0,
        ),
        BenchCase(
            "embedding backward (whole op)", size + ", dense dW",
            kernel=lambda: scatter_add_rows(V, ids, dy),
            numpy=lambda: _scatter_add_rows(V, ids, dy),
            numpy_label="np.zeros + argsort + add.reduceat",
            torch=None if ids_t is None else (
                lambda: torch.zeros(V, C).index_add_(0, ids_t, dy_t)),
        ),
    ]
