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
