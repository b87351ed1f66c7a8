"""TensorBoard event files, written directly — Chapter 15: logs a standard viewer can read.

An event file is a sequence of TFRecords, each an ``Event`` protocol buffer: first one holding
``file_version = "brain.Event:2"``, then one per logged step holding a ``Summary`` of scalar
values. A record is framed as ``uint64 length``, ``uint32 masked crc32c(length)``, the bytes,
``uint32 masked crc32c(bytes)`` (little endian). The few fields a scalar needs are encoded here
by hand, so logging needs neither TensorFlow, tensorboardX nor protobuf (tensorboardX imports
PyTorch whenever it is installed, which a library must not do to its user's process)::

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
    Summary { repeated Value value = 1; }
    Value   { string tag = 1; float simple_value = 2; }
"""

from __future__ import annotations

import os
import socket
import struct
import time

from jaxnn import _contained

__all__ = ["EventWriter", "crc32c", "masked_crc32c", "encode_scalars"]


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """The CRC-32C (Castagnoli) checksum of ``data``; ``crc32c(b"123456789") == 0xE3069283``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked checksum: the CRC rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 as two's complement, as protobuf encodes a negative int64
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, body: bytes) -> bytes:
    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step) + body


def encode_scalars(step: int, scalars: dict[str, float], *, wall_time: float) -> bytes:
    """One ``Event`` holding a ``Summary`` of ``simple_value`` scalars, as protobuf bytes."""
    values = b"".join(
        _field(1, _field(1, tag.encode()) + b"\x15" + struct.pack("<f", float(value)))
        for tag, value in scalars.items()
    )
    return _event(wall_time, step, _field(5, values))


def _record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


class EventWriter:
    """Appends scalar events to a new ``events.out.tfevents.<time>.<host>`` file in ``logdir``.

    The folder is made by :func:`jaxnn._contained.ensure_dir` (a link there is refused) and the
    file is created exclusively (an existing file or a link at its name is refused, never written
    through); a full disk is a :class:`jaxnn._contained.WriteFailed` naming the file.
    """

    def __init__(self, logdir):
        self.logdir = _contained.ensure_dir("EventWriter", logdir)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = self.logdir / name
        self._file = _contained.open_new(self.path)
        self._file.write(_record(_event(time.time(), 0, _field(3, b"brain.Event:2"))))

    def scalars(self, step: int, scalars: dict[str, float]) -> None:
        """Write ``scalars`` (tag -> value) at ``step`` in one event."""
        if scalars:
            self._file.write(_record(encode_scalars(step, scalars, wall_time=time.time())))

    def flush(self) -> None:
        """Push what was written to the operating system."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()
