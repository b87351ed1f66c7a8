"""Run directories that stand alone, and data that never changes meaning silently (issues 19.5,
20.3, 20.5): a run on a user's file keeps a snapshot of its splits, so that after the file moves
``eval``, ``--resume``, ``doctor --out``, ``predict`` and ``sample`` work; a changed file is
refused on ``--resume`` and ``--config`` and flagged by ``eval``; ``eval --dataset`` reads a CSV
by column name; one-class data, missing values and shadowed built-in names give one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxnn.app import cli
from jaxnn.data import snapshot

TRAIN = ["train", "--model", "mlp", "--epochs", "2", "--batch-size", "32"]


def _main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"jaxnn {command}: error: ") and "Traceback" not in err, err
    return lines[0]


def _write_csv(path: Path, n=200, seed=0, columns=("a", "b", "c", "label"), gaps=()):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    rows = []
    for i, (r, lab) in enumerate(zip(x, y, strict=True)):
        cells = {"a": f"{r[0]:.5f}", "b": f"{r[1]:.5f}", "c": f"{r[2]:.5f}", "label": lab}
        if i in gaps:
            cells["b"] = ""
        rows.append(",".join(cells[c] for c in columns))
    path.write_text(",".join(columns) + "\n" + "\n".join(rows) + "\n")
    return path


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """A finished two-epoch run on a CSV, and the CSV (still in place)."""
    root = tmp_path_factory.mktemp("csvrun")
    csv = _write_csv(root / "mine.csv")
    run = root / "run"
    assert cli.main([*TRAIN, "--dataset", str(csv), "--out", str(run)]) == 0
    return run, csv


def _copy_run(csv_run, tmp_path) -> tuple[Path, Path]:
    """A copy of the module's run whose recorded training file is a copy of its own."""
    run, csv = csv_run
    shutil.copytree(run, tmp_path / "run")
    shutil.copy(csv, tmp_path / "mine.csv")
    config = _config(tmp_path / "run")
    config["data"]["source"]["path"] = str(tmp_path / "mine.csv")
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    return tmp_path / "run", tmp_path / "mine.csv"


# ---- the snapshot -----------------------------------------------------------------------------


def test_a_run_on_a_file_records_its_snapshot_and_sha256(csv_run):
    run, csv = csv_run
    source = _config(run)["data"]["source"]
    kept = source["snapshot"]
    assert kept["file"] == "data.npz" and (run / "data.npz").stat().st_size == kept["bytes"]
    import hashlib

    assert hashlib.sha256((run / "data.npz").read_bytes()).hexdigest() == kept["sha256"]
    assert source["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()


def test_after_the_file_moves_eval_doctor_and_predict_work(csv_run, tmp_path, capsys):
    run, csv = _copy_run(csv_run, tmp_path)
    code, before, table = _main(capsys, "eval", "--out", run, "--split", "test")
    assert code == 0
    csv.rename(tmp_path / "moved.csv")
    code, after, err = _main(capsys, "eval", "--out", run, "--split", "test")
    assert code == 0 and after == before and err == table  # the same scores, no warning
    code, out, err = _main(capsys, "doctor", "--out", run, "--checks", "fit", "--report-dir",
                           tmp_path / "report")  # fmt: skip
    assert code in (0, 1) and "Traceback" not in err and (tmp_path / "report/doctor.json").exists()
    new = tmp_path / "new.csv"
    new.write_text("c,b,a\n0,3,3\n0,-3,-3\n")
    code, out, _ = _main(capsys, "predict", "--out", run, "--input", new)
    assert code == 0 and out.splitlines()[1].startswith("0,yes,")


def test_resume_after_the_file_moves_equals_the_uninterrupted_run(csv_run, tmp_path, capsys):
    full, _ = csv_run
    csv = shutil.copy(csv_run[1], tmp_path / "mine.csv")
    run = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--epochs", "1", "--batch-size", "32"]
    assert _main(capsys, *argv, "--dataset", csv, "--out", run)[0] == 0
    recorded = _config(run)["data"]
    Path(csv).rename(tmp_path / "elsewhere.csv")
    code, _, err = _main(capsys, "train", "--out", run, "--resume", "--epochs", "2")
    assert code == 0, err
    assert _summary(run)["params_sha256"] == _summary(full)["params_sha256"]
    assert _config(run)["data"] == recorded  # the recorded sha256 is never overwritten


def test_a_changed_file_is_refused_on_resume_and_config_and_flagged_by_eval(
    csv_run, tmp_path, capsys
):
    run, csv = _copy_run(csv_run, tmp_path)
    old = _config(run)["data"]["source"]["sha256"]
    with open(csv, "a") as f:
        f.write("9,9,9,yes\n")
    code, _, err = _main(capsys, "train", "--out", run, "--resume", "--epochs", "3")
    line = _one_line_error(err, "train")
    assert code == 2 and f"sha256 {old[:12]}... recorded" in line and "changed" in line
    assert _config(run)["data"]["source"]["sha256"] == old
    code, _, err = _main(capsys, "train", "--config", run / "config.json", "--out",
                         tmp_path / "again")  # fmt: skip
    assert code == 2 and "pass --dataset to train on the file" in _one_line_error(err, "train")
    code, out, err = _main(capsys, "eval", "--out", run)
    (warning,) = [line for line in err.splitlines() if line.startswith("eval: warning")]
    assert code == 0 and warning.startswith("eval: warning: the training file")
    assert f"{old[:12]}... recorded" in warning and "snapshot" in warning


def test_a_tampered_snapshot_is_refused(csv_run, tmp_path, capsys):
    run, csv = _copy_run(csv_run, tmp_path)
    data = bytearray((run / "data.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run / "data.npz").write_bytes(bytes(data))
    code, _, err = _main(capsys, "eval", "--out", run)
    assert code == 2 and "it was changed after training" in _one_line_error(err, "eval")


def test_a_snapshot_linked_outside_the_run_is_not_followed(csv_run, tmp_path, capsys):
    run, csv = _copy_run(csv_run, tmp_path)
    sentinel = tmp_path / "sentinel.npz"
    shutil.copy(run / "data.npz", sentinel)
    before = sentinel.read_bytes()
    (run / "data.npz").unlink()
    os.symlink(sentinel, run / "data.npz")
    code, _, err = _main(capsys, "eval", "--out", run)
    assert code == 2 and "is a symbolic link" in _one_line_error(err, "eval")
    fresh = tmp_path / "fresh"  # a new run into a folder where data.npz is a planted link
    fresh.mkdir()
    os.symlink(sentinel, fresh / "data.npz")
    code, _, err = _main(capsys, *TRAIN, "--dataset", csv, "--out", fresh, "--epochs", "1")
    assert code == 2 and "symbolic link" in _one_line_error(err, "train")  # as at every run name
    assert (fresh / "data.npz").is_symlink() and sentinel.read_bytes() == before


def test_above_the_size_limit_a_gone_file_gives_one_line_on_where_to_put_it(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(snapshot, "SNAPSHOT_LIMIT", 1000)
    csv, run = _write_csv(tmp_path / "mine.csv"), tmp_path / "run"
    assert _main(capsys, *TRAIN, "--dataset", csv, "--out", run, "--epochs", "1")[0] == 0
    assert not (run / "data.npz").exists() and _config(run)["data"]["source"]["snapshot"] == {
        "file": None, "array_bytes": 200 * 3 * 4 + 200 * 4, "limit": 1000,
    }  # fmt: skip
    csv.unlink()
    code, _, err = _main(capsys, "eval", "--out", run)
    line = _one_line_error(err, "eval")
    assert code == 2 and f"put the file back at {csv}" in line and "--dataset FILE" in line
    code, _, err = _main(capsys, "train", "--out", run, "--resume", "--epochs", "2")
    assert code == 2 and "keeps no copy of it" in _one_line_error(err, "train")


def test_a_text_run_resumes_and_samples_after_its_file_moves(tmp_path, capsys):
    text, run = tmp_path / "book.txt", tmp_path / "run"
    text.write_text("the cat sat on the mat. " * 120)
    argv = ["train", "--model", "transformer", "--dataset", text, "--data-option", "seq_len=16",
            "--model-config", "dim=16", "--model-config", "num_layers=1", "--batch-size", "16",
            "--out", run]  # fmt: skip
    assert _main(capsys, *argv, "--epochs", "1")[0] == 0
    text.unlink()
    assert _main(capsys, "train", "--out", run, "--resume", "--epochs", "2")[0] == 0
    code, out, _ = _main(capsys, "sample", "--out", run, "--prompt", "the ", "--length", "5")
    assert code == 0 and out.startswith("the ")


# ---- columns by name, classes, missing values, names -------------------------------------------


def test_eval_reads_a_csv_by_column_name_and_refuses_a_renamed_column(csv_run, tmp_path, capsys):
    run, csv = csv_run
    same = _write_csv(tmp_path / "same.csv", seed=5)
    shuffled = _write_csv(tmp_path / "shuffled.csv", seed=5, columns=("label", "c", "a", "b"))
    code, first, _ = _main(capsys, "eval", "--out", run, "--dataset", same)
    code2, second, _ = _main(capsys, "eval", "--out", run, "--dataset", shuffled)
    assert code == code2 == 0
    a, b = json.loads(first), json.loads(second)
    assert a["accuracy"] == b["accuracy"] and a["loss"] == b["loss"] and a["examples"] == 200
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(same.read_text().replace("a,b,c,label", "a,bee,c,label", 1))
    code, _, err = _main(capsys, "eval", "--out", run, "--dataset", renamed)
    assert code == 2 and "missing ['b']" in _one_line_error(err, "eval")


@pytest.mark.parametrize("kind", ["csv", "images"])
def test_a_single_class_dataset_is_refused_at_train(tmp_path, capsys, kind):
    if kind == "csv":
        data = tmp_path / "one.csv"
        data.write_text("a,label\n" + "".join(f"{i},cat\n" for i in range(30)))
    else:
        data = tmp_path / "pics"
        (data / "cat").mkdir(parents=True)
        for i in range(12):
            Image.new("L", (4, 4), 10 * i).save(data / "cat" / f"{i}.png")
    code, _, err = _main(capsys, *TRAIN, "--dataset", data, "--out", tmp_path / "run")
    line = _one_line_error(err, "train")
    assert code == 2 and "every example has the same class 'cat'" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_mean_is_reported_once_recorded_and_reused_by_predict(tmp_path, capsys):
    csv, run = _write_csv(tmp_path / "gaps.csv", gaps=(3, 10, 50)), tmp_path / "run"
    code, _, err = _main(capsys, *TRAIN, "--dataset", csv, "--out", run, "--epochs", "1")
    line = _one_line_error(err, "train")
    assert code == 2 and "missing=drop" in line and "target=NAME" not in line
    code, out, _ = _main(capsys, *TRAIN, "--dataset", csv, "--out", run, "--epochs", "1",
                         "--data-option", "missing=mean")  # fmt: skip
    assert code == 0 and out.count("3 missing value(s) in 3 row(s), missing=mean") == 1
    info = json.loads((run / "data_info.json").read_text())
    assert info["missing"]["cells"] == 3 and set(info["missing"]["fill"]) == {"a", "b", "c"}
    new = tmp_path / "new.csv"
    new.write_text("a,b,c\n3,,0\n-3,,0\n")
    code, out, _ = _main(capsys, "predict", "--out", run, "--input", new)
    assert code == 0 and len(out.splitlines()) == 3


def test_a_folder_named_like_a_built_in_set_does_not_shadow_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits" / "only").mkdir(parents=True)
    code, out, err = _main(capsys, "train", "--model", "mlp", "--dataset", "digits",
                           "--epochs", "1", "--out", tmp_path / "run")  # fmt: skip
    assert code == 0 and out.startswith("mlp on digits:"), err


def test_a_dataset_error_names_what_the_user_typed(tmp_path, capsys):
    code, _, err = _main(capsys, *TRAIN, "--dataset", "nosuchset", "--out", tmp_path / "r")
    line = _one_line_error(err, "train")
    assert code == 2 and line.startswith("jaxnn train: error: --dataset nosuchset: unknown")
    assert "load" not in line.split("--dataset nosuchset")[1][:20]
    csv = _write_csv(tmp_path / "d.csv")
    code, _, err = _main(capsys, *TRAIN, "--dataset", csv, "--data-option", "colour=red",
                         "--out", tmp_path / "r")  # fmt: skip
    line = _one_line_error(err, "train")
    assert code == 2 and "load(" not in line and "unknown option(s) ['colour']" in line
