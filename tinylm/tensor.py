"""Tensor: one backend array, its gradient, and the node of the graph that made it.

Grad mode lives here too: ``no_grad()``, ``enable_grad()``, ``set_grad_enabled``.
Every method that computes something delegates to a Function in ``tinylm.ops``;
the Tensor itself only holds data and wiring.
"""

from __future__ import annotations

import numpy as np

from . import backend

__all__ = ["Tensor", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]


class _GradMode:
    __slots__ = ("enabled",)

    def __init__(self):
        self.enabled = True


_grad_mode = _GradMode()


class set_grad_enabled:  # noqa: N801 - PyTorch's name, used as a context manager
    """Context manager (and decorator) that sets grad mode on or off, then restores it."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = None

    def __enter__(self):
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False

    def __call__(self, fn):
        import functools

        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


class no_grad(set_grad_enabled):  # noqa: N801
    """Inside ``with tinylm.no_grad():`` ops record nothing and results need no grad."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):  # noqa: N801
    """Turn grad mode back on inside a ``no_grad`` block."""

    def __init__(self):
        super().__init__(True)


def is_grad_enabled() -> bool:
    return _grad_mode.enabled



# Tensor's methods call the ops through this module, which ``tinylm.ops`` binds when it
# has loaded (every op module imports Tensor from here, so it cannot be imported above).
_ops = None


class Tensor:
    """An n-dimensional array with automatic differentiation.

    Make one with :func:`tinylm.tensor` (or ``zeros``, ``randn``, ...). Ops on
    tensors that require grad record a graph; ``backward()`` walks it in reverse
    and fills ``.grad`` of the leaves.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retains_grad", "__weakref__")
    # NumPy must hand `array + tensor` to Tensor.__radd__ instead of looping itself.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "dtype") or not hasattr(data, "shape"):
            raise TypeError(
                f"Tensor(data) takes a NumPy or CuPy array, got {type(data).__name__}; "
                "use tinylm.tensor(...) to build one from Python data"
            )
        self.data = data
        self.grad = None
        self._ctx = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, data) -> Tensor:
        """Fast constructor for a backend array (the hot path of every op)."""
        t = object.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = False
        t._ctx = None
        t._retains_grad = False
        return t

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> backend.Device:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        """The Function class that made this tensor (None for a leaf)."""
        return None if self._ctx is None else self._ctx.fn

    def size(self, dim: int | None = None):
        if dim is None:
            return self.data.shape
        return self.data.shape[_check_dim("size", dim, self.ndim)]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    # ------------------------------------------------------------------ grad wiring
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError(
                f"only floating point tensors can require gradients, got dtype {self.data.dtype}"
            )
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad can only be turned off on a leaf; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor too (for plots of gradient flow)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True

    def backward(self, gradient=None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad."""
        from .autograd import backward

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory, as in PyTorch)."""
        return Tensor._wrap(self.data)

    def zero_grad_(self) -> None:
        self.grad = None

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """A NumPy array of the data (copied from the GPU when needed)."""
        if self.requires_grad:
            raise RuntimeError(
                "can't call numpy() on a tensor that requires grad: use t.detach().numpy()"
            )
        return backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(
                f"item(): only a one-element tensor converts to a Python scalar, "
                f"got shape {tuple(self.shape)}"
            )
        return backend.to_numpy(self.data).reshape(()).item()

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    def to(self, *args, **kwargs) -> Tensor:
        """``t.to("cuda")``, ``t.to(tinylm.float64)``, ``t.to("cpu", tinylm.float32)``.

        Differentiable: the gradient comes back to the original device and dtype.
        """
        extra = set(kwargs) - {"device", "dtype"}
        if extra:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(extra)}")
        device, dtype = None, None
        for a in (*args, *kwargs.values()):
            if a is None:  # to(dtype=None): keep it (np.dtype(None) would be float64)
                continue
            if isinstance(a, (str, backend.Device)):
                device = backend.Device(a)
            elif isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            else:
                dtype = np.dtype(a)
        return _ops.to(self, device=device, dtype=dtype)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return self.to(np.int64)

    def bool(self) -> Tensor:
        return self.to(np.bool_)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor of shape {tuple(self.shape)} is ambiguous"
            )
        return bool(self.item())

    def __repr__(self) -> str:
        arr = backend.to_numpy(self.data)
        body = np.array2string(arr, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if arr.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype=tinylm.{arr.dtype}")
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{self._ctx.fn.__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.abs(self)

    # comparisons: bool tensors, never part of the graph
    def __eq__(self, other):  # type: ignore[override]
        return _ops.eq(self, other)

    def __ne__(self, other):  # type: ignore[override]
        return _ops.ne(self, other)

    def __lt__(self, other):
        return _ops.lt(self, other)

    def __le__(self, other):
        return _ops.le(self, other)

    def __gt__(self, other):
        return _ops.gt(self, other)

    def __ge__(self, other):
        return _ops.ge(self, other)

    def __getitem__(self, key):
        return _ops.getitem(self, key)

    # ------------------------------------------------------------------ op methods
    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def abs(self):
        return _ops.abs(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def relu(self):
        return _ops.relu(self)

    def clamp(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        return _ops.clamp(self, min=min, max=max)

    def pow(self, exponent):
        return _ops.pow(self, exponent)

    def matmul(self, other):
        return _ops.matmul(self, other)

    def sum(self, dim=None, keepdim=False):
        return _ops.sum(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        return _ops.mean(self, dim=dim, keepdim=keepdim)

    def var(self, dim=None, correction=1, keepdim=False):
        return _ops.var(self, dim=dim, correction=correction, keepdim=keepdim)

    def amax(self, dim=None, keepdim=False):
        return _ops.amax(self, dim=dim, keepdim=keepdim)

    def amin(self, dim=None, keepdim=False):
        return _ops.amin(self, dim=dim, keepdim=keepdim)

    def logsumexp(self, dim, keepdim=False):
        return _ops.logsumexp(self, dim=dim, keepdim=keepdim)

    def softmax(self, dim):
        return _ops.softmax(self, dim=dim)

    def log_softmax(self, dim):
        return _ops.log_softmax(self, dim=dim)

    def reshape(self, *shape):
        return _ops.reshape(self, *shape)

    def view(self, *shape):
        return _ops.reshape(self, *shape)

    def transpose(self, dim0, dim1):
        return _ops.transpose(self, dim0, dim1)

    def permute(self, *dims):
        return _ops.permute(self, *dims)

    def unsqueeze(self, dim):
        return _ops.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return _ops.squeeze(self, dim)

    def expand(self, *sizes):
        return _ops.expand(self, *sizes)

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops.flatten(self, start_dim, end_dim)

    def contiguous(self):
        return _ops.contiguous(self)

    def split(self, split_size_or_sections, dim=0):
        return _ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _ops.chunk(self, chunks, dim)

    def masked_fill(self, mask, value):
        return _ops.masked_fill(self, mask, value)

    @property
    def T(self):  # noqa: N802 - PyTorch's name
        """All dimensions reversed (a transpose for a matrix)."""
        return _ops.permute(self, *range(self.ndim - 1, -1, -1))

    @property
    def mT(self):  # noqa: N802
        """The last two dimensions swapped (a batch of transposes)."""
        return _ops.transpose(self, -2, -1)


def _check_dim(op: str, dim, ndim: int) -> int:
    """Normalise a possibly negative dim, or raise naming the valid range."""
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    if not lo <= dim <= hi:
        raise IndexError(
            f"{op}: dim {dim} out of range for a {ndim}-d tensor (expected in [{lo}, {hi}])"
        )
    return int(dim) % max(ndim, 1)

