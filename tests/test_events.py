"""jaxnn.train.events: TensorBoard event files written by hand, read back by an independent
decoder (tensorboardX's protobuf classes and its CRC-32C)."""

from __future__ import annotations

import os
import struct

import pytest

from jaxnn.train import events


def test_crc32c_matches_the_standard_check_value_and_an_independent_implementation():
    assert events.crc32c(b"123456789") == 0xE3069283  # the CRC-32C catalogue's check value
    record_writer = pytest.importorskip("tensorboardX.record_writer")
    for data in (b"", b"a", bytes(range(256)) * 3):
        assert events.masked_crc32c(data) == record_writer.masked_crc32c(data)


def _records(path):
    data, pos, out = path.read_bytes(), 0, []
    while pos < len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (head_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        body = data[pos + 12 : pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        assert head_crc == events.masked_crc32c(header) and body_crc == events.masked_crc32c(body)
        out.append(body)
        pos += 16 + length
    return out


def test_an_event_file_decodes_with_tensorboards_own_protobuf_classes(tmp_path):
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    writer = events.EventWriter(tmp_path / "train")
    writer.scalars(10, {"epoch_loss": 0.5, "optimizer/lr": 1e-3})
    writer.scalars(2**40, {"epoch_loss": -2.25})
    writer.close()
    first, *rest = (event_pb2.Event.FromString(r) for r in _records(writer.path))
    assert first.file_version == "brain.Event:2"
    got = [(e.step, v.tag, v.simple_value) for e in rest for v in e.summary.value]
    assert got == [(10, "epoch_loss", 0.5), (10, "optimizer/lr", pytest.approx(1e-3)),
                   (2**40, "epoch_loss", -2.25)]  # fmt: skip
    assert all(e.wall_time > 1e9 for e in rest)


def test_a_link_at_the_event_files_name_is_refused_not_followed(tmp_path, monkeypatch):
    monkeypatch.setattr(events.time, "time", lambda: 1000.0)
    monkeypatch.setattr(events.os, "getpid", lambda: 7)
    target = tmp_path / "outside"
    target.write_text("keep")
    logdir = tmp_path / "run"
    logdir.mkdir()
    name = f"events.out.tfevents.1000.{events.socket.gethostname()}.7"
    os.symlink(target, logdir / name)
    with pytest.raises(OSError):
        events.EventWriter(logdir)
    assert target.read_text() == "keep"


def test_importing_and_writing_loads_no_protobuf_and_no_torch(tmp_path):
    import subprocess
    import sys

    program = (
        "import sys\nfrom jaxnn.train.events import EventWriter\n"
        f"w = EventWriter({str(tmp_path)!r}); w.scalars(1, {{'a': 1.0}}); w.close()\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'google', 'tensorboardX', 'torch'}))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr
