"""The command line off the happy path: a user's own files, run directories that stand on their
own, resume from the saved config, and one line (never a traceback) for every expected failure."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxnn.app import cli
from jaxnn.train import FitConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "train",
    "--model",
    "mlp",
    "--dataset",
    "synthetic:moons",
    "--epochs",
    "2",
    "--batch-size",
    "64",
]


def _main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"jaxnn {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _write_csv(path: Path, n=240, seed=0, labels=("no", "yes")):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.where(x[:, 0] + x[:, 1] > 0, labels[1], labels[0])
    lines = ["a,b,c,label"] + [
        f"{r[0]:.5f},{r[1]:.5f},{r[2]:.5f},{lab}" for r, lab in zip(x, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("moons") / "run"
    assert cli.main([*TINY, "--out", str(run)]) == 0
    return run


# ---------------------------------------------------------------------------------------------
# A user's own files, round trips through train, eval and predict.


def test_csv_train_then_eval_and_predict_after_the_csv_is_deleted(tmp_path, capsys):
    csv, run = tmp_path / "mine.csv", tmp_path / "run"
    _write_csv(csv)
    code, _, _ = _main(capsys, "train", "--dataset", csv, "--out", run, "--epochs", "3",
                       "--batch-size", "32")  # fmt: skip
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert (
        config["data"]["source"]["kind"] == "csv" and len(config["data"]["source"]["sha256"]) == 64
    )
    info = json.loads((run / "data_info.json").read_text())
    assert info["class_names"] == ["no", "yes"] and info["normalization"]["per"] == "feature"
    code, before, table = _main(capsys, "eval", "--out", run)
    copy = tmp_path / "later.csv"
    copy.write_bytes(csv.read_bytes())
    csv.unlink()
    code, out, err = _main(capsys, "eval", "--out", run)  # from the run's snapshot
    assert code == 0 and out == before and err == table  # the same scores, no warning
    code, out, _ = _main(capsys, "eval", "--out", run, "--dataset", copy)
    scored = json.loads(out)
    assert code == 0 and scored["examples"] == 240 and scored["accuracy"] > 0.8
    new = tmp_path / "new.csv"
    new.write_text("c,b,a\n0,3,3\n0,-3,-3\n")  # columns by name, in another order, no label
    code, out, _ = _main(capsys, "predict", "--out", run, "--input", new)
    rows = out.strip().splitlines()
    assert code == 0 and rows[0] == "id,prediction,p_no,p_yes"
    assert rows[1].startswith("0,yes,") and rows[2].startswith("1,no,")


def test_eval_maps_a_new_files_class_names_to_the_runs_class_ids(tmp_path, capsys):
    csv, run = tmp_path / "mine.csv", tmp_path / "run"
    _write_csv(csv)
    assert cli.main(["train", "--dataset", str(csv), "--out", str(run), "--epochs", "3",
                     "--batch-size", "32"]) == 0  # fmt: skip
    capsys.readouterr()
    only_yes = tmp_path / "only_yes.csv"
    lines = csv.read_text().splitlines()
    only_yes.write_text("\n".join([lines[0]] + [r for r in lines[1:] if r.endswith("yes")]) + "\n")
    code, out, _ = _main(capsys, "eval", "--out", run, "--dataset", only_yes)
    assert code == 0 and json.loads(out)["accuracy"] > 0.8  # "yes" is still class 1


def test_image_folder_train_then_predict(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, value in (("dark", 40), ("light", 215)):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(30):
            pixels = np.clip(value + rng.normal(0, 20, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / name / f"{i}.png")
    run, images = tmp_path / "run", f"images:{tmp_path / 'imgs'}"
    code, _, _ = _main(capsys, "train", "--model", "cnn", "--dataset", images, "--epochs", "3",
                       "--batch-size", "16", "--out", run)  # fmt: skip
    assert code == 0
    probe = tmp_path / "probe"
    probe.mkdir()
    Image.fromarray(np.full((8, 8), 230, np.uint8)).save(probe / "a.png")
    code, out, _ = _main(capsys, "predict", "--out", run, "--input", probe, "--format", "jsonl")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and row["prediction"] == "light" and row["id"].endswith("a.png")


def test_custom_text_language_model_then_sample_and_predict_the_next_token(tmp_path, capsys):
    text = tmp_path / "book.txt"
    text.write_text("the cat sat on the mat. " * 200)
    run = tmp_path / "run"
    code, _, _ = _main(capsys, "train", "--model", "transformer", "--dataset", f"text:{text}",
                       "--data-option", "seq_len=16", "--model-config", "dim=32",
                       "--model-config", "num_layers=1", "--epochs", "2", "--batch-size", "32",
                       "--lr", "3e-3", "--out", run)  # fmt: skip
    assert code == 0
    text.unlink()  # the tokenizer is saved with the run
    code, out, _ = _main(capsys, "sample", "--out", run, "--prompt", "the c", "--length", "12",
                         "--temperature", "0")  # fmt: skip
    assert code == 0 and out.startswith("the c") and len(out.rstrip("\n")) == 17
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the ca\nthe cat sat on the ma\n")
    code, out, _ = _main(capsys, "predict", "--out", run, "--input", prompts, "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["prompt"] for r in rows] == ["the ca", "the cat sat on the ma"]
    assert rows[0]["prediction"] == "t" and 0 < rows[0]["probability"] <= 1


def test_a_gru_language_model_on_text_trains_and_samples(tmp_path, capsys):
    text = tmp_path / "book.txt"
    text.write_text("the cat sat on the mat. " * 200)
    run = tmp_path / "gru"
    code, _, err = _main(capsys, "train", "--model", "rnn", "--dataset", f"text:{text}",
                         "--data-option", "seq_len=16", "--model-config", "hidden=(32,)",
                         "--epochs", "2", "--batch-size", "32", "--lr", "1e-2",
                         "--out", run)  # fmt: skip
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert (
        config["model_config"]["task"] == "language_model"
        and config["model_config"]["cell"] == "gru"
    )
    assert _summary(run)["best_val_accuracy"] > 0.5  # next characters of a repeated sentence
    code, out, _ = _main(capsys, "sample", "--out", run, "--prompt", "the c", "--length", "12",
                         "--temperature", "0")  # fmt: skip
    assert code == 0 and out.startswith("the c") and len(out.rstrip("\n")) == 17
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the ca\n")
    code, out, _ = _main(capsys, "predict", "--out", run, "--input", prompts, "--format", "jsonl")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and row["prediction"] == "t"


# ---------------------------------------------------------------------------------------------
# Resume from the run directory, --config.


def test_resume_with_no_flags_equals_the_uninterrupted_run(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert cli.main([*TINY[:5], "--epochs", "4", "--batch-size", "64", "--out", str(straight)]) == 0
    assert cli.main([*TINY[:5], "--epochs", "2", "--batch-size", "64", "--out", str(split)]) == 0
    assert cli.main(["train", "--out", str(split), "--resume", "--epochs", "4"]) == 0
    assert _summary(split)["params_sha256"] == _summary(straight)["params_sha256"]
    history = json.loads((split / "config.json").read_text())["history"]
    assert history[-1]["resume_changed"] == {"epochs": [2, 4]}
    assert cli.main(["train", "--out", str(split), "--resume"]) == 0  # nothing left to do
    assert _summary(split)["params_sha256"] == _summary(straight)["params_sha256"]


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--dataset", "synthetic:xor"),
        ("--model", "cnn"),
        ("--model-config", "hidden=(64,)"),
        ("--data-option", "n=500"),
        ("--seed", "3"),
        ("--batch-size", "32"),
        ("--batch-size", "128"),  # the default, yet given: it changes the saved 64
        ("--optimizer", "sgd"),
        ("--lr", "0.5"),
        ("--schedule", "cosine"),
        ("--weight-decay", "0.1"),
        ("--augment", "noise"),
    ],
)
def test_resume_refuses_a_change_of_what_is_trained_and_names_the_field(
    moons_run, capsys, flag, value
):
    code, _, err = _main(capsys, "train", "--out", moons_run, "--resume", flag, value)
    line = _one_line_error(err, "train")
    assert code == 2 and f"--resume: {flag}" in line and "saved" in line and "given" in line


def test_resume_accepts_flags_given_with_their_saved_values(moons_run):
    argv = ["train", "--out", str(moons_run), "--resume", "--batch-size", "64", "--seed", "0",
            "--model-config", "hidden=(128,)"]  # fmt: skip
    run, fit_cfg, overrides, _, history = cli._resolve_train(cli.build_parser().parse_args(argv))
    assert (run.model, run.dataset, fit_cfg.batch_size, fit_cfg.epochs) == (
        "mlp", "synthetic:moons", 64, 2
    )  # fmt: skip
    assert list(overrides["hidden"]) == [128] and history == []


def test_a_run_saved_before_last_batch_existed_resumes_dropping_its_last_batch(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    fit = {k: v for k, v in dataclasses.asdict(FitConfig()).items() if k != "last_batch"}
    config = {"model": "mlp", "model_config": {}, "dataset": "synthetic:moons", "fit": fit}
    (run / "config.json").write_text(json.dumps(config))
    argv = ["train", "--out", str(run), "--resume"]
    _, fit_cfg, _, _, _ = cli._resolve_train(cli.build_parser().parse_args(argv))
    assert fit_cfg.last_batch == "drop" and FitConfig().last_batch == "train"


@pytest.mark.parametrize("flag,value", [("--patience", "3"), ("--no-progress", None)])
def test_resume_allows_the_safe_fields(tmp_path, capsys, flag, value):
    run = tmp_path / "run"
    assert cli.main([*TINY, "--out", str(run)]) == 0
    code, _, err = _main(
        capsys, "train", "--out", run, "--resume", flag, *([value] if value else [])
    )
    assert code == 0, err


def test_resume_may_switch_remat_on_and_records_it(tmp_path, capsys):
    # remat changes how the step computes its gradient, not the gradient: it may change on resume
    run = tmp_path / "run"
    deep = ["--model-config", "hidden=(16,16,16)"]
    assert cli.main([*TINY, *deep, "--out", str(run)]) == 0
    code, out, _ = _main(
        capsys, "train", "--out", run, "--resume", "--epochs", "3", "--model-config", "remat=true"
    )
    assert code == 0, out
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"]["remat"] is True and config["model_config"]["hidden"] == [16] * 3
    assert config["history"][-1]["resume_changed"] == {
        "epochs": [2, 3],
        "model_config": [{"remat": False}, {"remat": True}],
    }
    code, _, err = _main(
        capsys, "train", "--out", run, "--resume", "--model-config", "remat=false",
        "--model-config", "hidden=(8,)",
    )  # fmt: skip
    assert code == 2 and "--resume: --model-config changes what" in _one_line_error(err, "train")


def test_config_reproduces_the_run(moons_run, tmp_path, capsys):
    again = tmp_path / "again"
    code, _, _ = _main(capsys, "train", "--config", moons_run / "config.json", "--out", again)
    assert code == 0
    assert _summary(again)["params_sha256"] == _summary(moons_run)["params_sha256"]
    first, second = (json.loads((r / "config.json").read_text()) for r in (moons_run, again))
    assert first["run_id"] != second["run_id"] and first["fit"] == second["fit"]


def test_bare_train_starts_from_the_models_recipe(tmp_path):
    args = cli.build_parser().parse_args(["train", "--model", "cnn", "--dataset", "mnist1d"])
    _, fit_cfg, overrides, _, _ = cli._resolve_train(args)
    from jaxnn import models

    recipe = models.recipe("cnn", "mnist1d")
    assert recipe and all(
        getattr(fit_cfg, k) == v for k, v in recipe.items() if k != "model_config"
    )
    args = cli.build_parser().parse_args(["train", "--model", "cnn", "--dataset", "mnist1d",
                                          "--epochs", "2"])  # fmt: skip
    assert cli._resolve_train(args)[1].epochs == 2  # a flag beats the recipe
    args = cli.build_parser().parse_args(["train", "--model", "cnn", "--dataset", "mnist1d",
                                          "--epochs", "20"])  # fmt: skip
    assert cli._resolve_train(args)[1].epochs == 20  # even at the field's default (the recipe: 50)


# ---------------------------------------------------------------------------------------------
# One line for every expected failure.


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = _main(capsys, *TINY, "--out", tmp_path / "f")
    assert code == 2 and "got a file" in _one_line_error(err, "train")


@pytest.mark.parametrize(
    "argv,expect",
    [
        (["--seed", str(2**70)], "expected seed in [0, 2**32 - 1]"),
        (["--data-option", "n=abc"], "synthetic:moons"),
        (["--data-option", "colour=red"], "unknown option"),
        (["--model-config", "num_classes=1"], "expected a model with 2 outputs"),
        (["--model-config", "hidden"], "expected KEY=VALUE"),
        (["--optimizer", "adam", "--weight-decay", "0.1"], "use 'adamw'"),
    ],
)
def test_bad_train_input_is_one_line(tmp_path, capsys, argv, expect):
    code, _, err = _main(capsys, *TINY, "--out", tmp_path / "run", *argv)
    assert code == 2 and expect in _one_line_error(err, "train")


def test_model_config_takes_true_and_false(tmp_path, capsys):
    argv = ["--model", "cnn", "--dataset", "mnist1d", "--model-config", "batch_norm=true"]
    args = cli.build_parser().parse_args(["train", *argv])
    assert cli._resolve_train(args)[2]["batch_norm"] is True


@pytest.mark.parametrize(
    "content,expect",
    [
        ("{not json", "config.json:1: expected the run's config as JSON"),
        ('{"model": "mlp"}', "expected field 'model_config'"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_a_garbage_config_json_names_the_file(moons_run, tmp_path, capsys, content, expect):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(content)
    for argv in (["eval", "--out", run], ["train", "--out", run, "--resume"]):
        code, _, err = _main(capsys, *argv)
        assert code == 2 and expect in _one_line_error(err, argv[0])


def test_eval_of_a_run_without_checkpoints_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main([*TINY, "--out", str(run), "--no-checkpoint"]) == 0
    code, _, err = _main(capsys, "eval", "--out", run)
    assert code == 2 and "checkpoint" in _one_line_error(err, "eval")


def test_eval_of_a_run_that_diverged_in_epoch_one_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main([*TINY, "--out", str(run), "--lr", "1e30", "--optimizer", "sgd"])
    assert code == 1 and _summary(run)["stopped_reason"] == "diverged"
    code, _, err = _main(capsys, "eval", "--out", run)
    assert code == 2 and "checkpoint" in _one_line_error(err, "eval")


@pytest.mark.parametrize(
    "argv,expect",
    [
        (["--temperature", "nan"], "--temperature: expected a number >= 0"),
        (["--temperature", "-1"], "--temperature: expected a number >= 0"),
        (["--temperature", "inf"], "--temperature: expected a number >= 0"),
        (["--length", "0"], "--length: expected a positive number"),
    ],
)
def test_sample_rejects_bad_numbers(moons_run, capsys, argv, expect):
    code, _, err = _main(capsys, "sample", "--out", moons_run, *argv)
    assert code == 2 and expect in _one_line_error(err, "sample")


def test_eval_writes_strict_json(moons_run, capsys):
    code, out, _ = _main(capsys, "eval", "--out", moons_run, "--split", "test")
    assert code == 0
    json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def _cli(*argv, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kwargs = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.Popen([sys.executable, "-m", "jaxnn", *map(str, argv)], env=env, text=True,
                            **kwargs)  # fmt: skip


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_exit_with_a_resume_hint(tmp_path, sig, code):
    run = tmp_path / "run"
    proc = _cli(*TINY[:5], "--epochs", "1000", "--batch-size", "16", "--out", run)
    deadline = time.time() + 120
    while time.time() < deadline and not any(
        p.name.isdigit() for p in (run / "checkpoints").glob("[0-9]*")
    ):
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and f"jaxnn train --out {run} --resume" in err
    resumed = _cli("train", "--out", run, "--resume", "--epochs", "3")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode in (0, 2), err  # done, or refused if the kill came after epoch 3
    assert "Traceback" not in err and "Event loop is closed" not in err


_BURN = "import time\nwhile True:\n    sum(i * i for i in range(10000))\n"


@pytest.mark.parametrize(
    "delays", [(0.0, 2.0), pytest.param((0.0, 0.2, 0.5, 1.0, 2.0, 4.0), marks=pytest.mark.slow)]
)
def test_sigterm_ends_training_at_any_moment_while_the_cpu_is_busy(tmp_path, delays):
    """A signal ``delay`` seconds after the data is loaded (compiling, the first epochs, a save),
    with two busy processes beside: the process always ends within seconds with 143 (a handler
    that raised could have its exception swallowed by JAX's GC callback, and training went on)."""
    burners = [subprocess.Popen([sys.executable, "-c", _BURN]) for _ in range(2)]
    try:
        for i, delay in enumerate(delays):
            run = tmp_path / f"run{i}"
            proc = _cli(*TINY[:5], "--epochs", "100000", "--batch-size", "16", "--out", run)
            first = proc.stdout.readline()  # "mlp on synthetic:moons: ...", printed before fit
            assert first.startswith("mlp on"), first + proc.communicate(timeout=60)[1]
            time.sleep(delay)
            proc.send_signal(signal.SIGTERM)
            sent = time.time()
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 143, (delay, err)
            assert time.time() - sent < 30, (delay, time.time() - sent)
            assert "Traceback" not in err and "Exception ignored" not in err, err
            assert "terminated (SIGTERM)" in err, err
    finally:
        for b in burners:
            b.kill()
            b.wait()


def test_a_log_file_gets_one_line_per_epoch_and_no_progress_frames(tmp_path):
    log = tmp_path / "log"
    with log.open("w") as f:
        proc = _cli(*TINY, "--out", tmp_path / "run", stdout=f, stderr=subprocess.STDOUT)
        proc.communicate(timeout=300)
    text = log.read_text()
    assert proc.returncode == 0 and "\r" not in text
    assert sum(line.startswith("epoch ") for line in text.splitlines()) == 2


def test_a_closed_pipe_gives_no_traceback():
    proc = _cli("book", stdout=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_version_flag_prints_the_version(capsys):
    from jaxnn import __version__

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"jaxnn {__version__}"


def test_train_help_lists_defaults_choices_and_the_recipe(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # whatever the terminal's width
    assert "one of sgd, momentum, nesterov, adam, adamw" in text
    assert "(default: 128)" in text and "cnn on mnist1d:" in text
