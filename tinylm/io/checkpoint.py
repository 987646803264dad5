"""Training checkpoints: weights, optimizer state, RNG state, step, config and tokenizer in
one safetensors file, so that training resumes exactly where it stopped.

Layout (a plain safetensors file; any safetensors reader can open it)::

    tensors   model.<name>                 the model's state_dict()
              optim.state.<index>.<key>    optimizer buffers (exp_avg, momentum_buffer, ...)
    metadata  tinylm.checkpoint            "1", the layout's version
              tinylm.step                  JSON: the training step
              tinylm.config                JSON: the model config (a dataclass becomes a dict)
              tinylm.tokenizer             JSON: the tokenizer's dict
              tinylm.rng_state             JSON: tinylm.random.get_rng_state()
              tinylm.optimizer             JSON: {"param_groups": [...], "state": {index:
                                           {key: non-array value, e.g. "step": 3}}}
              tinylm.extra                 JSON: anything else (scheduler state, history)
              <your keys>                  str -> str, passed through as given

The format's metadata holds only strings, so structures are stored JSON-encoded;
:func:`encode_metadata` and :func:`decode_metadata` do that for any metadata of your own.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import backend, random
from ..tensor import Tensor
from .format import CheckpointError, _reject_constant, load, save

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "encode_metadata",
           "decode_metadata"]

VERSION = "1"
_PREFIX = "tinylm."
_MODEL, _OPTIM = "model.", "optim.state."


def _to_json(value):
    """``json.dumps``'s fallback: objects with ``to_dict()`` (their own idea of what to keep,
    e.g. a model config's "model" key), other dataclasses, NumPy scalars."""
    if callable(getattr(value, "to_dict", None)):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, np.generic) and value.ndim == 0:
        return value.item()
    hint = " (store arrays as tensors, not metadata)" if hasattr(value, "shape") else ""
    raise TypeError(f"{type(value).__name__} is not JSON-serializable{hint}")


def encode_metadata(values: Mapping[str, Any]) -> dict[str, str]:
    """``{key: json.dumps(value)}``: JSON-able values (dicts, lists, numbers, strings, bools,
    None; also dataclasses, objects with ``to_dict()`` and NumPy scalars) as metadata strings.

    Floats round-trip exactly; tuples come back as lists; NaN and infinity are refused.
    """
    out = {}
    for key, value in values.items():
        try:
            out[key] = json.dumps(value, default=_to_json, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"metadata {key!r} cannot be stored as JSON: {e}") from None
    return out


def decode_metadata(metadata: Mapping[str, str], keys: Iterable[str] | None = None, *,
                    path: str | os.PathLike = "<metadata>") -> dict[str, Any]:
    """``{key: json.loads(metadata[key])}`` for ``keys`` (default: all); a key that is
    absent is skipped. Bad JSON raises :class:`CheckpointError` naming ``path`` and key."""
    out = {}
    for key in metadata if keys is None else keys:
        if key not in metadata:
            continue
        try:
            out[key] = json.loads(metadata[key], parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:
            raise CheckpointError(f"cannot load '{os.fspath(path)}': metadata {key!r} is not "
                                  f"valid JSON: {e}") from None
    return out


@dataclasses.dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read. Fields absent from the file are ``None``."""

    model_state: dict[str, Tensor]  # for model.load_state_dict
    optimizer_state: dict | None  # for optimizer.load_state_dict (PyTorch's layout)
    step: int | None
    config: Any  # as saved: a dataclass comes back as a dict (rebuild with Config(**config))
    tokenizer: Any
    rng_state: dict | None  # for tinylm.random.set_rng_state
    extra: Any
    metadata: dict[str, str]  # the caller's own metadata keys


def _is_array(v) -> bool:
    """Tensors and arrays (also e.g. a CPU torch.Tensor) become tensors in the file."""
    if isinstance(v, (Tensor, np.ndarray)) or backend.is_cupy_array(v):
        return True
    return hasattr(v, "__array__") and hasattr(v, "shape") and not isinstance(v, np.generic)


def _is_index(s: str) -> bool:
    return s.isascii() and s.isdigit()


def _state(obj, what: str) -> Mapping:
    state = obj.state_dict() if callable(getattr(obj, "state_dict", None)) else obj
    if not isinstance(state, Mapping):
        raise TypeError(f"save_checkpoint: {what} must be a {what} or its state_dict(), "
                        f"got {type(obj).__name__}")
    return state


def save_checkpoint(path: str | os.PathLike, *, model=None, optimizer=None,
                    step: int | None = None, config: Any = None, tokenizer: Any = None,
                    extra: Any = None, rng_state: dict | None = None,
                    metadata: Mapping[str, str] | None = None) -> None:
    """Save a full training checkpoint, atomically (see the module docstring for the layout).

    ``model`` and ``optimizer`` may be the objects or their ``state_dict()``s. ``rng_state``
    defaults to the current ``tinylm.random.get_rng_state()``. ``config``, ``tokenizer`` and
    ``extra`` must be JSON-able (see :func:`encode_metadata`). ``metadata`` adds your own
    str -> str entries (keys starting with ``tinylm.`` are reserved).

    >>> save_checkpoint("run/ckpt.safetensors", model=model, optimizer=opt, step=step,
    ...                 config=cfg, tokenizer=tok.to_dict())
    """
    own = dict(metadata or {})
    reserved = [k for k in own if isinstance(k, str) and k.startswith(_PREFIX)]
    if reserved:
        raise ValueError(f"save_checkpoint: metadata keys starting with '{_PREFIX}' are "
                         f"reserved: {reserved}")
    tensors: dict[str, Any] = {}
    fields: dict[str, Any] = {"rng_state": random.get_rng_state() if rng_state is None
                              else rng_state}
    if model is not None:
        for name, value in _state(model, "model").items():
            tensors[_MODEL + name] = value
    if optimizer is not None:
        state = _state(optimizer, "optimizer")
        scalars: dict[str, dict] = {}
        for idx, buffers in state["state"].items():
            for key, value in buffers.items():
                if _is_array(value):
                    tensors[f"{_OPTIM}{int(idx)}.{key}"] = value
                else:
                    scalars.setdefault(str(int(idx)), {})[key] = value
        fields["optimizer"] = {"param_groups": state["param_groups"], "state": scalars}
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"save_checkpoint: step must be a non-negative int, got {step!r}")
        fields["step"] = int(step)
    for name, value in (("config", config), ("tokenizer", tokenizer), ("extra", extra)):
        if value is not None:
            fields[name] = value
    try:
        encoded = encode_metadata({_PREFIX + k: v for k, v in fields.items()})
    except TypeError as e:
        raise TypeError(f"save_checkpoint: {e}") from None
    save(tensors, path, {_PREFIX + "checkpoint": VERSION, **encoded, **own})


def _get(fields: dict, path, key: str, kind: type | tuple):
    value = fields.get(_PREFIX + key)
    if value is not None and not isinstance(value, kind):
        raise CheckpointError(f"cannot load '{os.fspath(path)}': metadata '{_PREFIX}{key}' "
                              f"is a {type(value).__name__}")
    return value


def load_checkpoint(path: str | os.PathLike, *, model=None, optimizer=None,
                    restore_rng: bool = False) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; optionally apply it.

    With ``model`` / ``optimizer`` given, their ``load_state_dict`` is called (the model
    strictly, so every name must match); ``restore_rng=True`` restores tinylm's RNG, which
    exact resume needs. They are applied in that order, each checked before it changes
    anything. Tensors are read to the host; ``load_state_dict`` moves them to the
    parameters' device. A damaged or foreign file raises :class:`CheckpointError`.

    >>> ckpt = load_checkpoint("run/ckpt.safetensors", model=model, optimizer=opt,
    ...                        restore_rng=True)
    >>> step = ckpt.step
    """
    tensors, metadata = load(path, with_metadata=True)
    where = f"cannot load '{os.fspath(path)}'"
    version = metadata.get(_PREFIX + "checkpoint")
    if version is None:
        raise CheckpointError(f"{where}: not a tinylm checkpoint (no '{_PREFIX}checkpoint' in "
                              "its metadata); read plain tensor files with tinylm.load")
    if version != VERSION:
        raise CheckpointError(f"{where}: checkpoint layout version {version!r}; this tinylm "
                              f"reads version {VERSION!r}")
    fields = decode_metadata(metadata, [k for k in metadata if k.startswith(_PREFIX)
                                        and k != _PREFIX + "checkpoint"], path=path)
    step = _get(fields, path, "step", int)
    if isinstance(step, bool) or (step is not None and step < 0):
        raise CheckpointError(f"{where}: metadata '{_PREFIX}step' is {step!r}")
    rng_state = _get(fields, path, "rng_state", dict)
    optim = _get(fields, path, "optimizer", dict)

    model_state, buffers = {}, {}
    for name, t in tensors.items():
        if name.startswith(_MODEL):
            model_state[name[len(_MODEL):]] = t
        elif name.startswith(_OPTIM):
            idx, _, key = name[len(_OPTIM):].partition(".")
            if not _is_index(idx) or not key:
                raise CheckpointError(f"{where}: bad optimizer tensor name {name!r} "
                                      f"(expected {_OPTIM}<index>.<key>)")
            buffers.setdefault(int(idx), {})[key] = t
        else:
            raise CheckpointError(f"{where}: tensor {name!r} is neither '{_MODEL}*' nor "
                                  f"'{_OPTIM}*'")

    optimizer_state = None
    if optim is not None or buffers:
        groups, scalars = (optim or {}).get("param_groups"), (optim or {}).get("state", {})
        if not isinstance(groups, list) or not isinstance(scalars, dict) or not all(
                _is_index(k) and isinstance(v, dict) for k, v in scalars.items()):
            raise CheckpointError(f"{where}: metadata '{_PREFIX}optimizer' needs a "
                                  "'param_groups' list and a 'state' dict of index -> dict")
        state: dict[int, dict] = {}
        for idx in sorted({int(k) for k in scalars} | set(buffers)):
            state[idx] = {**scalars.get(str(idx), {}), **buffers.get(idx, {})}
        optimizer_state = {"state": state, "param_groups": groups}

    ckpt = Checkpoint(
        model_state=model_state, optimizer_state=optimizer_state, step=step,
        config=fields.get(_PREFIX + "config"), tokenizer=fields.get(_PREFIX + "tokenizer"),
        rng_state=rng_state, extra=fields.get(_PREFIX + "extra"),
        metadata={k: v for k, v in metadata.items() if not k.startswith(_PREFIX)},
    )
    if model is not None:
        model.load_state_dict(model_state)
    if optimizer is not None:
        if optimizer_state is None:
            raise ValueError(f"load_checkpoint: '{os.fspath(path)}' holds no optimizer state")
        optimizer.load_state_dict(_with_tuples(optimizer_state, optimizer))
    if restore_rng:
        if rng_state is None:
            raise ValueError(f"load_checkpoint: '{os.fspath(path)}' holds no RNG state")
        try:
            random.set_rng_state(rng_state)
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{where}: metadata '{_PREFIX}rng_state' is not a tinylm "
                                  f"RNG state: {e!r}") from None
    return ckpt


def _with_tuples(state: dict, optimizer) -> dict:
    """JSON turns tuples into lists; give back tuples where the optimizer's defaults have
    them (Adam's ``betas``), so a reloaded optimizer's state_dict() equals the saved one."""
    defaults = getattr(optimizer, "defaults", {})
    groups = [{k: tuple(v) if isinstance(v, list) and isinstance(defaults.get(k), tuple) else v
               for k, v in g.items()} if isinstance(g, dict) else g
              for g in state["param_groups"]]
    return {"state": state["state"], "param_groups": groups}
