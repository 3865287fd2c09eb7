"""Fill any ROS 2 message with deterministic pseudo-random values and compare two messages
field by field (through rosidl's Python introspection, so every field of every type is covered)."""

from __future__ import annotations

import array

import numpy as np
from rosidl_parser.definition import (
    AbstractNestedType,
    AbstractSequence,
    Array,
    BasicType,
    BoundedSequence,
    NamespacedType,
    UnboundedSequence,
)
from rosidl_parser.definition import (
    AbstractString as _AbstractString,
)

try:
    from rosidl_runtime_py.utilities import get_message  # noqa: F401  (real ROS installs)
except ImportError:  # not in the PyPI wheels
    get_message = None

_INT_RANGES = {
    "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
    "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1), "int64": (-2**63, 2**63 - 1),
    "uint64": (0, 2**64 - 1), "char": (0, 255), "octet": (0, 255), "byte": (0, 255),
}


def _import_type(nt: NamespacedType):
    import importlib

    mod = importlib.import_module(".".join(nt.namespaces))
    return getattr(mod, nt.name)


def _basic_value(typename: str, rng: np.random.Generator):
    if typename == "boolean":
        return bool(rng.integers(0, 2))
    if typename in ("float", "double"):
        v = float(rng.normal())
        return float(np.float32(v)) if typename == "float" else v
    if typename in ("octet", "byte"):
        return bytes([int(rng.integers(0, 256))])
    lo, hi = _INT_RANGES[typename]
    return int(rng.integers(lo, hi, dtype=np.int64 if hi < 2**63 else np.uint64, endpoint=True))


def fill(msg, rng: np.random.Generator, seq_len: int = 3):
    """Fill every field of ``msg`` in place; nested messages recursively."""
    for attr, slot in zip(msg.get_fields_and_field_types(), msg.SLOT_TYPES):
        setattr(msg, attr, _value(slot, rng, seq_len))
    return msg


def _value(slot, rng, seq_len):
    if isinstance(slot, AbstractNestedType):
        n = slot.size if isinstance(slot, Array) else seq_len
        if isinstance(slot, BoundedSequence):
            n = min(n, slot.maximum_size)
        vt = slot.value_type
        if isinstance(vt, BasicType) and vt.typename in ("float", "double"):
            vals = rng.normal(size=n).astype(np.float32 if vt.typename == "float" else np.float64)
            return vals if isinstance(slot, Array) else array.array("f" if vt.typename == "float" else "d", vals)
        return [_value(vt, rng, seq_len) for _ in range(n)]
    if isinstance(slot, BasicType):
        return _basic_value(slot.typename, rng)
    if isinstance(slot, _AbstractString):
        return "s" + "".join(chr(int(c)) for c in rng.integers(97, 123, size=int(rng.integers(1, 12))))
    if isinstance(slot, NamespacedType):
        return fill(_import_type(slot)(), rng, seq_len)
    raise TypeError(f"unsupported slot type {slot!r}")


def assert_equal(a, b, path: str = "msg"):
    """Recursively compare two messages; raise AssertionError naming the first differing field."""
    if hasattr(a, "SLOT_TYPES"):
        assert type(a) is type(b), f"{path}: type {type(a).__name__} != {type(b).__name__}"
        for attr in a.get_fields_and_field_types():
            assert_equal(getattr(a, attr), getattr(b, attr), f"{path}.{attr}")
        return
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{path}[{i}]")
        return
    if isinstance(a, (array.array, np.ndarray, bytes)) or isinstance(b, (array.array, np.ndarray)):
        x, y = np.asarray(a), np.asarray(b)
        assert x.shape == y.shape, f"{path}: shape {x.shape} != {y.shape}"
        assert np.array_equal(x, y), f"{path}: values differ"
        return
    assert a == b, f"{path}: {a!r} != {b!r}"


__all__ = ["fill", "assert_equal", "AbstractSequence", "UnboundedSequence"]
