"""Message constructors behind one small interface, so builders run on rclpy or rosbags types.

The node passes :class:`RclpyFactory` (in ``node.py``); the ``bag`` command and the tests
pass :class:`RosbagsFactory`. Both offer:

- ``make(msgtype, **fields)``: a message of a type named like ``"sensor_msgs/msg/Image"``. rclpy classes have
  defaults for every field; rosbags classes are dataclasses without defaults, so
  :class:`RosbagsFactory` fills the fields not given with ROS default values.
- ``ctor(msgtype)``: the raw class, for hot loops that pass every field by keyword
  (``Point(x=, y=, z=)``), where per-call default filling would cost too much.
- ``seq(array)``: a primitive sequence field (``float32[]``, ``uint8[]``...). rosbags wants
  numpy arrays; rclpy wants ``array.array`` (it type-checks lists element by element).
"""

from __future__ import annotations

import array
from typing import Any, Protocol

import numpy as np


class MessageFactory(Protocol):
    def make(self, msgtype: str, **fields: Any) -> Any: ...

    def ctor(self, msgtype: str) -> Any: ...

    def seq(self, values: np.ndarray) -> Any: ...


# ROS primitive type -> numpy dtype (rosbags' representation of arrays of primitives).
_NUMPY_OF_ROS = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "octet": np.uint8,
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
    "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
    "float32": np.float32, "float64": np.float64,
}  # fmt: skip

# rosbags Nodetype values (rosbags.interfaces.Nodetype): BASE, NAME, ARRAY, SEQUENCE.
_BASE, _NAME, _ARRAY, _SEQUENCE = 1, 2, 3, 4


class RosbagsFactory:
    """Messages from a rosbags typestore (``rosbags.typesys.get_typestore(...)``)."""

    def __init__(self, typestore):
        self.typestore = typestore
        self._fields: dict[str, list[tuple[str, Any]]] = {}

    def ctor(self, msgtype: str):
        try:
            return self.typestore.types[msgtype]
        except KeyError:
            raise KeyError(f"message type {msgtype} is not registered in the typestore") from None

    def seq(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values)

    def make(self, msgtype: str, **fields: Any):
        cls = self.ctor(msgtype)
        spec = self._spec(msgtype)
        unknown = set(fields) - {name for name, _ in spec}
        if unknown:
            raise TypeError(f"{msgtype} has no field(s) {sorted(unknown)}")
        for name, node in spec:
            if name not in fields:
                fields[name] = self._default(node)
        return cls(**fields)

    def _spec(self, msgtype: str) -> list[tuple[str, Any]]:
        if msgtype not in self._fields:
            self._fields[msgtype] = list(self.typestore.fielddefs[msgtype][1])
        return self._fields[msgtype]

    def _default(self, node):
        kind, detail = node
        if kind == _BASE:
            return _base_default(detail[0])
        if kind == _NAME:
            return self.make(detail)
        sub, length = detail
        if sub[0] == _BASE and sub[1][0] in _NUMPY_OF_ROS:
            return np.zeros(length if kind == _ARRAY else 0, dtype=_NUMPY_OF_ROS[sub[1][0]])
        return [self._default(sub) for _ in range(length)] if kind == _ARRAY else []


def _base_default(ros_type: str):
    if ros_type == "string" or ros_type == "wstring":
        return ""
    if ros_type == "bool":
        return False
    if ros_type.startswith("float"):
        return 0.0
    return 0


# numpy dtype -> array.array typecode, for rclpy's unbounded primitive sequences.
_TYPECODE = {
    np.dtype(np.int8): "b", np.dtype(np.uint8): "B", np.dtype(np.int16): "h", np.dtype(np.uint16): "H",
    np.dtype(np.int32): "i", np.dtype(np.uint32): "I", np.dtype(np.int64): "q", np.dtype(np.uint64): "Q",
    np.dtype(np.float32): "f", np.dtype(np.float64): "d",
}  # fmt: skip


def to_array_array(values: np.ndarray) -> array.array:
    """A numpy 1-D array as ``array.array`` without a per-element Python loop."""
    values = np.ascontiguousarray(values)
    out = array.array(_TYPECODE[values.dtype])
    out.frombytes(values.tobytes())
    return out


class RclpyFactory:
    """Messages from the Python packages rosidl generated (``sensor_msgs.msg.Image``...).

    Imports each message package on first use, so this module stays importable without
    ROS; only the node instantiates it.
    """

    def __init__(self):
        self._classes: dict[str, Any] = {}

    def ctor(self, msgtype: str):
        cls = self._classes.get(msgtype)
        if cls is None:
            import importlib

            package, kind, name = msgtype.split("/")
            cls = getattr(importlib.import_module(f"{package}.{kind}"), name)
            self._classes[msgtype] = cls
        return cls

    def seq(self, values: np.ndarray) -> array.array:
        return to_array_array(values)

    def make(self, msgtype: str, **fields: Any):
        return self.ctor(msgtype)(**fields)
