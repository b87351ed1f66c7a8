import json
import math
import os
import struct

import pytest

from jaxnn.errors import UserError
from jaxnn.train.logger import MetricsLogger, format_record, read_metrics


def _record(epoch, loss=1.0):
    return {
        "epoch": epoch,
        "step": 10 * epoch,
        "train_loss": loss,
        "val_loss": loss,
        "val_accuracy": 0.5,
        "grad_norm": 2.0,
        "seconds": 0.1,
    }


def test_every_epoch_is_one_jsonl_line_with_its_values(tmp_path):
    log = MetricsLogger(tmp_path, epochs=3, verbose=False, tensorboard=False, curves=False)
    for e in (1, 2, 3):
        log.log_epoch(_record(e, loss=1.0 / e))
    log.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert math.isclose(rows[1]["train_loss"], 0.5)


def test_resume_drops_epochs_written_after_the_last_checkpoint(tmp_path):
    log = MetricsLogger(tmp_path, verbose=False, tensorboard=False)
    for e in (1, 2, 3):
        log.log_epoch(_record(e))
    log.close()
    log = MetricsLogger(tmp_path, keep_epochs=2, verbose=False, tensorboard=False)
    log.log_epoch(_record(3, loss=0.25))
    log.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[2]["train_loss"] == 0.25


def test_non_finite_values_are_written_as_json_null(tmp_path):
    log = MetricsLogger(tmp_path, verbose=False, tensorboard=False)
    log.log_epoch({"epoch": 1, "train_loss": float("nan"), "val_loss": float("inf")})
    log.close()
    line = (tmp_path / "metrics.jsonl").read_text()
    assert json.loads(line) == {"epoch": 1, "train_loss": None, "val_loss": None}


def _scalars(event_file):
    """``{tag: [(step, value)]}`` read back from a TensorBoard event file (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    data, out, pos = event_file.read_bytes(), {}, 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
        pos += 12 + length + 4
        for v in event.summary.value:
            out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_tensorboard_train_and_validation_share_tags_on_optimizer_steps(tmp_path):
    log = MetricsLogger(tmp_path, verbose=False, curves=False)
    log.log_epoch(_record(1, loss=0.5))
    log.log_epoch(_record(2, loss=0.25))
    log.close()
    (run,) = list((tmp_path / "tensorboard").iterdir())
    (train_file,) = list((run / "train").glob("events.out.tfevents.*"))
    (val_file,) = list((run / "validation").glob("events.out.tfevents.*"))
    train, val = _scalars(train_file), _scalars(val_file)
    assert train["epoch_loss"] == [(10, 0.5), (20, 0.25)]
    assert val["epoch_loss"] == [(10, 0.5), (20, 0.25)]
    assert val["epoch_accuracy"] == [(10, 0.5), (20, 0.5)]
    assert "optimizer/grad_norm" in train


def test_each_invocation_writes_its_own_tensorboard_folder(tmp_path, monkeypatch):
    for pid in (101, 102):
        monkeypatch.setattr("os.getpid", lambda pid=pid: pid)
        log = MetricsLogger(tmp_path, verbose=False, curves=False)
        log.log_epoch(_record(1))
        log.close()
    assert len(list((tmp_path / "tensorboard").iterdir())) == 2


def test_two_runs_in_one_process_within_one_second_get_a_folder_each(tmp_path, monkeypatch):
    # a resume right after a run in the same process (a notebook, a test) once failed with
    # "File exists"; a link planted at the next name is passed over and not written through
    monkeypatch.setattr("time.strftime", lambda fmt: "20260101-000000")
    (tmp_path / "tensorboard").mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    name = f"20260101-000000-{os.getpid()}"
    (tmp_path / "tensorboard" / f"{name}-2").symlink_to(victim, target_is_directory=True)
    for _ in range(2):
        log = MetricsLogger(tmp_path, verbose=False, curves=False)
        log.log_epoch(_record(1))
        log.close()
    folders = sorted(p.name for p in (tmp_path / "tensorboard").iterdir())
    assert folders == [name, f"{name}-2", f"{name}-3"] and not list(victim.iterdir())
    assert list((tmp_path / "tensorboard" / f"{name}-3" / "train").glob("events.out.tfevents.*"))


def test_curves_png_is_written_each_epoch_and_holds_the_test_point(tmp_path):
    log = MetricsLogger(tmp_path, verbose=False, tensorboard=False)
    log.log_epoch(_record(1), best_epoch=1)
    first = (tmp_path / "curves.png").read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    log.log_epoch(_record(2, loss=0.5), best_epoch=2)
    log.draw(best_epoch=2, test={"test_loss": 0.6, "test_accuracy": 0.7})
    log.close()
    assert (tmp_path / "curves.png").read_bytes() != first


def test_a_torn_last_line_is_dropped_and_a_bad_middle_line_names_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2, "train_lo')
    assert read_metrics(path) == [{"epoch": 1}]
    path.write_text('{"epoch": 1}\nnot json\n{"epoch": 3}\n')
    with pytest.raises(UserError, match=r"metrics.jsonl:2: expected one JSON record per line"):
        read_metrics(path)


def test_terminal_line_names_epoch_of_total_and_metrics():
    line = format_record(_record(2, loss=0.123456), epochs=10)
    assert line.startswith("epoch 2/10")
    assert "train_loss 0.1235" in line and "val_accuracy 0.5000" in line and "0.10s" in line


def test_terminal_line_skips_missing_and_nan_values():
    line = format_record({"epoch": 1, "train_loss": float("nan")})
    assert "train_loss" not in line
