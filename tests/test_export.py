"""``jaxnn export`` on tiny trained runs: the run's best-validation model as a jaxnn model file or
a PyTorch state dict, the config beside it, nothing written through a link, one line for every
expected failure."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxnn import models, weights
from jaxnn.app import cli, export, predict

DIGITS_CNN = ["train", "--model", "cnn", "--dataset", "digits", "--epochs", "2"]
DIGITS_CNN += ["--model-config", "channels=(4,)", "--model-config", "hidden=(8,)"]
DIGITS_CNN += ["--model-config", "batch_norm=True", "--model-config", "dropout=0.0"]
PYDOC_LM = ["train", "--model", "transformer", "--dataset", "pydoc_text", "--epochs", "1"]
PYDOC_LM += ["--data-option", "seq_len=32", "--data-option", "stride=2048"]
PYDOC_LM += ["--model-config", "dim=16", "--model-config", "num_layers=1"]


def _train(tmp_path_factory, argv, name) -> Path:
    run = tmp_path_factory.mktemp(name) / "run"
    assert cli.main([*argv, "--batch-size", "64", "--no-progress", "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    return _train(tmp_path_factory, DIGITS_CNN, "digits")


def _export(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["export", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("jaxnn export: error: "), err
    return lines[0]


def _same_bits(tree_a, tree_b) -> bool:
    if jax.tree.structure(tree_a) != jax.tree.structure(tree_b):
        return False
    pairs = zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b), strict=True)
    return all(np.asarray(a).tobytes() == np.asarray(b).tobytes() for a, b in pairs)


def test_export_writes_a_model_file_of_the_best_params_and_the_config_beside_it(cnn_run, capsys):
    run = predict.load_run(cnn_run)
    count = len(weights.flatten((run.params, run.model_state)))
    code, out, err = _export(capsys, "--out", cnn_run)
    path, sidecar = cnn_run / "export" / "model.safetensors", cnn_run / "export" / "model.json"
    assert code == 0 and err == ""
    assert out == f"wrote {path} ({count} tensors) and {sidecar}\n"
    loaded = weights.load_model(path)
    assert loaded.model.cfg == run.model.cfg
    assert _same_bits((loaded.params, loaded.state), (run.params, run.model_state))
    meta = json.loads(sidecar.read_text())
    assert meta["layout"] == "jaxnn" and meta["weights"] == "model.safetensors"
    assert meta["run_config"] == json.loads((cnn_run / "config.json").read_text())
    assert meta["data_info"]["class_names"] == list(run.info.class_names)
    assert meta["model_config"]["channels"] == [4] and meta["model_config"]["batch_norm"]


def test_export_torch_writes_the_twins_names_with_the_runs_params_and_statistics(cnn_run, capsys):
    run = predict.load_run(cnn_run)
    keys = [e.torch for e in weights.torch_names(run.model)]
    code, out, _ = _export(capsys, "--out", cnn_run, "--format", "torch")
    path = cnn_run / "export" / "model.torch.safetensors"
    assert code == 0 and out.startswith(f"wrote {path} ({len(keys)} tensors) and ")
    tensors, meta = weights.read(path)
    assert sorted(tensors) == sorted(keys) and "features.1.num_batches_tracked" in keys
    assert meta["format"] == "pt" and meta["jaxnn.layout"] == "torch"
    params, state = weights.from_torch(run.model, tensors)
    assert _same_bits((params, state), (run.params, run.model_state))
    assert np.any(state["bn_0"]["var"] != 1.0)  # trained statistics, not the initial ones
    names = json.loads(path.with_name("model.torch.json").read_text())["names"]
    assert {
        "jaxnn": "state.bn_0.mean",
        "torch": "features.1.running_mean",
        "layout": "same",
    } in names


def test_the_torch_twin_loads_the_export_and_gives_the_runs_outputs(cnn_run, capsys):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    twins_torch = pytest.importorskip("benchmarks.twins_torch")  # the checkout's twin

    assert _export(capsys, "--out", cnn_run, "--format", "torch")[0] == 0
    run = predict.load_run(cnn_run)
    twin = twins_torch.build_torch_twin(run.model).eval()
    twin.load_state_dict(safetensors_torch.load_file(cnn_run / "export/model.torch.safetensors"))
    x = np.random.default_rng(0).standard_normal((16, 8, 8, 1)).astype(np.float32)
    with torch.no_grad():
        got = twin(torch.from_numpy(x)).numpy()
    want = np.asarray(jax.jit(run.model.apply)(run.params, x, state=run.model_state)[0])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_export_to_a_file_replaces_a_link_there_and_never_writes_through_it(
    cnn_run, tmp_path, capsys
):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    target = tmp_path / "mine.safetensors"
    os.symlink(victim, target)
    os.symlink(victim, tmp_path / "mine.json")
    code, out, _ = _export(capsys, "--out", cnn_run, "--to", target)
    assert code == 0 and out.endswith(f" tensors) and {tmp_path / 'mine.json'}\n")
    assert victim.read_text() == "keep"
    assert not target.is_symlink() and not (tmp_path / "mine.json").is_symlink()
    assert weights.load_model(target).model.name == "cnn"


def test_a_link_planted_in_the_runs_export_folder_is_refused_and_not_followed(
    cnn_run, tmp_path, capsys
):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    export_dir = cnn_run / "export"
    export_dir.mkdir(exist_ok=True)
    planted = export_dir / "model.safetensors"
    planted.unlink(missing_ok=True)
    os.symlink(victim, planted)
    try:
        code, _, err = _export(capsys, "--out", cnn_run)
        assert code == 2 and "is a symbolic link to" in _one_line_error(err)
        assert victim.read_text() == "keep" and planted.is_symlink()
    finally:
        planted.unlink()


def test_an_export_folder_that_is_a_link_is_refused_and_nothing_lands_where_it_points(
    cnn_run, tmp_path, capsys
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    export_dir = cnn_run / "export"
    if export_dir.exists():
        for child in export_dir.iterdir():
            child.unlink()
        export_dir.rmdir()
    os.symlink(elsewhere, export_dir)
    try:
        code, _, err = _export(capsys, "--out", cnn_run, "--format", "torch")
        assert code == 2 and f"{export_dir} is a symbolic link" in _one_line_error(err)
        assert list(elsewhere.iterdir()) == []
    finally:
        export_dir.unlink()


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["--to", "weights.bin"], "--to weights.bin: expected a file name ending in .safetensors"),
        (["--to", "missing/w.safetensors"], "expected an existing folder missing, got none"),
    ],
)
def test_a_bad_destination_is_one_line(cnn_run, capsys, argv, expect):
    code, _, err = _export(capsys, "--out", cnn_run, *argv)
    assert code == 2 and expect in _one_line_error(err)


def test_a_directory_that_is_not_a_finished_run_is_one_line(cnn_run, tmp_path, capsys):
    code, _, err = _export(capsys, "--out", tmp_path / "nothing")
    assert code == 2 and "expected a run directory written by `jaxnn train`" in _one_line_error(err)
    run = tmp_path / "no_checkpoint"  # as `jaxnn train --no-checkpoint` leaves it
    shutil.copytree(cnn_run, run, ignore=shutil.ignore_patterns("checkpoints", "export"))
    code, _, err = _export(capsys, "--out", run)
    assert code == 2 and "checkpoint" in _one_line_error(err)
    assert not (run / "export").exists()


def test_a_model_the_torch_layout_cannot_express_is_one_line(monkeypatch, tmp_path, capsys):
    model = models.build("rnn", input_shape=(4, 3), hidden=(5, 6))
    params, state = model.init(jax.random.key(0))
    fake = predict.Run(model, params, state, {"model": "rnn"}, None, tmp_path)
    monkeypatch.setattr(predict, "load_run", lambda out: fake)
    code, _, err = _export(capsys, "--out", tmp_path, "--format", "torch")
    assert code == 2 and "export --format torch: torch_names: expected recurrent layers of one" in (
        _one_line_error(err)
    )
    assert not (tmp_path / "export" / "model.torch.safetensors").exists()


def test_the_flags_are_the_fields_of_export_options():
    parser = argparse.ArgumentParser()
    export.add_parser(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["export"]
    flags = {a.dest: a for a in sub._actions if a.dest != "help"}
    fields = {f.name: f for f in dataclasses.fields(export.ExportOptions)}
    assert set(flags) == set(fields)
    assert flags["format"].choices == export.FORMATS and flags["out"].required
    assert "export" in cli.COMMANDS


@pytest.mark.slow
def test_a_pydoc_language_model_exports_both_ways_and_its_twin_agrees(tmp_path_factory, capsys):
    run = _train(tmp_path_factory, PYDOC_LM, "pydoc")
    capsys.readouterr()
    assert _export(capsys, "--out", run)[0] == 0
    assert _export(capsys, "--out", run, "--format", "torch")[0] == 0
    loaded = weights.load_model(run / "export" / "model.safetensors")
    restored = predict.load_run(run)
    assert _same_bits(loaded.params, restored.params)
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    twins_torch = pytest.importorskip("benchmarks.twins_torch")  # the checkout's twin

    twin = twins_torch.build_torch_twin(restored.model).eval()
    twin.load_state_dict(safetensors_torch.load_file(run / "export" / "model.torch.safetensors"))
    ids = np.random.default_rng(0).integers(0, restored.model.cfg.vocab_size, (4, 32))
    with torch.no_grad():
        got = twin(torch.from_numpy(ids)).numpy()
    want = np.asarray(restored.model.apply(restored.params, ids.astype(np.int32))[0])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
