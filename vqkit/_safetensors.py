"""Reading a safetensors file without trusting it: the header alone, then a check against a model.

The format (https://github.com/huggingface/safetensors) is an 8-byte little-endian header length,
a JSON header of ``{name: {dtype, shape, data_offsets}}`` (plus optional ``__metadata__``
strings) and the raw tensor bytes. ``read_safetensors_header`` validates the header against the
file's size before any tensor is read; ``check_against_header`` compares it with a model (which
may live on the ``meta`` device) key by key.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vqkit.errors import InvalidModelError

__all__ = [
    "MAX_HEADER_BYTES",
    "SafetensorsHeader",
    "check_against_header",
    "read_safetensors_header",
]

MAX_HEADER_BYTES = 100_000_000  # the limit the safetensors library itself applies

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    **{
        name: getattr(torch, attr)
        for name, attr in (
            ("U16", "uint16"),
            ("U32", "uint32"),
            ("U64", "uint64"),
            ("F8_E4M3", "float8_e4m3fn"),
            ("F8_E5M2", "float8_e5m2"),
        )
        if hasattr(torch, attr)
    },
}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


@dataclass
class SafetensorsHeader:
    """What the header of a safetensors file declares, checked against the file's size.

    Attributes:
        tensors: ``{name: (dtype, shape)}`` with the torch dtype.
        metadata: the ``__metadata__`` strings (may be empty).
        data_bytes: the size of the data section.
    """

    tensors: dict[str, tuple[torch.dtype, tuple[int, ...]]]
    metadata: dict[str, str] = field(default_factory=dict)
    data_bytes: int = 0


def read_safetensors_header(path: str | os.PathLike) -> SafetensorsHeader:
    """Read and validate the header of a safetensors file without reading its tensors.

    Checks that the file holds an 8-byte header length, a bounded JSON object header, known
    dtypes, non-negative integer shapes, and byte ranges that match each shape, lie inside the
    file and tile the data section exactly.

    Raises:
        InvalidModelError: the file is empty, truncated, not safetensors, or inconsistent; the
            message names the file (and the tensor).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise InvalidModelError(f"{path} is empty (0 bytes): not a safetensors file")
    if size < 8:
        raise InvalidModelError(f"{path} is truncated ({size} bytes): not a safetensors file")
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length < 2 or length > MAX_HEADER_BYTES:
            raise InvalidModelError(
                f"{path} is not a safetensors file: its header length field says {length} bytes "
                f"(expected 2 to {MAX_HEADER_BYTES})"
            )
        if 8 + length > size:
            raise InvalidModelError(
                f"{path} is truncated: its header needs {length} bytes, the file has {size - 8}"
            )
        raw = f.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidModelError(
            f"{path} is not a safetensors file: bad JSON header ({exc})"
        ) from exc
    if not isinstance(header, dict):
        raise InvalidModelError(
            f"{path} is not a safetensors file: the header is a JSON {type(header).__name__}"
        )
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidModelError(f"{path}: __metadata__ must map strings to strings")
    data_bytes = size - 8 - length
    tensors: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    ranges = []
    for name, entry in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise InvalidModelError(f"{where} needs exactly dtype, shape and data_offsets")
        dtype = _DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            raise InvalidModelError(
                f"{where} has unknown dtype {entry['dtype']!r}; known: {sorted(_DTYPES)}"
            )
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise InvalidModelError(f"{where} has a bad shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
            raise InvalidModelError(f"{where} has bad data_offsets {offsets!r}")
        begin, end = offsets
        numel = 1
        for d in shape:
            numel *= d
        expected = numel * torch.empty((), dtype=dtype).element_size()
        if end - begin != expected:
            raise InvalidModelError(
                f"{where}: shape {shape} of {entry['dtype']} needs {expected} bytes, its "
                f"data_offsets span {end - begin}"
            )
        if end > data_bytes:
            raise InvalidModelError(
                f"{path} is truncated: tensor {name!r} ends at byte {end} of a data section of "
                f"{data_bytes} bytes"
            )
        tensors[name] = (dtype, tuple(shape))
        ranges.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(ranges):
        if begin != position:
            raise InvalidModelError(
                f"{path}: tensor {name!r} starts at byte {begin}, expected {position} "
                "(overlapping or gapped data)"
            )
        position = end
    if position != data_bytes:
        raise InvalidModelError(
            f"{path}: {data_bytes - position} trailing bytes after the last tensor"
        )
    return SafetensorsHeader(tensors=tensors, metadata=dict(metadata), data_bytes=data_bytes)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _dtype_name(dtype: torch.dtype) -> str:
    return _DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def check_against_header(
    model: torch.nn.Module, header: SafetensorsHeader, model_file: Any, *, strict: bool
) -> tuple[list[str], list[str]]:
    """Compare names, shapes and dtypes; return ``(missing, unexpected)``.

    Works on a model built on the ``meta`` device. Tied tensors (one object under two names, which
    ``safetensors.torch.save_model`` stores once) count as present when any of their names is.
    """
    state = model.state_dict(keep_vars=True)
    aliases: dict[int, list[str]] = {}
    for key, tensor in state.items():
        aliases.setdefault(id(tensor), []).append(key)
    mismatched, wrong_dtype = [], []
    for key in sorted(header.tensors):
        if key not in state:
            continue
        dtype, shape = header.tensors[key]
        if shape != tuple(state[key].shape):
            mismatched.append(f"{key}: file {shape} vs model {tuple(state[key].shape)}")
        elif dtype != state[key].dtype:
            wrong_dtype.append(
                f"{key}: file {_dtype_name(dtype)} vs model {_dtype_name(state[key].dtype)}"
            )
    if mismatched:
        raise InvalidModelError(f"shape mismatch loading {model_file}: " + "; ".join(mismatched))
    if wrong_dtype:
        raise InvalidModelError(
            f"dtype mismatch loading {model_file}: {'; '.join(wrong_dtype)} "
            "(weights are never cast silently; convert the file or the model explicitly)"
        )
    missing = sorted(
        key
        for key in state
        if key not in header.tensors
        and not any(k in header.tensors for k in aliases[id(state[key])])
    )
    unexpected = sorted(key for key in header.tensors if key not in state)
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing key(s) {missing}")
        if unexpected:
            parts.append(f"unexpected key(s) {unexpected}")
        raise InvalidModelError(
            f"{model_file} does not match {type(model).__name__}: {'; '.join(parts)} "
            "(pass strict=False to load anyway)"
        )
    return missing, unexpected


def load_weights(model: torch.nn.Module, model_file: Any) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        load_model(model, str(model_file), strict=False)
    except (SafetensorError, OSError) as exc:  # the header was sound; the data was not
        raise InvalidModelError(f"cannot read the tensors of {model_file}: {exc}") from exc


def read_checked_tensors(
    path: str | os.PathLike, expected: dict[str, tuple[int, ...]], owner: str, what: str, hint: str
) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, with every key and shape checked against ``expected``.

    A file that is not safetensors, lacks or adds keys, or holds a tensor of another shape is
    refused with a ``ValueError`` that names ``owner``, the file, the first differences and
    ``hint`` (how to make the right file). ``what`` says what the file should be ("an LPIPS
    VGG16 file").
    """
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors' own error type for a damaged or foreign file
        raise ValueError(f"{owner}: {path} is not a safetensors file ({exc})") from exc
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{owner}: {path} is not {what}: missing {missing[:4]}, unexpected {unexpected[:4]} "
            f"({hint})"
        )
    for key, value in state.items():
        if tuple(value.shape) != expected[key]:
            raise ValueError(
                f"{owner}: {path}: {key} has shape {tuple(value.shape)}, expected {expected[key]}"
            )
    return state
