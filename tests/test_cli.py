import json
import subprocess
import sys
from pathlib import Path

import pytest

from jaxnn.app import cli
from jaxnn.train import FitConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_config_field_is_a_flag():
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = {opt for action in train._actions for opt in action.option_strings}
    import dataclasses

    for cls in (cli.RunConfig, FitConfig):
        for field in dataclasses.fields(cls):
            assert "--" + field.name.replace("_", "-") in flags, field.name


def test_the_documented_train_flags_parse_into_the_configs():
    args = cli.build_parser().parse_args(
        [
            "train",
            "--model",
            "cnn",
            "--dataset",
            "digits",
            "--epochs",
            "3",
            "--batch-size",
            "32",
            "--lr",
            "0.01",
            "--optimizer",
            "sgd",
            "--seed",
            "7",
            "--out",
            "x",
            "--resume",
            "--scan",
            "--devices",
            "2",
        ]
    )
    run, fit_cfg, overrides, options, history = cli._resolve_train(args)
    assert (fit_cfg.epochs, fit_cfg.batch_size, fit_cfg.lr, fit_cfg.optimizer, fit_cfg.seed) == (
        3,
        32,
        0.01,
        "sgd",
        7,
    )
    assert fit_cfg.scan and fit_cfg.devices == 2 and run.resume and run.model == "cnn"
    assert overrides == {} and options == {} and history == []


def test_help_text_comes_from_the_field_docs():
    text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "early stopping after this many epochs" in text


def _main(*argv, capsys=None):
    code = cli.main(list(argv))
    return code, capsys.readouterr() if capsys else None


def test_unknown_model_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--model", "resnet", "--dataset", "digits"])
    assert exit_.value.code == 2
    assert "'mlp', 'cnn', 'rnn', 'transformer'" in capsys.readouterr().err


def test_unknown_dataset_is_a_clear_error(capsys, tmp_path):
    code, out = _main("train", "--dataset", "nope", "--out", str(tmp_path), capsys=capsys)
    assert code == 2 and "nope" in out.err and "mnist1d" in out.err


def test_unknown_model_config_key_lists_the_fields(capsys, tmp_path):
    code, out = _main(
        "train",
        "--dataset",
        "digits",
        "--model-config",
        "depth=3",
        "--out",
        str(tmp_path),
        capsys=capsys,
    )
    assert code == 2 and "depth" in out.err and "hidden" in out.err


def test_train_then_eval_reports_the_same_validation_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    code, _ = _main(
        "train",
        "--dataset",
        "digits",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--model-config",
        "hidden=(32,)",
        "--no-progress",
        "--out",
        str(out),
        capsys=capsys,
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    code, captured = _main("eval", "--out", str(out), capsys=capsys)
    assert code == 0
    evaluated = json.loads(captured.out.strip().splitlines()[-1])
    assert evaluated["accuracy"] == pytest.approx(summary["best_val_accuracy"], abs=1e-6)


@pytest.mark.checkout
def test_book_runs_the_checkouts_book_and_lists_fifteen_chapters(capfd):
    assert cli.main(["book"]) == 0  # runs `python -m experiments.book` in its own process
    assert len(capfd.readouterr().out.strip().splitlines()) == 15


@pytest.mark.checkout
def test_book_and_bench_forward_every_argument(capfd):
    assert cli.main(["book", "--help"]) == 0
    assert "python -m experiments" in capfd.readouterr().out
    assert cli.main(["bench", "--only", "resnet", "--quick"]) == 2
    err = capfd.readouterr().err
    assert "python -m benchmarks: error:" in err and "resnet" in err


@pytest.mark.checkout
@pytest.mark.parametrize(
    "command", ["", "train", "eval", "predict", "sample", "doctor", "export", "book", "bench"]
)
def test_help_is_plain_text(command, capfd):
    try:
        code = cli.main([*command.split(), "--help"])  # book and bench forward it
    except SystemExit as exit:  # argparse's own --help
        code = exit.code
    shown = capfd.readouterr().out
    assert code == 0
    assert "usage:" in shown and not any(m in shown for m in ("``", ":func:", ":class:", ":mod:"))


def test_book_and_bench_without_a_checkout_say_so_in_one_line(monkeypatch, capsys):
    from jaxnn.app import checkout

    monkeypatch.setattr(checkout, "checkout_root", lambda: None)
    for command in ("book", "bench"):
        code, out = _main(command, "build", capsys=capsys)
        assert code == 2 and out.out == ""
        (line,) = out.err.strip().splitlines()
        assert line.startswith(f"jaxnn {command}: error: ") and "source repository" in line


@pytest.mark.checkout
def test_python_dash_m_jaxnn_runs():
    done = subprocess.run(
        [sys.executable, "-m", "jaxnn", "book"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0 and "Backpropagation" in done.stdout


def test_sample_continues_the_prompt_with_the_requested_number_of_characters(tmp_path, capsys):
    out = tmp_path / "lm"
    code, _ = _main(
        "train",
        "--model",
        "transformer",
        "--dataset",
        "pydoc_text",
        "--data-option",
        "seq_len=32",
        "--data-option",
        "stride=2048",
        "--model-config",
        "dim=32",
        "--model-config",
        "num_layers=1",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--no-progress",
        "--out",
        str(out),
        capsys=capsys,
    )
    assert code == 0
    code, captured = _main(
        "sample", "--out", str(out), "--prompt", "def ", "--length", "40", capsys=capsys
    )
    assert code == 0
    text = captured.out.rstrip("\n")
    assert text.startswith("def ") and len(text) == len("def ") + 40


def test_sample_refuses_a_classifier_run(tmp_path, capsys):
    out = tmp_path / "mlp"
    _main(
        "train",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--no-progress",
        "--out",
        str(out),
        capsys=capsys,
    )
    code, captured = _main("sample", "--out", str(out), capsys=capsys)
    assert code == 2 and "expected a language-model run (transformer or rnn" in captured.err


def test_the_cli_standardizes_with_train_statistics_only(monkeypatch):
    import numpy as np

    from jaxnn import data
    from jaxnn.data import pipeline

    seen = {}
    real_fit = pipeline.Standardizer.fit

    def spy(x, **kwargs):
        seen["x"] = np.asarray(x)
        return real_fit(x, **kwargs)

    monkeypatch.setattr(pipeline.Standardizer, "fit", staticmethod(spy))
    splits = cli._load_data("digits", 0, {}, normalize=True)
    raw = data.load("digits", seed=0)
    np.testing.assert_array_equal(seen["x"], raw.train.x)  # fitted on the train split alone
    mean = splits.train.x.reshape(-1, splits.train.x.shape[-1]).mean(0)
    np.testing.assert_allclose(mean, 0.0, atol=1e-5)
    assert abs(float(splits.val.x.mean())) > 1e-4  # val is transformed, not refitted
