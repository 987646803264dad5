"""One source of randomness for all of tinylm: ``tinylm.manual_seed(s)`` seeds it.

CPU draws come from a NumPy ``Generator`` (PCG64); GPU draws (dropout masks on a GPU)
from a CuPy generator seeded from the same seed, created when first needed.
Initialisation, batches and sampling always draw on the CPU, so a seed gives the same
weights, batches and sampled text on every device.

``get_rng_state()`` is a JSON-friendly dict, for checkpoints and exact resume::

    {"seed": 0, "bit_generator": {...PCG64 state...},
     "cuda": {"bit_generator": "XORWOW", "nbytes": N, "state": "<base64>"}}

The ``"cuda"`` entry is there only once a GPU draw has happened since the last
``manual_seed`` (before that the GPU stream is "fresh from the seed", which the seed
alone restores). It is a copy of CuPy's cuRAND states (one per GPU thread, a few MB as
base64) taken from the generator's device buffer. A state restored on a machine
without CuPy is kept as it is and applied when the GPU generator is first needed, so
a GPU checkpoint loads on a CPU machine and a CPU state loads anywhere.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from . import backend

# "cuda": None (fresh from the seed when first needed), a CuPy Generator, or a saved
# state dict not yet applied (see set_rng_state)
_state = {"seed": 0, "cpu": np.random.default_rng(0), "cuda": None}


def manual_seed(seed: int) -> None:
    """Seed every random draw tinylm makes (initialisation, dropout, sampling)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _state["seed"] = int(seed)
    _state["cpu"] = np.random.default_rng(int(seed))
    _state["cuda"] = None


def generator(device: backend.Device | None = None):
    """The generator for ``device`` (NumPy's on the CPU, CuPy's on a GPU).

    There is one GPU generator, on the GPU where it is first asked for (CuPy's cuRAND
    states live in that GPU's memory).
    """
    if device is None or device.type == "cpu":
        return _state["cpu"]
    gen = _state["cuda"]
    if gen is None or isinstance(gen, dict):
        cp = backend.cupy()
        with cp.cuda.Device(device.index):
            fresh = cp.random.default_rng(_state["seed"])
            if isinstance(gen, dict):
                _apply_cuda_state(fresh, gen)
        gen = _state["cuda"] = fresh
    return gen


def get_rng_state() -> dict:
    """The generators' state (a JSON-friendly dict), for exact resume (see the module
    docstring). Reading the GPU part copies the cuRAND states to the host."""
    state = {"seed": _state["seed"], "bit_generator": _state["cpu"].bit_generator.state}
    gen = _state["cuda"]
    if isinstance(gen, dict):
        state["cuda"] = dict(gen)
    elif gen is not None:
        state["cuda"] = _read_cuda_state(gen)
    return state


def set_rng_state(state: dict) -> None:
    """Restore a state from :func:`get_rng_state`. A bad state raises KeyError, TypeError
    or ValueError and leaves the generators as they were."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state["bit_generator"]
    seed = state["seed"]
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_rng_state: seed must be a non-negative int, got {seed!r}")
    cuda = state.get("cuda")
    if cuda is not None:
        cuda = _checked_cuda_state(cuda)
    _state["seed"] = int(seed)
    _state["cpu"] = rng
    _state["cuda"] = cuda  # applied to a fresh CuPy generator on the next GPU draw


# ----------------------------------------------------------------------------- GPU state


def _device_buffer(gen):
    """The CuPy int8 array holding a cuRAND bit generator's per-thread states."""
    bg = gen.bit_generator
    buf = getattr(bg, "_state", None)  # CuPy's _cuRANDGenerator keeps them here
    if buf is None or not backend.is_cupy_array(buf):
        raise RuntimeError(
            f"get_rng_state: cannot read the state of CuPy's {type(bg).__name__} bit "
            "generator (this CuPy version keeps it elsewhere); the GPU random stream "
            "cannot be saved"
        )
    return buf


def _read_cuda_state(gen) -> dict:
    buf = _device_buffer(gen)
    raw = buf.get().tobytes()  # device -> host
    return {
        "bit_generator": type(gen.bit_generator).__name__,
        "nbytes": len(raw),
        "state": base64.b64encode(raw).decode("ascii"),
    }


def _checked_cuda_state(cuda) -> dict:
    """Check the shape of a saved GPU state (its size is checked against the GPU when it
    is applied: it depends on CuPy's thread count)."""
    if not isinstance(cuda, dict):
        raise TypeError(f"set_rng_state: 'cuda' must be a dict, got {type(cuda).__name__}")
    kind, nbytes, data = cuda["bit_generator"], cuda["nbytes"], cuda["state"]
    if not isinstance(kind, str) or not isinstance(data, str):
        raise TypeError("set_rng_state: 'cuda' needs a str 'bit_generator' and a base64 "
                        "str 'state'")
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"set_rng_state: 'cuda' nbytes must be a non-negative int, got "
                         f"{nbytes!r}")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise ValueError(f"set_rng_state: 'cuda' state is not base64: {e}") from None
    if len(raw) != nbytes:
        raise ValueError(f"set_rng_state: 'cuda' state holds {len(raw)} bytes, nbytes says "
                         f"{nbytes}")
    return {"bit_generator": kind, "nbytes": nbytes, "state": data}


def _apply_cuda_state(gen, cuda: dict) -> None:
    """Overwrite a fresh CuPy generator's cuRAND states with saved ones."""
    kind = type(gen.bit_generator).__name__
    if kind != cuda["bit_generator"]:
        raise ValueError(f"set_rng_state: the saved GPU state is of a {cuda['bit_generator']} "
                         f"generator, this CuPy makes {kind}")
    buf = _device_buffer(gen)
    if buf.nbytes != cuda["nbytes"]:
        raise ValueError(
            f"set_rng_state: the saved GPU state has {cuda['nbytes']} bytes, this GPU's "
            f"generator {buf.nbytes} (saved with another CuPy version or GPU?)"
        )
    raw = np.frombuffer(base64.b64decode(cuda["state"]), dtype=np.int8)
    buf.set(raw.reshape(buf.shape))  # host -> device, in place
