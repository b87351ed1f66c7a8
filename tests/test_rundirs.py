"""Run directories: every file contained, one lock per run, runs never overwritten, every flag
checked before any work, a full disk in one line, and what a user reads (issues 19 and 20).

Each test writes its own data and run directories under ``tmp_path``; a sentinel file outside
the run must survive byte-identical wherever a link is planted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxnn import _contained
from jaxnn.app import cli, rundir, scores, upfront
from jaxnn.errors import UserError
from jaxnn.train.logger import MetricsLogger, format_duration, format_record, read_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "mlp", "--dataset", "synthetic:moons", "--batch-size", "64", "--no-progress"]
SENTINEL = b"outside the run: must survive\n"


def _main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(err: str, command: str = "train") -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"jaxnn {command}: error: ") and "Traceback" not in err, err
    return lines[0]


def _sentinel(tmp_path) -> Path:
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_bytes(SENTINEL)
    return victim


def _train(capsys, run, *extra, epochs=2):
    code, out, err = _main(capsys, "train", *TINY, "--epochs", epochs, "--out", run, *extra)
    assert code == 0, err
    return out


# 1. Containment ------------------------------------------------------------------------------

OLD_TEMPORARY_NAMES = (
    "summary.json.tmp", "config.json.tmp", "data_info.json.tmp", "metrics.jsonl.tmp",
    "curves.tmp.png",
)  # fmt: skip


def _plant(run: Path, victim: Path) -> None:
    run.mkdir(exist_ok=True)
    for name in OLD_TEMPORARY_NAMES:
        if not os.path.lexists(run / name):
            (run / name).symlink_to(victim)


def test_links_at_the_old_temporary_names_are_never_written_through(tmp_path, capsys):
    victim, run = _sentinel(tmp_path), tmp_path / "run"
    _plant(run, victim)
    _train(capsys, run)  # a fresh run
    assert victim.read_bytes() == SENTINEL
    _plant(run, victim)
    _train(capsys, run, "--resume", epochs=3)
    assert victim.read_bytes() == SENTINEL
    assert all((run / name).is_symlink() for name in OLD_TEMPORARY_NAMES)  # left alone
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]
    leftovers = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert sorted(leftovers) == sorted(n for n in OLD_TEMPORARY_NAMES if n.endswith(".tmp"))


@pytest.mark.parametrize("entry", ["tensorboard", "metrics.jsonl", "checkpoints", "config.json"])
@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_link_at_a_name_the_run_uses_is_refused_before_any_work(tmp_path, capsys, entry, resume):
    victim = _sentinel(tmp_path)
    run = tmp_path / "run"
    if resume:
        _train(capsys, run, epochs=1)
        _contained.remove_inside("test", run, run / entry)
    else:
        run.mkdir()
    target = victim.parent if entry in ("tensorboard", "checkpoints") else victim
    (run / entry).symlink_to(target)
    before = sorted(p.name for p in victim.parent.iterdir())
    argv = ["train", *TINY, "--epochs", "2", "--out", run] + (["--resume"] if resume else [])
    code, out, err = _main(capsys, *argv)
    line = _one_line_error(err)
    assert code == 2 and "is a symbolic link" in line and entry in line
    assert "epoch" not in out  # refused before any work
    assert victim.read_bytes() == SENTINEL
    assert sorted(p.name for p in victim.parent.iterdir()) == before


def test_the_library_writers_refuse_a_linked_folder_and_never_read_a_linked_file(tmp_path):
    victim = _sentinel(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "tensorboard").symlink_to(victim.parent, target_is_directory=True)
    with pytest.raises(UserError, match="is a symbolic link"):
        MetricsLogger(tmp_path / "a", verbose=False, curves=False)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(UserError, match="is a symbolic link"):
        read_metrics(tmp_path / "b" / "metrics.jsonl")
    with pytest.raises(UserError, match="is a symbolic link"):
        _contained.open_append(tmp_path / "b" / "metrics.jsonl")
    assert victim.read_bytes() == SENTINEL


def test_replacing_creates_a_new_file_of_a_random_name_and_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="midway"):
        with _contained.replacing(path) as f:
            f.write(b"half")
            names = sorted(p.name for p in tmp_path.iterdir())
            raise RuntimeError("midway")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    temporary = [n for n in names if n != "f.bin"]
    assert len(temporary) == 1 and temporary[0].startswith(".f.bin.") and len(temporary[0]) > 20


def test_a_linked_dataset_cache_folder_is_not_used_and_its_target_untouched(tmp_path, monkeypatch):
    from jaxnn.data import builtin

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "cache").symlink_to(elsewhere, target_is_directory=True)
    monkeypatch.setenv("JAXNN_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match="is a symbolic link"):
        arrays = builtin._mnist1d_arrays.__wrapped__(True)
    assert arrays[0].shape == (4000, 40) and list(elsewhere.iterdir()) == []


# 2. One lock per run directory ---------------------------------------------------------------


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}


def test_a_second_train_into_a_run_in_use_is_refused_with_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "jaxnn", "train", *TINY, "--epochs", "100000", "--out", str(run)]
    first = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoints").is_dir() or not read_metrics(run / "metrics.jsonl"):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.2)
        second = subprocess.run(
            [*argv[:3], "train", "--out", str(run), "--resume"], env=_env(),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        line = _one_line_error(second.stderr)
        assert second.returncode == 2
        assert f"in use by another `jaxnn train` (pid {first.pid})" in line
        assert first.poll() is None  # the first one trains on
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: the lock dies with the process
        first.wait(timeout=60)
    out = _train(capsys, run, "--resume", "--epochs", "1", epochs=1)  # no stale lock
    assert "resumed from step" in out


# 3. Every flag checked before any work -------------------------------------------------------

REFUSED = [
    (["--warmup-steps", "1000", "--schedule", "warmup_cosine"], "warmup_steps < the run's"),
    (["--warmup-steps", "3"], "warmup_steps applies to schedule 'warmup_cosine' only"),
    (["--clip-norm", "-1"], "expected clip_norm >= 0"),
    (["--clip-norm", "nan"], "expected clip_norm >= 0"),
    (["--augment", "blur"], "expected augment in none, shift"),
    (["--augment", "shift"], "--augment: unknown augmentation 'shift' for tabular data"),
    (["--devices", "4"], "--devices: expected at most"),
    (["--num-processes", "2"], "needs --coordinator HOST:PORT"),
    (["--num-processes", "2", "--coordinator", "127.0.0.1:1"], "needs --out RUN"),
    (["--resume", "--overwrite"], "expected --resume or --overwrite, got both"),
    (["--model-config", "hidden=(1000000,1000000)"], "need at least"),
]


@pytest.mark.parametrize(("extra", "expected"), REFUSED, ids=[" ".join(e) for e, _ in REFUSED])
def test_each_bad_train_flag_is_one_line_and_leaves_no_run_behind(
    tmp_path, capsys, monkeypatch, extra, expected
):
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(capsys, "train", *TINY, "--epochs", "2", *extra)
    assert code == 2 and expected in _one_line_error(err), err
    assert "epoch 1" not in out
    runs = tmp_path / "runs"
    assert not runs.exists() or [p.name for p in runs.iterdir()] == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--prompt", ""], "--prompt: expected some text to continue"),
        (["--length", str(10**12)], "--length: expected at most 100000 new tokens"),
    ],
)
def test_sample_refuses_an_empty_prompt_and_an_unbounded_length(tmp_path, capsys, extra, expected):
    code, _, err = _main(capsys, "sample", "--out", tmp_path, *extra)
    assert code == 2 and expected in _one_line_error(err, "sample")


def test_the_memory_estimate_counts_params_twice_and_the_optimizer_slots():
    from jaxnn import models
    from jaxnn.data import DatasetInfo
    from jaxnn.train.config import FitConfig

    model = models.build("mlp", DatasetInfo("t", "classification", (10,), 3), hidden=(20,))
    params = (10 * 20 + 20) + (20 * 3 + 3)
    adam = upfront.training_bytes(model, FitConfig(optimizer="adam").optimization)
    sgd = upfront.training_bytes(model, FitConfig(optimizer="sgd").optimization)
    assert adam["params"] == 4 * params and adam["optimizer"] >= 2 * 4 * params
    assert sgd["optimizer"] < 4 * params  # plain SGD keeps no slot per parameter
    assert adam["total"] == 2 * adam["params"] + adam["optimizer"] + 2 * adam["model_state"]
    with pytest.raises(UserError, match=r"need at least .* more than the 0.0 GB of test"):
        upfront.check_memory(model, FitConfig().optimization, available=(adam["total"] - 1, "test"))
    assert upfront.check_memory(model, FitConfig().optimization, available=(adam["total"], "t"))


def test_the_augmentations_a_config_accepts_are_those_the_data_module_has():
    from jaxnn.data import augment
    from jaxnn.train import config

    assert config._AUGMENTS == tuple(augment.AUGMENTS)


def test_config_json_with_an_unknown_key_or_a_list_for_a_dict_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    _train(capsys, run, epochs=1)
    saved = json.loads((run / "config.json").read_text())
    cases = [
        ({**saved, "epochz": 3}, "unknown key 'epochz'"),
        ({**saved, "fit": {**saved["fit"], "lr_typo": 1}}, "unknown key 'fit.lr_typo'"),
        ({**saved, "fit": list(saved["fit"])}, "expected field 'fit' of type dict, got list"),
        ({**saved, "data": {**saved["data"], "options": []}}, "'data.options' of type dict"),
        ({**saved, "history": [1]}, "'history' to be a list of objects"),
    ]
    for value, expected in cases:
        (run / "config.json").write_text(json.dumps(value))
        for argv in (["--config", run / "config.json", "--out", tmp_path / "new"],
                     ["--out", run, "--resume"]):  # fmt: skip
            code, _, err = _main(capsys, "train", *argv)
            assert code == 2 and expected in _one_line_error(err), (argv, err)


# 4. A full disk -------------------------------------------------------------------------------

FULL_DISK = """
import errno, os, sys
from jaxnn import _contained
from jaxnn.app import cli
calls = {"n": 0}
if sys.argv[1] == "checkpoint":  # the second save's JSON writes (each save writes three)
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as h
    real = h.JsonCheckpointHandler._save_fn
    async def refuse(self, x, directory):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
        return await real(self, x, directory)
    h.JsonCheckpointHandler._save_fn = refuse
else:  # the second line of metrics.jsonl
    real_write = os.write
    class Full:
        def __init__(self, f): self.f = f
        def write(self, data):
            calls["n"] += 1
            if calls["n"] > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)
        def __getattr__(self, name): return getattr(self.f, name)
    real_append = _contained.open_append
    def append(path):
        grown = real_append(path)
        grown._file = Full(grown._file)
        return grown
    _contained.open_append = append
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("where", ["checkpoint", "metrics"])
def test_a_full_disk_is_one_line_and_the_previous_checkpoint_resumes(tmp_path, capsys, where):
    script, run = tmp_path / "full_disk.py", tmp_path / "run"
    script.write_text(FULL_DISK)
    argv = [sys.executable, str(script), where, "train", *TINY, "--epochs", "3", "--out", str(run)]
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=300)
    line = _one_line_error(done.stderr)
    assert done.returncode == 2 and "No space left on device" in line, done.stderr
    steps = [p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(steps) == 1  # epoch 1's; epoch 2's save (or its metrics line) hit the full disk
    assert f"checkpoint step {steps[0]} " in line and "intact" in line
    out = _train(capsys, run, "--resume", epochs=3)
    assert "resumed from step" in out
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]


# 5. A resumed history is the checkpoint's -----------------------------------------------------


def test_a_torn_or_edited_history_is_rewritten_from_the_checkpoint_with_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    _train(capsys, run)
    path = run / "metrics.jsonl"
    original = read_metrics(path)
    edited = [{**original[0], "val_accuracy": 1.0}, original[1]]
    path.write_text("".join(json.dumps(r) + "\n" for r in edited) + '{"epoch": 3, "tor')
    out = _train(capsys, run, "--resume", epochs=3)
    assert "disagree with the checkpoint's" in out and "rewritten from the checkpoint" in out
    records = read_metrics(path)
    assert [r["epoch"] for r in records] == [1, 2, 3] and records[:2] == original
    out = _train(capsys, run, "--resume", "--epochs", "4", epochs=4)
    assert "disagree" not in out  # an untouched history says nothing


# 6. Runs never overwrite each other -----------------------------------------------------------


def test_an_out_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    _train(capsys, run, epochs=1)
    (run / "notes.txt").write_text("the user's own file")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, out, err = _main(capsys, "train", *TINY, "--epochs", "1", "--out", run)
    assert code == 2 and "holds a run already" in _one_line_error(err) and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    old_id = json.loads((run / "config.json").read_text())["run_id"]
    _train(capsys, run, "--overwrite", epochs=1)
    assert json.loads((run / "config.json").read_text())["run_id"] != old_id
    assert (run / "notes.txt").read_text() == "the user's own file"
    assert len(read_metrics(run / "metrics.jsonl")) == 1


def test_without_out_each_run_gets_a_fresh_directory_and_latest_follows(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, out, err = _main(capsys, "train", *TINY, "--epochs", "1")
        assert code == 0, err
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["latest", "mlp-moons-1", "mlp-moons-2"]
    assert (runs / "latest").is_symlink() and os.readlink(runs / "latest") == "mlp-moons-2"
    code, out, _ = _main(capsys, "eval", "--out", "runs/latest")
    assert code == 0 and json.loads(out)["examples"] > 0
    code, out, err = _main(capsys, "train", "--resume", "--epochs", "2")  # runs/latest
    assert code == 0 and "mlp-moons-2" in out, err
    assert len(read_metrics(runs / "mlp-moons-2" / "metrics.jsonl")) == 2
    assert len(read_metrics(runs / "mlp-moons-1" / "metrics.jsonl")) == 1
    code, _, err = _main(capsys, "train", *TINY, "--epochs", "1", "--clip-norm", "-1")
    assert code == 2 and os.readlink(runs / "latest") == "mlp-moons-2"  # a refusal moves nothing


def test_a_latest_that_is_a_real_directory_is_left_alone(tmp_path):
    runs = tmp_path / "runs"
    (runs / "latest").mkdir(parents=True)
    (runs / "latest" / "old.txt").write_text("an older run")
    new = rundir.fresh("mlp", "csv:/data/wine.csv", root=runs)
    assert new.name == "mlp-wine-1"
    assert "left as it is" in rundir.point_latest(new, root=runs)
    assert (runs / "latest" / "old.txt").read_text() == "an older run"


# 7. What a user looks at ------------------------------------------------------------------------


def test_each_epoch_records_its_wall_time_and_the_line_shows_it(tmp_path, capsys):
    run = tmp_path / "run"
    out = _train(capsys, run)
    records = read_metrics(run / "metrics.jsonl")
    for r in records:
        assert 0 < r["seconds"] <= r["wall_seconds"]  # wall: logging, curves and checkpoint too
    assert out.count("(wall ") == 2
    assert format_record({"epoch": 1, "seconds": 0.5, "wall_seconds": 1.25}).endswith(
        "0.50s (wall 1.25s)"
    )
    assert [format_duration(s) for s in (12.4, 75.3, 4000)] == ["12s", "1m15s", "1h06m"]


def test_eval_reports_per_class_scores_and_a_confusion_matrix_that_agree(tmp_path, capsys):
    run = tmp_path / "run"
    _train(capsys, run, epochs=3)
    code, out, err = _main(capsys, "eval", "--out", run)
    record = json.loads(out)
    confusion = np.asarray(record["confusion"])
    assert code == 0 and confusion.sum() == record["examples"]
    assert np.trace(confusion) / confusion.sum() == pytest.approx(record["accuracy"], abs=1e-6)
    for c, row in enumerate(record["per_class"]):
        assert row["support"] == confusion[c].sum()
        if confusion[:, c].sum():
            assert row["precision"] == pytest.approx(confusion[c, c] / confusion[:, c].sum())
        assert row["recall"] == pytest.approx(confusion[c, c] / confusion[c].sum())
    assert json.loads((run / scores.REPORT).read_text()) == record
    assert (run / scores.FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "precision" in err and "macro f1" in err


def test_eval_of_a_regression_reports_mae_and_r2(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = _main(
        capsys, "train", "--model", "mlp", "--dataset", "synthetic:sine", "--epochs", "3",
        "--no-progress", "--out", run,
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = _main(capsys, "eval", "--out", run)
    record = json.loads(out)
    assert code == 0 and record["mae"] > 0 and "per_class" not in record
    assert record["r2"] <= 1.0 and not (run / scores.FIGURE).exists()


def test_regression_scores_match_their_definitions():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.5, 2.0, 2.0, 4.0])
    got = scores.regression(pred, y)
    assert got["mae"] == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert got["r2"] == pytest.approx(1 - 1.25 / 5.0)
    assert scores.regression(pred, np.ones(4))["r2"] is None  # constant targets


def test_help_is_plain_text():
    import re

    parser = cli.build_parser()
    texts = [parser.format_help()]
    for action in parser._subparsers._group_actions:
        texts += [sub.format_help() for sub in action.choices.values()]
    for text in texts:
        assert not re.search(r"``|:func:|:class:|:mod:|\*\*[a-z]", text), text
