"""Tensor files in the safetensors format, written and read by tinylm itself.

A file is three parts (https://github.com/huggingface/safetensors, "Format")::

    8 bytes   N, the header's length, an unsigned little-endian integer
    N bytes   the header: UTF-8 JSON, padded with spaces so that 8 + N is a multiple of 8
              {"__metadata__": {"key": "value", ...},
               "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
    the rest  the data: each tensor's bytes, C order, little-endian, back to back

``data_offsets`` count from the start of the data. The tensors must tile the data exactly:
no overlaps, no gaps, no bytes after the last one. ``__metadata__`` maps strings to strings.

tinylm writes tensors in the order of the dict it is given and adds one metadata entry,
``tinylm.sha256``, the SHA-256 of the data, which :func:`load` verifies (files written by
other programs have none, and load without the check). Nothing is ever unpickled: a file
is bytes, a JSON header and raw numbers, and every field is checked before it is used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor
from .atomic import atomic_write

__all__ = ["CheckpointError", "save", "load", "load_metadata", "DTYPES", "CHECKSUM_KEY"]

# safetensors dtype code -> NumPy dtype as stored (little-endian)
DTYPES = {
    "BOOL": np.dtype("|b1"), "U8": np.dtype("|u1"), "I8": np.dtype("|i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
    "C64": np.dtype("<c8"),
}  # fmt: skip
_CODES = {(d.kind, d.itemsize): code for code, d in DTYPES.items()}
# valid in the format, but NumPy has no such type, so tinylm cannot hold them
_NO_NUMPY = {"BF16", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0", "F4",
             "F6_E2M3", "F6_E3M2"}  # fmt: skip

CHECKSUM_KEY = "tinylm.sha256"
MAX_HEADER = 100_000_000  # bytes; the safetensors library's own cap
MAX_DIMS = 64  # NumPy 2's limit (NumPy 1 allows 32; more then fails as "not a valid array")
_FIELDS = ("dtype", "shape", "data_offsets")


class CheckpointError(ValueError):
    """A file that is damaged, hostile, or not in the safetensors format.

    The message names the file and the problem. Missing files and permission errors stay
    ``OSError``s: they say nothing about the file's contents.
    """


def _fail(path, problem: str):
    raise CheckpointError(f"cannot load '{os.fspath(path)}': {problem}")


# ---------------------------------------------------------------------------- save
def _as_array(name: str, value) -> np.ndarray:
    """``value`` as a C-contiguous little-endian NumPy array (a GPU tensor copied to host)."""
    if isinstance(value, Tensor):
        value = value.data
    if backend.is_cupy_array(value):
        value = backend.to_numpy(value)
    elif not isinstance(value, np.ndarray):
        if not (hasattr(value, "__array__") and hasattr(value, "dtype")):
            raise TypeError(
                f"save: tensor '{name}' is a {type(value).__name__}; values must be tinylm "
                "Tensors or NumPy arrays (wrap a number as numpy.array(x))"
            )
        value = np.asarray(value)  # a NumPy scalar, or e.g. a CPU torch.Tensor
    if (value.dtype.kind, value.dtype.itemsize) not in _CODES:  # structured dtypes too
        supported = ", ".join(str(d.newbyteorder("=")) for d in DTYPES.values())
        raise TypeError(
            f"save: tensor '{name}' has dtype {value.dtype}, which the safetensors format "
            f"cannot store in tinylm; supported: {supported} (cast it, e.g. .astype('float32'))"
        )
    # order="C" copies a strided view; "<" byte-swaps a big-endian array; 0-d stays 0-d
    return np.asarray(value, dtype=value.dtype.newbyteorder("<"), order="C")


def _check_metadata(metadata) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(
            f"save: metadata must be a dict of str to str, got {type(metadata).__name__}"
        )
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(
                f"save: metadata must map str to str (the format allows nothing else), but "
                f"{k!r} -> {type(v).__name__}; store structures with tinylm.io.encode_metadata"
            )
    if CHECKSUM_KEY in metadata:
        raise ValueError(f"save: metadata key '{CHECKSUM_KEY}' is reserved; save sets it")
    return dict(metadata)


def save(tensors: Mapping[str, Any], path: str | os.PathLike,
         metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` (name -> tinylm Tensor or NumPy array) to a safetensors file.

    ``metadata`` is an optional dict of str to str, stored in the header. The write is
    atomic (see :mod:`tinylm.io.atomic`): ``path`` holds either its old contents or the
    whole new file, even if the process is killed midway. Arrays are written C-contiguous
    and little-endian; GPU tensors are copied to the host first.

    >>> tinylm.save(model.state_dict(), "model.safetensors", {"note": "epoch 3"})
    """
    if not isinstance(tensors, Mapping):
        hint = " (pass model.state_dict())" if hasattr(tensors, "state_dict") else ""
        raise TypeError(f"save: expected a dict of name -> tensor, got "
                        f"{type(tensors).__name__}{hint}")
    meta = _check_metadata(metadata)
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"save: tensor names must be strings, got {name!r}")
        if name == "__metadata__":
            raise ValueError("save: '__metadata__' is reserved by the format; rename the tensor")
        arrays[name] = _as_array(name, value)

    header: dict[str, Any] = {"__metadata__": meta}
    digest = hashlib.sha256()
    offset = 0
    for name, a in arrays.items():
        header[name] = {"dtype": _CODES[a.dtype.kind, a.dtype.itemsize],
                        "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        digest.update(_raw(a))
    meta[CHECKSUM_KEY] = digest.hexdigest()

    blob = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # pad: the data starts 8-byte aligned
    with atomic_write(path) as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for a in arrays.values():
            f.write(_raw(a))


def _raw(a: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous array, as a flat uint8 view (no copy; 0-d included)."""
    return a.reshape(-1).view(np.uint8)


# ---------------------------------------------------------------------------- load
def _sniff(f) -> str | None:
    """Name a well-known non-safetensors format from the first bytes, if it is one."""
    f.seek(0)
    head = f.read(4096)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return ("this is a pickle file (e.g. from torch.save or pickle.dump), not a "
                "safetensors file; tinylm never unpickles, since unpickling runs code")
    if head.startswith(b"\x93NUMPY"):
        if re.search(rb"'\|?O'|\"\|?O\"", head[:512]):
            return ("this is a NumPy .npy file holding Python objects (dtype object), which "
                    "only unpickling could read; tinylm never unpickles")
        return ("this is a NumPy .npy file, not a safetensors file; read it with "
                "numpy.load and write it with tinylm.save")
    if head.startswith(b"PK\x03\x04"):
        return "this is a zip archive (a .npz file, or torch.save's format), not a safetensors file"
    return None


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list) -> dict:
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise _DuplicateKey(k)
        obj[k] = v
    return obj


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _json_type(x) -> str:
    """The JSON name of a parsed value's type, for messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(x), "number")


def _short(x, limit: int = 80) -> str:
    """``repr(x)``, cut to ``limit`` characters: hostile names and values can be huge."""
    r = repr(x)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _read_header(f, path) -> tuple[list[tuple], dict[str, str], int]:
    """Parse and check the header. Returns ``(entries, metadata, data_start)`` with
    entries ``(name, dtype, shape, begin, end)`` in header order."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    if len(head) < 8:
        _fail(path, _sniff(f) or (f"the file is {size} bytes, too short for the 8-byte header "
                                  "length (empty or truncated)"))
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER:  # pickle, .npy and zip files all land here: say which it is
        _fail(path, _sniff(f) or (f"the header length is {n} bytes, over the {MAX_HEADER}-byte "
                                  "limit (not a safetensors file, or damaged)"))
    if 8 + n > size:
        _fail(path, f"the header length ({n} bytes) runs past the end of the file ({size} "
                    "bytes): truncated?")
    raw = f.read(n)
    if not raw.startswith(b"{"):  # so a header that parses is always a JSON object
        _fail(path, "the header is not a JSON object: it must start with '{'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail(path, f"the header is not valid UTF-8 (byte {e.start} of the header)")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates,
                            parse_constant=_reject_constant)
    except _DuplicateKey as e:
        _fail(path, f"the header has the key {_short(e.args[0])} twice")
    except RecursionError:
        _fail(path, "the header's JSON is nested too deeply")
    except ValueError as e:  # json.JSONDecodeError is one
        _fail(path, f"the header is not valid JSON: {e}")

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict):
        _fail(path, f"__metadata__ is a JSON {_json_type(metadata)}, not an object")
    for k, v in metadata.items():
        if not isinstance(v, str):
            _fail(path, f"__metadata__[{_short(k)}] is a JSON {_json_type(v)}, not a string")
    checksum = metadata.get(CHECKSUM_KEY)
    if checksum is not None and not re.fullmatch(r"[0-9a-f]{64}", checksum):
        _fail(path, f"__metadata__[{CHECKSUM_KEY!r}] is not a SHA-256 hex digest: "
                    f"{_short(checksum)}")

    entries = [_check_entry(path, name, info) for name, info in header.items()]
    _check_layout(path, entries, size - 8 - n)
    return entries, metadata, 8 + n


def _check_entry(path, name: str, info) -> tuple:
    where = f"tensor {_short(name)}"
    if not isinstance(info, dict):
        _fail(path, f"{where}: its entry is a JSON {_json_type(info)}, not an object")
    for field in _FIELDS:
        if field not in info:
            _fail(path, f"{where}: its entry has no {field!r}")
    extra = sorted(set(info) - set(_FIELDS))
    if extra:
        _fail(path, f"{where}: unexpected field(s) {_short(extra)} (expected {list(_FIELDS)})")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if code not in DTYPES:
        if code in _NO_NUMPY:
            _fail(path, f"{where} has dtype {code}, which NumPy (and so tinylm) cannot hold; "
                        "convert it to F32 before saving")
        known = ", ".join(DTYPES)
        _fail(path, f"{where} has an unknown dtype {_short(code)} (tinylm reads {known})")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        _fail(path, f"{where}: bad shape {_short(shape)} (a list of non-negative integers)")
    if len(shape) > MAX_DIMS:
        _fail(path, f"{where}: its shape has {len(shape)} dimensions; NumPy allows {MAX_DIMS}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_is_int(o) and o >= 0 for o in offsets) or offsets[0] > offsets[1]):
        _fail(path, f"{where}: bad data_offsets {_short(offsets)} (need [begin, end] with "
                    "0 <= begin <= end)")
    dtype = DTYPES[code]
    begin, end = offsets
    need = math.prod(shape) * dtype.itemsize
    if end - begin != need:
        _fail(path, f"{where}: data_offsets [{begin}, {end}] hold {end - begin} bytes, but "
                    f"shape {_short(shape)} of {code} needs {need}")
    return name, dtype, tuple(shape), begin, end


def _check_layout(path, entries: list[tuple], data_size: int) -> None:
    """The tensors must tile ``[0, data_size)`` exactly, in some order."""
    pos, prev = 0, None
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin < pos:
            _fail(path, f"tensors {_short(prev)} and {_short(name)} overlap (data bytes "
                        f"{begin} to {pos})")
        if begin > pos:
            _fail(path, f"a gap of {begin - pos} unused data bytes before tensor {_short(name)} "
                        f"(data bytes {pos} to {begin})")
        pos, prev = end, name
    if pos > data_size:
        _fail(path, f"tensor {_short(prev)} ends at data byte {pos}, past the end of the data "
                    f"({data_size} bytes): truncated, or bad data_offsets")
    if pos < data_size:
        _fail(path, f"{data_size - pos} trailing byte(s) after the last tensor")


def _read_arrays(f, path, entries, metadata, data_start) -> dict[str, np.ndarray]:
    """Read every tensor (in file order, hashing as it goes) and verify the checksum."""
    f.seek(data_start)
    digest = hashlib.sha256()
    arrays = {}
    for name, dtype, shape, _, _ in sorted(entries, key=lambda e: (e[3], e[4])):
        try:
            a = np.empty(shape, dtype=dtype)
        except (ValueError, OverflowError) as e:
            _fail(path, f"tensor {_short(name)}: shape {_short(list(shape))} is not a valid "
                        f"array ({e})")
        buf = memoryview(_raw(a))
        got = 0
        while got < len(buf):
            k = f.readinto(buf[got:])
            if not k:
                _fail(path, f"the file ended inside tensor {_short(name)} (did it shrink while "
                            "being read?)")
            got += k
        digest.update(buf)
        if dtype.kind == "b" and _raw(a).max(initial=0) > 1:  # NumPy assumes 0 or 1
            _fail(path, f"BOOL tensor {_short(name)} holds bytes other than 0 and 1")
        arrays[name] = a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))
    expected = metadata.get(CHECKSUM_KEY)
    if expected is not None and digest.hexdigest() != expected:
        _fail(path, f"checksum mismatch: the data's SHA-256 is {digest.hexdigest()}, the "
                    f"header says {expected}; the file is damaged (or was rewritten by a "
                    f"program that kept tinylm's '{CHECKSUM_KEY}' entry)")
    return {name: arrays[name] for name, *_ in entries}  # header order


def load(path: str | os.PathLike, *, device: str | backend.Device = "cpu",
         numpy: bool = False, with_metadata: bool = False
         ) -> dict[str, Any] | tuple[dict[str, Any], dict[str, str]]:
    """Read a safetensors file: ``{name: Tensor}`` in the file's header order.

    - ``device``: where the tensors go (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    - ``numpy=True``: NumPy arrays instead of Tensors (on the host).
    - ``with_metadata=True``: return ``(tensors, metadata)``; ``metadata`` is the header's
      str -> str dict, without the checksum entry.

    Every header field, the data layout and (for files tinylm wrote) the SHA-256 of the
    data are checked; any problem raises :class:`CheckpointError` naming the file.
    """
    dev = backend.Device(device)
    if numpy and dev.type != "cpu":
        raise ValueError(f"load: numpy=True gives host arrays; it cannot go with device={device!r}")
    with open(path, "rb") as f:
        entries, metadata, data_start = _read_header(f, path)
        arrays = _read_arrays(f, path, entries, metadata, data_start)
    out = arrays if numpy else {k: Tensor(backend.to_device(a, dev)) for k, a in arrays.items()}
    if with_metadata:
        return out, {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
    return out


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Only the header's metadata (str -> str): cheap for a large file, since no tensor is
    read. The header and the layout are checked; the checksum is not (no data is read)."""
    with open(path, "rb") as f:
        _, metadata, _ = _read_header(f, path)
    return {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
