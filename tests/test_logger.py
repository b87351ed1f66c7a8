import json
import math

from jaxnn.train.logger import MetricsLogger, format_record, read_metrics


def _record(epoch, loss=1.0):
    return {
        "epoch": epoch,
        "train_loss": loss,
        "val_loss": loss,
        "val_accuracy": 0.5,
        "grad_norm": 2.0,
        "seconds": 0.1,
    }


def test_every_epoch_is_one_jsonl_line_with_its_values(tmp_path):
    log = MetricsLogger(tmp_path, epochs=3, verbose=False, tensorboard=False)
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


def test_tensorboard_event_files_are_written(tmp_path):
    log = MetricsLogger(tmp_path, verbose=False)
    log.log_epoch(_record(1))
    log.close()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_terminal_line_names_epoch_of_total_and_metrics():
    line = format_record(_record(2, loss=0.123456), epochs=10)
    assert line.startswith("epoch 2/10")
    assert "train_loss 0.1235" in line and "val_accuracy 0.5000" in line and "0.10s" in line


def test_terminal_line_skips_missing_and_nan_values():
    line = format_record({"epoch": 1, "train_loss": float("nan")})
    assert "train_loss" not in line
