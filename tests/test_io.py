"""tinylm.io: the safetensors format written and read by tinylm, atomic saves, hostile files,
and full training checkpoints (save, load, continue: bit-identical to never stopping).

The crash test is tests/test_io_crash.py; interop with the safetensors library is
tests/test_io_safetensors.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import struct
import time

import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
from tinylm.io import (
    CheckpointError,
    atomic_write,
    decode_metadata,
    encode_metadata,
    load_checkpoint,
    load_metadata,
    remove_orphans,
    save_checkpoint,
)
from tinylm.io import atomic as atomic_mod
from tinylm.optim import SGD, Adam
from tinylm.optim.lr_scheduler import WarmupCosineLR

DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "float16", "uint32", "int32", "float32",
          "uint64", "int64", "float64", "complex64"]  # fmt: skip
SHAPES = [(), (1,), (0,), (3, 0, 2), (2, 3, 4)]


def _sample(dtype: str, shape: tuple, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith(("float", "complex")):
        a = rng.standard_normal(shape) * 100
        return (a + 1j * rng.standard_normal(shape) if dtype == "complex64" else a).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _temps(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def _parse(path):
    """(header length, header dict, data bytes) read by hand, as a third party would."""
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    return n, json.loads(blob[8 : 8 + n]), blob[8 + n :]


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_shape_round_trips_exactly(tmp_path, dtype, shape):
    a = _sample(dtype, shape)
    tinylm.save({"a": a, "t": tinylm.Tensor(a)}, tmp_path / "x.safetensors")
    out = tinylm.load(tmp_path / "x.safetensors")
    for t in out.values():
        assert isinstance(t, tinylm.Tensor)
        assert t.dtype == a.dtype and t.shape == a.shape
        np.testing.assert_array_equal(t.numpy(), a)


def test_float_specials_survive_bit_for_bit(tmp_path):
    a = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, np.finfo(np.float64).max])
    tinylm.save({"a": a}, tmp_path / "x.safetensors")
    b = tinylm.load(tmp_path / "x.safetensors", numpy=True)["a"]
    assert b.tobytes() == a.tobytes()


def test_non_contiguous_and_big_endian_inputs_are_written_c_order_little_endian(tmp_path):
    base = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    views = {"T": base.T, "step": base[:, ::2, 1:], "neg": base[::-1], "col": base[:, 0, :],
             "be_f8": np.arange(6, dtype=">f8").reshape(2, 3),
             "be_i4": np.arange(-3, 3, dtype=">i4"), "be_c8": np.array([1 + 2j], dtype=">c8"),
             "be_T": np.arange(6, dtype=">u2").reshape(2, 3).T}
    tinylm.save(views, tmp_path / "x.safetensors")
    out = tinylm.load(tmp_path / "x.safetensors", numpy=True)
    _, header, data = _parse(tmp_path / "x.safetensors")
    for name, v in views.items():
        np.testing.assert_array_equal(out[name], v)
        assert out[name].dtype == v.dtype.newbyteorder("=") and out[name].dtype.isnative
        begin, end = header[name]["data_offsets"]
        expected = np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<")).tobytes()
        assert data[begin:end] == expected


def test_unicode_and_json_special_names(tmp_path):
    names = ["π.weight", "名前", "emoji 🦙", 'quote " and \\ backslash', "new\nline", "", "a" * 300]
    tensors = {n: np.full((2,), i, np.int64) for i, n in enumerate(names)}
    tinylm.save(tensors, tmp_path / "x.safetensors", {"ключ": "значение ✓"})
    out, meta = tinylm.load(tmp_path / "x.safetensors", numpy=True, with_metadata=True)
    assert list(out) == names  # header order is the dict's order
    for n in names:
        np.testing.assert_array_equal(out[n], tensors[n])
    assert meta == {"ключ": "значение ✓"}


def test_empty_dict_and_load_options(tmp_path):
    tinylm.save({}, tmp_path / "e.safetensors")
    assert tinylm.load(tmp_path / "e.safetensors") == {}
    tinylm.save({"w": tinylm.randn(2, 3, requires_grad=True)}, tmp_path / "w.safetensors")
    out = tinylm.load(tmp_path / "w.safetensors", numpy=True)
    assert isinstance(out["w"], np.ndarray) and out["w"].flags.writeable
    t = tinylm.load(tmp_path / "w.safetensors")["w"]
    assert t.device == "cpu" and not t.requires_grad
    assert tinylm.load(tmp_path / "w.safetensors", with_metadata=True)[1] == {}
    with pytest.raises(ValueError, match="numpy=True"):
        tinylm.load(tmp_path / "w.safetensors", numpy=True, device="cuda")


def test_the_file_is_the_documented_safetensors_layout(tmp_path):
    tensors = {"b": np.ones(3, np.bool_), "a": np.arange(5, dtype=np.float32),
               "z": np.zeros((0, 4)), "s": np.array(7, np.int64)}  # fmt: skip
    tinylm.save(tensors, tmp_path / "x.safetensors", {"k": "v"})
    n, header, data = _parse(tmp_path / "x.safetensors")
    assert n % 8 == 0  # padded: the data starts 8-byte aligned
    raw = (tmp_path / "x.safetensors").read_bytes()[8 : 8 + n]
    assert raw == raw.rstrip(b" ") + b" " * (len(raw) - len(raw.rstrip(b" ")))
    meta = header.pop("__metadata__")
    assert meta == {"k": "v", "tinylm.sha256": hashlib.sha256(data).hexdigest()}
    assert list(header) == list(tensors)  # written in the order given, back to back
    pos = 0
    for name, a in tensors.items():
        codes = {"bool": "BOOL", "float32": "F32", "float64": "F64", "int64": "I64"}
        assert header[name] == {"dtype": codes[str(a.dtype)], "shape": list(a.shape),
                                "data_offsets": [pos, pos + a.nbytes]}
        pos += a.nbytes
    assert pos == len(data)


def test_saving_is_deterministic(tmp_path):
    d = {"w": _sample("float32", (4, 4)), "i": _sample("int64", (3,))}
    tinylm.save(d, tmp_path / "a.safetensors", {"x": "1"})
    tinylm.save(d, tmp_path / "b.safetensors", {"x": "1"})
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_module_state_dict_round_trip(tmp_path):
    tinylm.manual_seed(0)
    src = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3))
    tinylm.save(src.state_dict(), tmp_path / "m.safetensors")
    tinylm.manual_seed(1)
    dst = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3))
    dst.load_state_dict(tinylm.load(tmp_path / "m.safetensors"))
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_load_metadata_reads_only_the_header(tmp_path):
    p = tmp_path / "x.safetensors"
    tinylm.save({"a": np.ones(100)}, p, {"config": "{}"})
    blob = bytearray(p.read_bytes())
    blob[-1] ^= 0xFF  # damage the data: load_metadata does not read it
    p.write_bytes(bytes(blob))
    assert load_metadata(p) == {"config": "{}"}
    with pytest.raises(CheckpointError, match="checksum"):
        tinylm.load(p)


# ---------------------------------------------------------------------------- bad input to save
@pytest.mark.parametrize("value", [np.zeros(2, np.complex128), np.array([object()]),
                                   np.array(["abc"]), np.zeros(2, "datetime64[s]"),
                                   np.zeros(2, np.longdouble), np.zeros(2, "i4,f4")],
                         ids=["complex128", "object", "str", "datetime", "longdouble", "struct"])
def test_save_refuses_dtypes_the_format_cannot_hold(tmp_path, value):
    if value.dtype == np.longdouble and np.longdouble == np.float64:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError, match=r"tensor 'x' has dtype .*supported: bool"):
        tinylm.save({"x": value}, tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())  # nothing written, not even a temp file


def test_save_refuses_bad_arguments(tmp_path):
    p = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match=r"pass model.state_dict\(\)"):
        tinylm.save(nn.Linear(2, 2), p)
    with pytest.raises(TypeError, match="dict of name"):
        tinylm.save([np.ones(2)], p)
    with pytest.raises(TypeError, match="names must be strings"):
        tinylm.save({1: np.ones(2)}, p)
    with pytest.raises(ValueError, match="reserved"):
        tinylm.save({"__metadata__": np.ones(2)}, p)
    with pytest.raises(TypeError, match="'x' is a list"):
        tinylm.save({"x": [1.0, 2.0]}, p)
    with pytest.raises(TypeError, match="str to str"):
        tinylm.save({}, p, {"step": 3})
    with pytest.raises(TypeError, match="str to str"):
        tinylm.save({}, p, {3: "three"})
    with pytest.raises(ValueError, match="tinylm.sha256.*reserved"):
        tinylm.save({}, p, {"tinylm.sha256": "0" * 64})
    assert not p.exists()


# ---------------------------------------------------------------------------- hostile files
def _file(tmp_path, header, data=b"", n=None, pad=True):
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8) if pad else b""
    p = tmp_path / "bad.safetensors"
    p.write_bytes(struct.pack("<Q", len(blob) if n is None else n) + blob + data)
    return p


def _t(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


HOSTILE = {  # id: (header, data, header length override, the message it must give)
    "header length past EOF": ({}, b"", 1000, r"header length \(1000 bytes\) runs past"),
    "absurd header length": ({}, b"", 2**40, "over the 100000000-byte limit"),
    "max u64 header length": ({}, b"", 2**64 - 1, "over the 100000000-byte limit"),
    "zero header length": (b"", b"", None, "not a JSON object"),
    "header a list": (b"[1, 2]", b"", None, "not a JSON object"),
    "non-UTF-8": (b'{"\xff\xfe": 1}', b"", None, "not valid UTF-8"),
    "non-JSON": (b'{"a": }', b"", None, "not valid JSON"),
    "NaN in header": (b'{"a": NaN}', b"", None, "not valid JSON"),
    "nested too deeply": (b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", b"", None,
                          "(nested too deeply|not valid JSON)"),
    "duplicate tensor": (b'{"a": %s, "a": %s}' % ((json.dumps(_t()).encode(),) * 2),
                         b"\0" * 4, None, "the key 'a' twice"),
    "duplicate metadata key": (b'{"__metadata__": {"k": "1", "k": "2"}}', b"", None,
                               "the key 'k' twice"),
    "metadata not an object": ({"__metadata__": ["a"]}, b"", None, "__metadata__ is a JSON array"),
    "metadata value not a string": ({"__metadata__": {"step": 3}}, b"", None,
                                    r"__metadata__\['step'\] is a JSON number, not a string"),
    "metadata value null": ({"__metadata__": {"k": None}}, b"", None, "JSON null, not a string"),
    "bad checksum entry": ({"__metadata__": {"tinylm.sha256": "xyz"}}, b"", None,
                           "not a SHA-256 hex digest"),
    "entry not an object": ({"a": [1, 2]}, b"", None, "tensor 'a': its entry is a JSON array"),
    "missing field": ({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, None,
                      "has no 'data_offsets'"),
    "extra field": ({"a": {**_t(), "pickle": "x"}}, b"\0" * 4, None, "unexpected field"),
    "unknown dtype": ({"a": _t("F128")}, b"\0" * 4, None, "unknown dtype 'F128'"),
    "dtype not a string": ({"a": _t(7)}, b"\0" * 4, None, "unknown dtype 7"),
    "bfloat16": ({"a": _t("BF16", (2,))}, b"\0" * 4, None, "BF16, which NumPy"),
    "negative dim": ({"a": _t(shape=(-1,))}, b"\0" * 4, None, r"bad shape \[-1\]"),
    "float dim": ({"a": _t(shape=(1.0,))}, b"\0" * 4, None, r"bad shape \[1.0\]"),
    "bool dim": ({"a": _t(shape=(True,))}, b"\0" * 4, None, r"bad shape \[True\]"),
    "string dim": ({"a": _t(shape=("1",))}, b"\0" * 4, None, "bad shape"),
    "shape not a list": ({"a": {**_t(), "shape": 1}}, b"\0" * 4, None, "bad shape 1"),
    "offsets reversed": ({"a": _t(offsets=(4, 0))}, b"\0" * 4, None, r"bad data_offsets \[4, 0\]"),
    "offsets negative": ({"a": _t(offsets=(-4, 0))}, b"\0" * 4, None, "bad data_offsets"),
    "offsets one number": ({"a": {**_t(), "data_offsets": [4]}}, b"\0" * 4, None,
                           "bad data_offsets"),
    "offsets floats": ({"a": _t(offsets=(0.0, 4.0))}, b"\0" * 4, None, "bad data_offsets"),
    "shape-mismatched": ({"a": _t(shape=(3,), offsets=(0, 8))}, b"\0" * 8, None,
                         r"hold 8 bytes, but shape \[3\] of F32 needs 12"),
    "overlapping": ({"a": _t(shape=(2,), offsets=(0, 8)), "b": _t(shape=(2,), offsets=(4, 12))},
                    b"\0" * 12, None, "tensors 'a' and 'b' overlap"),
    "zero-size inside another": ({"a": _t(shape=(2,), offsets=(0, 8)),
                                  "z": _t(shape=(0,), offsets=(4, 4))},
                                 b"\0" * 8, None, "overlap"),
    "gapped": ({"a": _t(offsets=(0, 4)), "b": _t(offsets=(8, 12))}, b"\0" * 12, None,
               "a gap of 4 unused data bytes before tensor 'b'"),
    "not starting at 0": ({"a": _t(offsets=(4, 8))}, b"\0" * 8, None, "a gap of 4"),
    "out of range": ({"a": _t(offsets=(0, 4)), "b": _t(shape=(2,), offsets=(4, 12))}, b"\0" * 8,
                     None, r"tensor 'b' ends at data byte 12, past the end of the data \(8 bytes"),
    "trailing bytes": ({"a": _t()}, b"\0" * 9, None, r"5 trailing byte\(s\) after the last tensor"),
    "data but no tensors": ({}, b"\0", None, r"1 trailing byte\(s\)"),
    "bool byte not 0 or 1": ({"a": _t("BOOL", (2,), (0, 2))}, b"\x01\x02", None,
                             "BOOL tensor 'a' holds bytes other than 0 and 1"),
    "unallocatable shape": ({"a": _t(shape=(0, 2**70), offsets=(0, 0))}, b"", None,
                            "not a valid array"),
    "too many dims": ({"a": _t(shape=(0,) * 100, offsets=(0, 0))}, b"", None,
                      "100 dimensions; NumPy allows 64"),
    "huge name": ({"x" * 10**6: _t(shape=(-1,))}, b"", None, r"tensor 'xxx+\.\.\.: bad shape"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_header_raises_checkpoint_error_naming_file_and_problem(tmp_path, case):
    header, data, n, message = HOSTILE[case]
    p = _file(tmp_path, header, data, n)
    with pytest.raises(CheckpointError, match=message) as e:
        tinylm.load(p)
    assert str(p) in str(e.value)
    assert isinstance(e.value, ValueError)


def test_a_valid_hand_written_file_loads(tmp_path):
    """The hostile cases above are one field away from this file, which loads."""
    header = {"__metadata__": {"format": "np"}, "b": _t("I64", (1,), (4, 12)), "a": _t()}
    data = np.float32(1.5).tobytes() + np.int64(-2).tobytes()
    out = tinylm.load(_file(tmp_path, header, data), numpy=True)
    assert list(out) == ["b", "a"] and out["a"][0] == 1.5 and out["b"][0] == -2


def test_every_truncation_raises(tmp_path):
    p = tmp_path / "x.safetensors"
    tinylm.save({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, np.int8)},
                p, {"note": "small"})
    blob = p.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for k in range(len(blob)):
        cut.write_bytes(blob[:k])
        with pytest.raises(CheckpointError) as e:
            tinylm.load(cut)
        assert str(cut) in str(e.value), k
    cut.write_bytes(blob + b"\0")
    with pytest.raises(CheckpointError, match=r"1 trailing byte\(s\)"):
        tinylm.load(cut)


def test_every_flipped_data_byte_fails_the_checksum(tmp_path):
    p = tmp_path / "x.safetensors"
    tinylm.save({"w": np.linspace(-1, 1, 10, dtype=np.float32), "i": np.arange(3)}, p)
    blob = p.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    bad = tmp_path / "bad.safetensors"
    for i in range(8 + n, len(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= 0x01
        bad.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError, match="checksum mismatch.*damaged"):
            tinylm.load(bad)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_pickle_file_is_refused_without_unpickling(tmp_path, protocol):
    p = tmp_path / "model.pt"
    p.write_bytes(pickle.dumps({"w": np.zeros(3)}, protocol=protocol))
    with pytest.raises(CheckpointError, match="pickle file.*never unpickles"):
        tinylm.load(p)


def test_npy_and_npz_files_are_named(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="holding Python objects.*never unpickles"):
        tinylm.load(tmp_path / "obj.npy")
    np.save(tmp_path / "plain.npy", np.ones(3))
    with pytest.raises(CheckpointError, match=r"NumPy \.npy file, not a safetensors"):
        tinylm.load(tmp_path / "plain.npy")
    np.savez(tmp_path / "arch.npz", a=np.ones(3))
    with pytest.raises(CheckpointError, match="zip archive"):
        tinylm.load(tmp_path / "arch.npz")
    (tmp_path / "text.txt").write_text("hello, I am not a tensor file at all")
    with pytest.raises(CheckpointError, match="limit"):
        tinylm.load(tmp_path / "text.txt")


def test_missing_file_or_folder_stays_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        tinylm.load(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="no such folder.*nodir"):
        tinylm.save({}, tmp_path / "nodir" / "x.safetensors")


# ---------------------------------------------------------------------------- atomic writes
def test_save_replaces_and_leaves_no_temp_files(tmp_path):
    p = tmp_path / "x.safetensors"
    for i in range(3):
        tinylm.save({"i": np.array(i)}, p)
    assert tinylm.load(p, numpy=True)["i"] == 2
    assert _temps(tmp_path) == []


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "x.safetensors"
    tinylm.save({"v": np.array(1)}, p)
    before = p.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        tinylm.save({"v": np.array(2)}, p)
    assert p.read_bytes() == before and _temps(tmp_path) == []


def test_an_interrupted_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_write(p) as f:
        f.write(b"half of the new")
        raise KeyboardInterrupt
    assert p.read_bytes() == b"old" and _temps(tmp_path) == []


def test_orphan_temp_files_are_cleaned_on_the_next_save(tmp_path):
    host, other = atomic_mod._HOST, "0" * 8 if atomic_mod._HOST != "0" * 8 else "1" * 8
    dead = 2**31 - 1  # no such process
    names = {
        f".x.safetensors.tmp-{host}-{dead}-0000abcd": False,  # its writer is gone: removed
        f".y.safetensors.tmp-{host}-{os.getpid()}-0000abcd": True,  # a live writer: kept
        f".z.safetensors.tmp-{other}-{dead}-0000abcd": True,  # another machine, recent: kept
        f".old.safetensors.tmp-{other}-{dead}-0000abcd": False,  # untouched for hours: removed
        ".x.safetensors.tmp-notours": True,  # not our pattern
        "x.safetensors.tmp-{host}-1-0000abcd": True,  # no leading dot: not our pattern
    }
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
    hours_ago = time.time() - 2 * atomic_mod.ORPHAN_AGE
    os.utime(tmp_path / f".old.safetensors.tmp-{other}-{dead}-0000abcd", (hours_ago, hours_ago))
    tinylm.save({"a": np.ones(1)}, tmp_path / "x.safetensors")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {n for n, kept in names.items() if kept} | {"x.safetensors"}
    assert remove_orphans(tmp_path) == []


def test_temp_names_stay_short_for_long_target_names(tmp_path):
    name = "ü" * 120 + ".safetensors"  # 252 bytes: the temp name must not add to it
    tinylm.save({"a": np.ones(1)}, tmp_path / name)
    assert tinylm.load(tmp_path / name, numpy=True)["a"][0] == 1


@pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks and umask")
def test_symlink_target_is_replaced_and_umask_respected(tmp_path):
    real = tmp_path / "real.safetensors"
    tinylm.save({"a": np.zeros(1)}, real)
    link = tmp_path / "link.safetensors"
    link.symlink_to(real)
    tinylm.save({"a": np.ones(1)}, link)
    assert link.is_symlink() and tinylm.load(real, numpy=True)["a"][0] == 1
    umask = os.umask(0o022)
    os.umask(umask)
    assert real.stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------------------- checkpoints
@dataclasses.dataclass
class TinyConfig:
    n_in: int = 3
    n_out: int = 2
    lr: float = 0.1


def _train(model, opt, steps, sched=None):
    losses = []
    for _ in range(steps):
        x = tinylm.randn(4, 3)  # draws from tinylm's RNG: resume must restore it
        loss = (model(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("make_opt", [
    lambda p: Adam(p, lr=0.01, betas=(0.8, 0.99), amsgrad=True),
    lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True),
], ids=["adam", "sgd"])
def test_checkpoint_resume_is_bit_identical(tmp_path, make_opt):
    tinylm.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = make_opt(model.parameters())
    sched = WarmupCosineLR(opt, warmup_steps=2, total_steps=8)
    _train(model, opt, 3, sched)
    p = tmp_path / "ckpt.safetensors"
    save_checkpoint(p, model=model, optimizer=opt, step=3, config=TinyConfig(),
                    tokenizer={"chars": "abc€", "unk": None},
                    extra={"history": [0.5, 0.25], "scheduler": sched.state_dict()},
                    metadata={"run": "test"})
    expected = _train(model, opt, 3, sched)  # the uninterrupted run

    tinylm.manual_seed(123)  # a different start, all overwritten by the checkpoint
    model2 = nn.Linear(3, 2)
    opt2 = make_opt(model2.parameters())
    sched2 = WarmupCosineLR(opt2, warmup_steps=2, total_steps=8)
    ckpt = load_checkpoint(p, model=model2, optimizer=opt2, restore_rng=True)
    sched2.load_state_dict(ckpt.extra.pop("scheduler"))
    assert ckpt.step == 3 and ckpt.config == dataclasses.asdict(TinyConfig())
    assert ckpt.tokenizer == {"chars": "abc€", "unk": None}
    assert ckpt.extra == {"history": [0.5, 0.25]} and ckpt.metadata == {"run": "test"}
    assert _train(model2, opt2, 3, sched2) == expected
    for a, b in zip(model.parameters(), model2.parameters()):
        assert a.data.tobytes() == b.data.tobytes()
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]  # tuples (betas) come back as tuples
    for i in s1["state"]:
        for k, v in s1["state"][i].items():
            w = s2["state"][i][k]
            assert (v.numpy().tobytes() == w.numpy().tobytes()) if hasattr(v, "numpy") else v == w


def test_checkpoint_is_a_plain_safetensors_file(tmp_path):
    tinylm.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = Adam(model.parameters(), lr=0.01)
    _train(model, opt, 1)
    p = tmp_path / "ckpt.safetensors"
    save_checkpoint(p, model=model.state_dict(), optimizer=opt.state_dict(), step=1)
    tensors, meta = tinylm.load(p, with_metadata=True)
    assert set(tensors) == {"model.weight", "model.bias", "optim.state.0.exp_avg",
                            "optim.state.0.exp_avg_sq", "optim.state.1.exp_avg",
                            "optim.state.1.exp_avg_sq"}  # fmt: skip
    assert meta["tinylm.checkpoint"] == "1" and json.loads(meta["tinylm.step"]) == 1
    assert json.loads(meta["tinylm.rng_state"]) == tinylm.get_rng_state()
    optim = json.loads(meta["tinylm.optimizer"])
    assert optim["state"] == {"0": {"step": 1}, "1": {"step": 1}}
    assert optim["param_groups"][0]["params"] == [0, 1]
    ckpt = load_checkpoint(p)  # nothing applied
    assert list(ckpt.optimizer_state["state"][0]) == ["step", "exp_avg", "exp_avg_sq"]


def test_checkpoint_of_model_only(tmp_path):
    p = tmp_path / "m.safetensors"
    save_checkpoint(p, model=nn.Linear(2, 2))
    ckpt = load_checkpoint(p)
    assert ckpt.optimizer_state is None and ckpt.step is None and ckpt.config is None
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(p, optimizer=SGD(nn.Linear(2, 2).parameters(), lr=0.1))


def test_save_checkpoint_refuses_what_json_cannot_hold(tmp_path):
    p = tmp_path / "c.safetensors"
    with pytest.raises(TypeError, match="tinylm.config.*set"):
        save_checkpoint(p, config={1, 2})
    with pytest.raises(TypeError, match="tinylm.extra.*arrays as tensors"):
        save_checkpoint(p, extra={"a": np.ones(3)})
    with pytest.raises(TypeError, match="tinylm.extra"):
        save_checkpoint(p, extra={"loss": float("nan")})
    with pytest.raises(ValueError, match="step"):
        save_checkpoint(p, step=-1)
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(p, metadata={"tinylm.step": "3"})
    with pytest.raises(TypeError, match="optimizer"):
        save_checkpoint(p, optimizer=3)
    assert not p.exists()


@pytest.mark.parametrize("metadata, tensors, message", [
    ({}, {}, "not a tinylm checkpoint"),
    ({"tinylm.checkpoint": "99"}, {}, "layout version '99'"),
    ({"tinylm.checkpoint": "1", "tinylm.step": "{"}, {}, "'tinylm.step' is not valid JSON"),
    ({"tinylm.checkpoint": "1", "tinylm.step": '"3"'}, {}, "'tinylm.step' is a str"),
    ({"tinylm.checkpoint": "1", "tinylm.step": "-3"}, {}, "'tinylm.step' is -3"),
    ({"tinylm.checkpoint": "1", "tinylm.optimizer": '{"state": {}}'}, {}, "param_groups"),
    ({"tinylm.checkpoint": "1", "tinylm.extra": "NaN"}, {}, "not valid JSON"),
    ({"tinylm.checkpoint": "1"}, {"weights.w": np.ones(1)}, "neither 'model.*'"),
    ({"tinylm.checkpoint": "1"}, {"optim.state.x.exp_avg": np.ones(1)}, "bad optimizer tensor"),
    ({"tinylm.checkpoint": "1"}, {"optim.state.².exp_avg": np.ones(1)}, "bad optimizer tensor"),
    ({"tinylm.checkpoint": "1", "tinylm.optimizer": '{"param_groups": [], "state": {"²": {}}}'},
     {}, "index -> dict"),
], ids=["plain file", "version", "bad JSON", "step type", "negative step", "optimizer",
        "NaN", "foreign tensor", "optimizer index", "unicode digit", "unicode digit state"])
def test_load_checkpoint_refuses_damaged_layouts(tmp_path, metadata, tensors, message):
    p = tmp_path / "c.safetensors"
    tinylm.save(tensors, p, metadata)
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(p)
    assert str(p) in str(e.value)


def test_load_checkpoint_refuses_a_bad_rng_state(tmp_path):
    p = tmp_path / "c.safetensors"
    save_checkpoint(p, rng_state={"seed": 0, "bit_generator": {"nope": 1}})
    assert load_checkpoint(p).rng_state == {"seed": 0, "bit_generator": {"nope": 1}}
    with pytest.raises(CheckpointError, match="rng_state"):
        load_checkpoint(p, restore_rng=True)


def test_json_metadata_helpers_round_trip_exactly():
    values = {"lr": 0.1, "tiny": 5e-324, "big": 2**100, "neg": -0.0, "s": "naïve 名",
              "nested": {"a": [1, 2.5, None, True]}, "cfg": TinyConfig(),
              "np": np.float32(0.25), "i": np.int64(7), "b": np.bool_(True), "t": (1, 2)}
    meta = encode_metadata(values)
    assert all(isinstance(v, str) for v in meta.values())
    back = decode_metadata(meta)
    assert back["lr"] == 0.1 and back["tiny"] == 5e-324 and back["big"] == 2**100
    assert str(back["neg"]) == "-0.0" and back["s"] == "naïve 名" and back["t"] == [1, 2]
    assert back["cfg"] == {"n_in": 3, "n_out": 2, "lr": 0.1} and back["np"] == 0.25
    assert back["i"] == 7 and back["b"] is True
    assert decode_metadata(meta, ["lr", "absent"]) == {"lr": 0.1}
    with pytest.raises(CheckpointError, match="'x' is not valid JSON"):
        decode_metadata({"x": "pt"}, path="f.safetensors")


# ---------------------------------------------------------------------------- devices
# `device`: the shared cpu/cuda fixture of tests/conftest.py


def test_save_from_and_load_to_each_device(tmp_path, device):
    a = _sample("float32", (3, 4))
    t = tinylm.tensor(a, device=device)
    tinylm.save({"t": t, "view": t.T}, tmp_path / "x.safetensors")
    out = tinylm.load(tmp_path / "x.safetensors", device=device)
    assert out["t"].device == device
    np.testing.assert_array_equal(out["t"].numpy(), a)
    np.testing.assert_array_equal(out["view"].numpy(), a.T)
