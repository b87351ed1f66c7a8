"""Each model's recipe reaches its MNIST-1D target from the bare command (slow: minutes)."""

import json

import pytest

from jaxnn import models
from jaxnn.app import cli, recipes

TARGETS = {"cnn": 0.93, "rnn": 0.90, "mlp": 0.65}


def test_every_model_with_a_target_carries_a_recipe_for_mnist1d():
    for name in TARGETS:
        assert recipes.recipe(name, "mnist1d"), name
    assert recipes.recipe("mlp", "no-such-dataset") == {}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_bare_command_reaches_the_target(name, tmp_path):
    out = tmp_path / name
    assert cli.main(["train", "--model", name, "--dataset", "mnist1d", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] >= TARGETS[name], summary
    config = json.loads((out / "config.json").read_text())
    recipe = recipes.recipe(name, "mnist1d")
    assert all(config["fit"][k] == v for k, v in recipe.items() if k != "model_config")


def test_the_old_name_jaxnn_models_recipe_still_answers_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="jaxnn.app.recipes.recipe"):
        old = models.recipe
    assert old("cnn", "mnist1d") == recipes.recipe("cnn", "mnist1d")


# ---------------------------------------------------------------------------------------------
# the small-data recipe: a file or folder of the user's own


def _info(modality="tabular", task="classification"):
    from types import SimpleNamespace

    return SimpleNamespace(modality=modality, task=task)


@pytest.mark.parametrize(
    "n, batch, epochs",
    [(128, 16, 75), (156, 16, 60), (40, 16, 200), (1000, 62, 36), (100_000, 128, 20)],
)
def test_the_small_data_recipe_sizes_batch_and_epochs_from_the_training_examples(n, batch, epochs):
    chosen = recipes.for_data(_info(), n)
    assert chosen == {"batch_size": batch, "epochs": epochs, "monitor": "val_loss"}
    steps = -(-n // batch)
    assert epochs in (20, 200) or (epochs - 1) * steps < 600 <= epochs * steps


def test_the_small_data_recipe_gives_images_the_cnn_and_shifts_and_keeps_what_was_given():
    assert recipes.for_data(_info("image"), 156)["model"] == "cnn"
    assert recipes.for_data(_info("image"), 156)["augment"] == "shift"
    kept = recipes.for_data(_info("image"), 156, {"model": "mlp", "batch_size": 52})
    assert "model" not in kept and "batch_size" not in kept
    assert kept["epochs"] == 200  # 3 steps per epoch: 600 steps would be 200 epochs
    assert recipes.for_data(_info("text", "language_model"), 5000) == {}


def _summary_of_the_bare_run(root):
    (summary,) = root.glob("runs/**/summary.json")
    return json.loads(summary.read_text()), json.loads(summary.with_name("config.json").read_text())


def test_the_bare_command_on_a_small_csv_trains_every_example_each_epoch(
    tmp_path, monkeypatch, capsys
):
    from _small_data import write_wine

    monkeypatch.chdir(tmp_path)
    write_wine(tmp_path / "wine.csv", rows=150)
    assert cli.main(["train", "--dataset", "wine.csv", "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    summary, config = _summary_of_the_bare_run(tmp_path)
    n = config["recipe"]["train_examples"]
    assert n == 108  # 150 rows: 120 after the test split, 108 after validation
    assert config["fit"]["batch_size"] == 16 and config["fit"]["epochs"] == 2
    assert config["recipe"]["chosen"] == {"batch_size": 16, "monitor": "val_loss"}
    assert summary["steps"] == 2 * 7  # 6 batches of 16 and the last 12 examples, each epoch
    assert f"small-data recipe for {n} training examples: --batch-size 16" in out


def test_a_batch_larger_than_the_training_split_is_clipped_with_one_line(
    tmp_path, monkeypatch, capsys
):
    from _small_data import write_wine

    monkeypatch.chdir(tmp_path)
    write_wine(tmp_path / "wine.csv")
    argv = ["train", "--dataset", "wine.csv", "--epochs", "3", "--batch-size", "500"]
    assert cli.main([*argv, "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    notices = [line for line in lines if "clipped" in line]
    assert notices == [
        "batch size 500 is more than the 128 training examples: clipped to 128 (one step per epoch)"
    ]
    summary, config = _summary_of_the_bare_run(tmp_path)
    assert summary["steps"] == 3 and config["fit"]["batch_size"] == 128


@pytest.mark.slow
@pytest.mark.parametrize("source", ["shapes", "wine.csv"])
def test_the_bare_command_on_small_data_of_ones_own_reaches_90_percent(
    source, tmp_path, monkeypatch
):
    from _small_data import write_shapes, write_wine

    monkeypatch.chdir(tmp_path)
    if source == "shapes":
        write_shapes(tmp_path / "shapes")
    else:
        write_wine(tmp_path / source)
    assert cli.main(["train", "--dataset", source, "--no-progress"]) == 0
    summary, config = _summary_of_the_bare_run(tmp_path)
    assert summary["test_accuracy"] >= 0.9, summary
    assert config["recipe"]["name"] == "small_data"
    assert config["model"] == ("cnn" if source == "shapes" else "mlp")
    # and the doctor, on the finished run, is quiet and counts epochs as summary.json does
    from jaxnn.app import doctor

    (run,) = {p.parent for p in tmp_path.glob("runs/**/summary.json")}
    report = doctor.examine_run(run, progress=False)
    assert report.ok, report.text()
    assert report.details["fit"].best_epoch == summary["best_epoch"]


def _resolved(*argv):
    return cli._resolve_train(cli.build_parser().parse_args(["train", *argv]))


def test_a_named_recipe_sets_model_dataset_and_settings_and_flags_override_it_key_by_key():
    run, fit_cfg, overrides, options, _ = _resolved("--recipe", "nanogpt-char")
    want = recipes.named("nanogpt-char")
    assert (run.model, run.dataset) == ("transformer", "pydoc_text")
    assert (fit_cfg.beta2, fit_cfg.max_steps, fit_cfg.batch_size) == (0.99, 2000, 12)
    assert overrides == want["model_config"] and options == want["data_option"]
    run, fit_cfg, overrides, options, _ = _resolved(
        "--recipe", "nanogpt-char", "--max-steps", "5", "--dataset", "text:x.txt",
        "--data-option", "seq_len=32", "--model-config", "num_layers=1",
    )  # fmt: skip
    assert fit_cfg.max_steps == 5 and fit_cfg.beta2 == 0.99 and run.dataset == "text:x.txt"
    assert options == {"seq_len": 32, "train_stride": 1}  # the flag's key, the recipe's other
    assert overrides["num_layers"] == 1 and overrides["tie_embeddings"] is True


def test_an_unknown_recipe_is_refused_in_one_line_naming_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--recipe", "nanogpt"])
    assert "nanogpt-char" in capsys.readouterr().err


def test_the_nanogpt_recipe_trains_bias_free_and_tied_and_records_its_name(tmp_path):
    out = tmp_path / "run"
    code = cli.main(
        ["train", "--recipe", "nanogpt-char", "--max-steps", "3", "--warmup-steps", "1",
         "--out", str(out), "--model-config", "num_layers=1", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert config["recipe"] == {"name": "nanogpt-char"} and summary["steps"] == 3
    assert config["fit"]["beta2"] == 0.99 and config["model_config"]["tie_embeddings"] is True
    assert config["data"]["options"]["train_stride"] == 1
