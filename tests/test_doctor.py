"""Tests for the doctor (the engine jaxnn.diagnostics.doctor and the command jaxnn.app.doctor):
the fault-injection suite of Chapter 14.

Each fault is injected through jaxnn.data.corrupt or a deliberately bad setting; the doctor must
flag it with the right check and rank that check first, and the same setup without the fault
must come out clean. The quick tests run the checks that could fire on each fault; the slow
twins run the whole checklist.
"""

import argparse
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn.app import doctor
from jaxnn.data import Dataset, load, pipeline
from jaxnn.data.corrupt import class_imbalance, label_noise
from jaxnn.errors import UserError
from jaxnn.models import build
from jaxnn.train import FitConfig, fit


@functools.cache
def _digits():
    return pipeline.standardize(load("digits", seed=0))[0]


def _mlp(**overrides):
    return build("mlp", _digits().info, **overrides)


def _shuffled_labels():
    s = _digits()  # a uniform other class for 9 in 10 labels: y is independent of x
    return {
        "model": _mlp(),
        "splits": s.replace(train=label_noise(s.train, 0.9, num_classes=10, seed=0)[0]),
    }


def _test_duplicates():
    s = _digits()
    test = s.test.unseal("test fixture: plant duplicates")
    x = test.x.copy()
    x[:40] = s.train.x[:40]  # 40 of 360 test examples are training examples
    return {"model": _mlp(), "splits": s.replace(test=Dataset(x, test.y))}


def _dead_relus():
    model = _mlp(hidden=(64, 64))
    params, state = model.init(jax.random.key(0))
    x, y = _digits().train.x[:256], _digits().train.y[:256]

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(
            model.apply(p, x, state=state)[0], y
        ).mean()

    huge_step = jax.tree.map(lambda p, g: p - 100.0 * g, params, jax.jit(jax.grad(loss))(params))
    return {"model": model, "splits": _digits(), "params": huge_step}


def _sharp_log_softmax_loss(outputs, y):
    # a temperature-sharpened cross-entropy written as log(softmax(.)): the softmax underflows
    # to exact zeros and the log of zero is -inf
    p = jax.nn.softmax(outputs / 1e-3)
    return -jnp.log(jnp.take_along_axis(p, y[:, None], axis=1))[:, 0]


def _imbalanced():
    s = _digits()
    return {"model": _mlp(), "splits": s.replace(train=class_imbalance(s.train, 0.2, seed=0)[0])}


# fault -> (setup, the checks that may rank first, the checks the quick test runs: the fault's
# own and those it could also set off, so that the ranking between them is tested)
FAULTS = {
    "shuffled_labels": (_shuffled_labels, {"labels"}, ("labels",)),
    "train_test_duplicates": (_test_duplicates, {"leakage"}, ("leakage",)),
    "lr_far_too_high": (
        lambda: {"model": _mlp(), "splits": _digits(), "lr": 10.0},
        {"lr_range"},
        ("tiny_overfit", "lr_range"),
    ),
    "lr_far_too_low": (
        lambda: {"model": _mlp(), "splits": _digits(), "lr": 1e-7},
        {"lr_range"},
        ("lr_range",),
    ),
    "deep_sigmoid_stack": (
        lambda: {"model": _mlp(hidden=(32,) * 8, activation="sigmoid"), "splits": _digits()},
        {"gradients", "activations"},
        ("gradients", "activations"),
    ),
    "dead_relus_after_one_huge_step": (
        _dead_relus,
        {"activations"},
        ("gradients", "activations"),
    ),
    "log_of_zero_in_custom_loss": (
        lambda: {"model": _mlp(), "splits": _digits(), "loss_fn": _sharp_log_softmax_loss},
        {"nonfinite"},
        ("nonfinite", "gradients"),
    ),
    "model_too_small": (
        lambda: {"model": _mlp(hidden=(1,)), "splits": _digits()},
        {"tiny_overfit"},
        ("tiny_overfit", "gradients"),
    ),
    "class_imbalance": (_imbalanced, {"class_balance"}, ("labels", "class_balance")),
}


@functools.cache
def _fault_report(fault, full=False):
    setup, _, checks = FAULTS[fault]
    return doctor.diagnose(**setup(), checks=None if full else checks, progress=False)


@functools.cache
def _clean_report():
    # the clean control of every fault: the default MLP on the clean data with the default
    # learning rate, loss and initialization, through the whole pre-training checklist
    return doctor.diagnose(_mlp(), _digits(), progress=False)


def test_the_clean_control_passes_the_whole_pre_training_checklist():
    report = _clean_report()
    assert report.ok, report.text()
    assert [f.check for f in report.findings] == [
        c for c in doctor.CHECKS if c not in doctor.RUN_CHECKS
    ]
    assert all(f.verdict not in ("error", "skipped") for f in report.findings)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_doctor_flags_the_injected_fault_with_the_right_check_and_ranks_it_first(fault):
    _, expected, checks = FAULTS[fault]
    report = _fault_report(fault)
    assert not report.ok and report.top.check in expected, report.text()
    clean = {f.check: f for f in _clean_report().findings}
    assert not any(clean[c].flagged for c in checks)


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_full_checklist_ranks_the_injected_fault_first(fault):
    _, expected, _ = FAULTS[fault]
    report = _fault_report(fault, full=True)
    assert report.top is not None and report.top.check in expected, report.text()


def test_lr_fault_names_a_lower_rate_in_the_fix_and_the_failed_tiny_overfit_comes_second():
    report = _fault_report("lr_far_too_high")
    assert [f.check for f in report.ranked] == ["lr_range", "tiny_overfit"]
    suggested = report.details["lr_range"].suggested_lr
    assert suggested < 1.0 and f"{suggested:.2g}" in report.top.fix
    assert "lower the learning rate" in report.top.fix


def test_nonfinite_finding_names_the_log_and_the_examples():
    report = _fault_report("log_of_zero_in_custom_loss")
    details = report.details["nonfinite"]
    assert details.op == "log" and details.layer == "['dense_1']"
    assert details.stage == "forward" and len(details.examples) > 0


def test_preflight_runs_the_cheap_checks_and_stops_on_leakage():
    setup = _test_duplicates()
    report = doctor.preflight(setup["model"], setup["splits"], optax.adam(1e-3))
    assert [f.check for f in report.findings] == list(doctor.PREFLIGHT)
    assert not report.ok and report.top.check == "leakage"
    assert "deduplicate" in report.text()


def test_diagnose_rejects_unknown_checks():
    with pytest.raises(UserError, match="expected checks from"):
        doctor.diagnose(_mlp(), _digits(), checks=("labels", "vibes"), progress=False)


# ---------------------------------------------------------------------------------------------
# finished runs: the fit verdict from the curves


def _few_examples(per_class: int):
    s = _digits()
    rows = np.concatenate([np.flatnonzero(s.train.y == c)[:per_class] for c in range(10)])
    return s.replace(train=s.train.take(np.sort(rows)))


def _run(out, model, splits, **cfg):
    cfg = {"epochs": 4, "batch_size": 50, "lr": 3e-3, "progress": False, "seed": 0, **cfg}
    fit(model, splits, FitConfig(**cfg), out_dir=out, verbose=False)
    return out


def _subset():
    s = _digits()
    return s.replace(train=s.train.take(range(400)))


RUNS = {  # name -> (model, splits, FitConfig overrides), trained on first use
    "clean": (lambda: _mlp(hidden=(64,)), _subset, {}),
    "big_model_few_examples": (
        lambda: _mlp(hidden=(512, 512)),
        lambda: _few_examples(10),
        {"batch_size": 20},
    ),
    "model_too_small": (lambda: _mlp(hidden=(1,)), _subset, {}),
    "lr_far_too_high": (lambda: _mlp(hidden=(64,)), _subset, {"lr": 10.0}),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")

    @functools.cache
    def get(name):
        model, splits, overrides = RUNS[name]
        return _run(root / name, model(), splits(), **overrides)

    return get


RUN_CHECKS = ("tiny_overfit", "fit", "classes")


def test_examine_run_calls_a_big_model_on_few_examples_overfitting(runs):
    report = doctor.examine_run(runs("big_model_few_examples"), checks=RUN_CHECKS, progress=False)
    assert report.top.check == "fit" and report.top.verdict == "overfitting", report.text()
    assert "regularization" in report.top.fix


@pytest.mark.slow  # quick twin: the model_too_small fault before training
def test_examine_run_ranks_the_failed_tiny_overfit_of_a_one_unit_model_first(runs):
    report = doctor.examine_run(runs("model_too_small"), checks=RUN_CHECKS, progress=False)
    assert report.top.check == "tiny_overfit", report.text()
    assert {f.check: f.verdict for f in report.findings}["fit"] == "underfitting"


def test_examine_run_passes_the_clean_run_and_writes_doctor_json_and_figures(runs):
    report = doctor.examine_run(runs("clean"), checks=RUN_CHECKS, progress=False)
    assert report.ok, report.text()
    saved = json.loads((runs("clean") / "doctor.json").read_text())
    assert saved["ok"] is True and [f["check"] for f in saved["findings"]] == list(RUN_CHECKS)
    for finding in saved["findings"]:  # each check's report, its message the finding's evidence
        details = saved["details"][finding["check"]]
        assert details["verdict"] == finding["verdict"] and details["ok"] is True
        assert details["message"] == finding["evidence"]
    assert saved["context"]["summary"]["stopped_reason"] == "completed"


@pytest.mark.slow
def test_examine_run_full_checklist_passes_the_clean_run(runs):
    report = doctor.examine_run(runs("clean"), progress=False)
    assert report.ok, report.text()
    for name in ("doctor.json", "doctor_lr.png", "doctor_grads.png", "doctor_activations.png"):
        assert (runs("clean") / name).stat().st_size > 0


@pytest.mark.slow
def test_examine_run_of_a_run_with_lr_10_ranks_its_divergence_then_the_lr_range_test(runs):
    report = doctor.examine_run(runs("lr_far_too_high"), progress=False)
    # the run diverged: that comes first, and the learning rate that made it second
    first, second = report.ranked[:2]
    assert (first.check, first.verdict) == ("divergence", "diverged"), report.text()
    assert (second.check, second.verdict) == ("lr_range", "diverges"), report.text()


# ---------------------------------------------------------------------------------------------
# the command line


def _parse(argv):
    parser = argparse.ArgumentParser(prog="jaxnn")
    doctor.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_examines_a_model_before_training_and_writes_the_report(tmp_path, capsys):
    args = _parse(
        [
            "doctor",
            "--model",
            "mlp",
            "--dataset",
            "digits",
            "--lr",
            "1e-7",
            "--checks",
            "lr_range,activations",
            "--report-dir",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert doctor.run(args) == 1
    out = capsys.readouterr().out
    assert "1. lr_range: too_low" in out and "raise the learning rate" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["doctor.json", "doctor_activations.png", "doctor_lr.png"]


def test_cli_exits_0_on_a_clean_run_directory(runs, tmp_path, capsys):
    args = _parse(
        ["doctor", "--out", str(runs("clean")), "--checks", "fit", "--report-dir", str(tmp_path)]
    )
    assert doctor.run(args) == 0
    assert "no problem found" in capsys.readouterr().out
    assert (tmp_path / "doctor.json").exists()


def test_cli_says_what_to_pass_when_it_gets_neither_a_run_nor_a_model(tmp_path):
    with pytest.raises(UserError, match="expected --out RUN, or --model M and --dataset D"):
        doctor.run(_parse(["doctor", "--model", "mlp"]))
    with pytest.raises(UserError, match="expected a run directory with config.json"):
        doctor.run(_parse(["doctor", "--out", str(tmp_path)]))


def test_progress_is_one_line_per_check_on_stderr_when_it_is_not_a_terminal(capsys):
    doctor.diagnose(_mlp(), _digits(), checks=("class_balance", "leakage"), progress=True)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in err] == [
        "doctor [1/2] class_balance: healthy",
        "doctor [2/2] leakage: clean",
    ]


def test_write_report_replaces_links_in_the_report_dir_instead_of_writing_through_them(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("keep")
    report_dir = tmp_path / "run"
    report_dir.mkdir()
    for name in ("doctor.json", "doctor_activations.png"):
        (report_dir / name).symlink_to(outside / "victim")
    report = doctor.diagnose(
        _mlp(), _digits(), checks=("class_balance", "activations"), progress=False
    )
    written = doctor.write_report(report, report_dir)
    assert [p.name for p in written] == ["doctor.json", "doctor_activations.png"]
    assert (outside / "victim").read_text() == "keep"
    assert not any(p.is_symlink() for p in written)
    assert json.loads((report_dir / "doctor.json").read_text())["ok"] is True


# ---------------------------------------------------------------------------------------------
# user-shaped data: a 178-row wine CSV and a folder of 216 shape images, written by the test


@functools.cache
def _user_data():
    import tempfile
    from pathlib import Path

    from _small_data import write_shapes, write_wine

    root = Path(tempfile.mkdtemp(prefix="doctor-user-data-"))
    return {
        "wine": str(write_wine(root / "wine.csv")),
        "shapes": str(write_shapes(root / "shapes")),
    }


@functools.cache
def _user_splits(name):
    return pipeline.standardize(load(_user_data()[name], seed=0))[0]


def _user_model(name, small=False):
    info = _user_splits(name).info
    if name == "wine":
        return build("mlp", info)
    return build("cnn", info, **({"channels": (8, 8), "hidden": (32,)} if small else {}))


def _user_fault(name, fault, small):
    s = _user_splits(name)
    case = {"model": _user_model(name, small), "splits": s}
    c = s.info.num_classes
    if fault == "shuffled_labels":  # (C-1)/C of the labels moved to a uniform other class
        case["splits"] = s.replace(
            train=label_noise(s.train, (c - 1) / c, num_classes=c, seed=0)[0]
        )
    elif fault == "train_test_duplicates":
        test = s.test.unseal("test fixture: plant duplicates")
        x = test.x.copy()
        x[:8] = s.train.x[:8]
        case["splits"] = s.replace(test=Dataset(x, test.y))
    elif fault == "class_imbalance":
        case["splits"] = s.replace(train=class_imbalance(s.train, 0.2, seed=0)[0])
    elif fault == "lr_far_too_high":
        case["lr"] = 10.0
    elif fault == "lr_far_too_low":
        case["lr"] = 1e-7
    return case


USER_FAULTS = {  # fault -> (the check that must rank first, the checks the quick test runs)
    "shuffled_labels": ("labels", ("labels",)),
    "train_test_duplicates": ("leakage", ("leakage",)),
    "class_imbalance": ("class_balance", ("labels", "class_balance")),
    "lr_far_too_high": ("lr_range", ("labels", "tiny_overfit", "lr_range")),
    "lr_far_too_low": ("lr_range", ("lr_range",)),
}


@functools.cache
def _user_report(name, fault, full=False, small=False):
    checks = None if full else USER_FAULTS[fault][1] if fault else None
    setup = _user_fault(name, fault, small) if fault else {
        "model": _user_model(name, small), "splits": _user_splits(name)
    }  # fmt: skip
    return doctor.diagnose(**setup, checks=checks, progress=False)


@pytest.mark.parametrize("fault", list(USER_FAULTS))
def test_the_doctor_ranks_each_fault_first_on_a_wine_csv(fault):
    first, checks = USER_FAULTS[fault]
    report = _user_report("wine", fault)
    assert report.top is not None and report.top.check == first, report.text()
    clean = {f.check: f for f in _user_report("wine", None).findings}
    assert not any(clean[c].flagged for c in checks)


def test_the_clean_wine_csv_passes_the_whole_pre_training_checklist():
    report = _user_report("wine", None)
    assert report.ok, report.text()
    assert all(f.verdict not in ("error", "skipped") for f in report.findings)


def test_lr_10_on_the_wine_csv_is_flagged_first_as_diverging_in_training():
    # jaxnn doctor once said "lr 10 is below the loss minimum of the sweep at 10" and "no
    # problem found" here, while training at lr 10 diverged at step 1
    report = _user_report("wine", "lr_far_too_high")
    assert report.top.check == "lr_range" and report.top.verdict == "diverges", report.text()
    assert "lower the learning rate" in report.top.fix


@pytest.mark.parametrize("fault", ["shuffled_labels", "class_imbalance"])
def test_the_label_checks_on_an_image_folder_use_the_models_own_learning_signal(fault):
    # quick twin of the CNN image-folder table below, with a small CNN
    first, checks = USER_FAULTS[fault]
    report = _user_report("shapes", fault, small=True)
    # (an imbalance of 7 examples per minority class also leaves the probe below its threshold:
    # the skew, the cause, ranks first)
    assert report.top is not None and report.top.check == first, report.text()
    clean = _user_report("shapes", None, small=True)
    labels = clean.details["labels"]
    assert type(labels).__name__ == "LearningSignalReport" and labels.ok, clean.text()
    assert "no k-NN probe on images" in labels.message
    assert not any(f.flagged for f in clean.findings if f.check in checks)


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(USER_FAULTS))
def test_the_doctor_ranks_each_fault_first_on_an_image_folder(fault):
    report = _user_report("shapes", fault, full=True)
    assert report.top is not None and report.top.check == USER_FAULTS[fault][0], report.text()


@pytest.mark.slow
def test_the_clean_image_folder_passes_the_whole_pre_training_checklist_with_the_cnn():
    report = _user_report("shapes", None)
    assert report.ok, report.text()
    assert all(f.verdict not in ("error", "skipped") for f in report.findings)


# ---------------------------------------------------------------------------------------------
# a diverged run, and epochs as summary.json counts them


@pytest.fixture(scope="module")
def wine_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("wine-runs")
    splits = _user_splits("wine")
    for name, lr in (("diverged", 10.0), ("healthy", 1e-3)):
        cfg = {"epochs": 12, "batch_size": 16, "lr": lr, "progress": False, "seed": 0}
        fit(_user_model("wine"), splits, FitConfig(**cfg), out_dir=root / name, verbose=False,
            run_info={"data": {"options": {}, "normalize": True, "source": None}})  # fmt: skip
    return root


def _write_dataset_name(run, dataset):
    config = json.loads((run / "config.json").read_text())
    config["dataset"] = dataset  # the CSV the fixture trained on, as `jaxnn train` records it
    (run / "config.json").write_text(json.dumps(config))


def test_a_diverged_run_names_the_divergence_first(wine_runs):
    run = wine_runs / "diverged"
    _write_dataset_name(run, _user_data()["wine"])
    report = doctor.examine_run(run, checks=("classes", "divergence", "fit"), progress=False)
    assert report.top.check == "divergence" and report.top.verdict == "diverged", report.text()
    assert "training diverged at step" in report.top.evidence
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_reason"] == "diverged"


def test_the_fit_check_names_the_best_epoch_of_summary_json(wine_runs):
    run = wine_runs / "healthy"
    _write_dataset_name(run, _user_data()["wine"])
    report = doctor.examine_run(run, checks=("fit", "divergence"), progress=False)
    summary = json.loads((run / "summary.json").read_text())
    fit_report = report.details["fit"]
    assert fit_report.best_epoch == summary["best_epoch"] and fit_report.monitor == "val_accuracy"
    assert report.details["divergence"].verdict == "healthy"
    if fit_report.verdict == "healthy":
        assert f"best epoch {summary['best_epoch']} of 12 by val_accuracy" in fit_report.message
