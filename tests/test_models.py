"""The one model contract, walked over every name in ``jaxnn.models.NAMES``, and the package's
import graph (no module imports one that imports it back)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from jaxnn import models
from jaxnn.data import TASKS, DatasetInfo

INFOS = {
    "mlp": DatasetInfo("t", "classification", (12,), 3),
    "cnn": DatasetInfo("t", "classification", (12,), 3),
    "rnn": DatasetInfo("t", "classification", (12,), 3),
    "transformer": DatasetInfo("t", "language_model", (8,), 11),
}


def _inputs(name, cfg):
    if name == "transformer":
        return np.arange(16, dtype=np.int32).reshape(2, 8) % 11
    return np.ones((2, 12), np.float32)


@pytest.mark.parametrize("name", models.NAMES)
def test_every_model_module_has_config_init_init_state_apply(name):
    module = models.get(name)
    for attr in ("Config", "init", "init_state", "apply", "config_for"):
        assert callable(getattr(module, attr)), f"{name}.{attr}"
    assert dataclasses.is_dataclass(module.Config) and module.Config.__dataclass_params__.frozen


@pytest.mark.parametrize("name", models.NAMES)
def test_apply_without_cfg_raises(name):
    model = models.build(name, INFOS[name])
    params, _ = model.init(jax.random.key(0))
    with pytest.raises(TypeError, match="cfg"):
        models.get(name).apply(params, _inputs(name, model.cfg))
    with pytest.raises(ValueError, match=r"expected cfg="):
        models.get(name).apply(params, _inputs(name, model.cfg), cfg=None)


@pytest.mark.parametrize("name", models.NAMES)
def test_every_model_takes_state_by_keyword_and_returns_outputs_and_state(name):
    model = models.build(name, INFOS[name])
    module = models.get(name)
    params, state = model.init(jax.random.key(0))
    assert state == module.init_state(model.cfg)
    out, new_state = module.apply(params, _inputs(name, model.cfg), cfg=model.cfg, state=state)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert out.shape[0] == 2 and out.shape[-1] == INFOS[name].num_classes
    again, _ = model.apply(params, _inputs(name, model.cfg), state=state)
    np.testing.assert_array_equal(out, again)


def test_batch_norm_state_follows_the_same_rule_as_the_models():
    cfg = models.cnn.Config(
        input_shape=(12,), channels=(2,), hidden=(4,), dropout=0.0, batch_norm=True
    )
    params, state = models.cnn.init(jax.random.key(0), cfg), models.cnn.init_state(cfg)
    x = np.ones((3, 12), np.float32)
    out, new_state = models.cnn.apply(params, x, cfg=cfg, state=state, train=True)
    assert set(new_state) == {"bn_0"} and out.shape == (3, 10)
    with pytest.raises(ValueError, match="expected state= of shapes"):
        models.cnn.apply(params, x, cfg=cfg)


@pytest.mark.parametrize("name", ["mlp", "cnn", "rnn"])
def test_hidden_is_a_tuple_of_widths_and_an_int_means_one_layer(name):
    module = models.get(name)
    cfg = module.config_for(INFOS[name], hidden=16)
    assert cfg.hidden == (16,)
    assert module.config_for(INFOS[name], hidden=[16, 8]).hidden == (16, 8)


def test_transformer_tasks_are_names_from_the_data_vocabulary():
    assert set(models.transformer.TASKS) <= set(TASKS)
    cfg = models.transformer.config_for(INFOS["transformer"])
    assert cfg.task == "language_model"


def test_build_takes_a_config_a_dataset_info_or_overrides_alone():
    cfg = models.mlp.Config(input_dim=12, num_classes=3, hidden=(5,))
    assert models.build("mlp", cfg).cfg == cfg
    assert models.build("mlp", cfg, hidden=(7,)).cfg.hidden == (7,)
    assert models.build("mlp", INFOS["mlp"], hidden=(5,)).cfg == cfg
    assert models.build("mlp", input_dim=12, num_classes=3, hidden=(5,)).cfg == cfg


# Configs whose init uses every initializer of the models (batch norm, learned positions, LSTM).
INIT_CONFIGS = [
    ("mlp", {"input_dim": 784, "hidden": (512, 64)}),
    ("cnn", {"input_shape": (28, 28, 1), "channels": (8, 16), "batch_norm": True}),
    ("cnn", {"input_shape": (40,)}),
    ("rnn", {"input_shape": (40,), "cell": "lstm", "hidden": (32, 16)}),
    ("rnn", {"input_shape": (40,), "cell": "gru"}),
    ("transformer", {"positional": "learned", "num_layers": 3}),
]


@pytest.mark.parametrize(("name", "overrides"), INIT_CONFIGS)
def test_the_compiled_init_of_build_gives_the_bits_of_the_module_init_called_outside_jit(
    name, overrides
):
    """build's init is one compiled program with its own XLA options (first steps come sooner);
    it must give the bits that calling the module's init outside jit gives."""
    model = models.build(name, None, **overrides)
    module = models.get(name)
    key = jax.random.PRNGKey(3)
    compiled = model.init(key)
    eager = (module.init(key, model.cfg), module.init_state(model.cfg))  # as before: un-jitted
    assert jax.tree.structure(compiled) == jax.tree.structure(eager)
    for got, want in zip(jax.tree.leaves(compiled), jax.tree.leaves(eager), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_builds_init_works_inside_a_users_jit():
    model = models.build("mlp", INFOS["mlp"], hidden=(5,))
    params, _ = jax.jit(model.init)(jax.random.PRNGKey(0))
    top_level = model.init(jax.random.PRNGKey(0))[0]
    np.testing.assert_array_equal(params["dense_0"]["w"], top_level["dense_0"]["w"])


def test_get_of_an_unknown_model_lists_the_names():
    with pytest.raises(ValueError, match="expected one of mlp, cnn, rnn, transformer"):
        models.get("resnet")


def test_builds_init_and_create_train_state_work_under_eval_shape_with_a_concrete_key():
    import optax

    from jaxnn.train.state import create_train_state

    model = models.build("mlp", INFOS["mlp"], hidden=(5,))
    key = jax.random.PRNGKey(0)  # concrete, closed over by the traced function
    params, _ = jax.eval_shape(lambda: model.init(key))
    assert params["dense_0"]["w"].shape == (12, 5)
    state = jax.eval_shape(lambda: create_train_state(model, optax.adam(1e-3), 0))
    assert state.params["dense_1"]["w"].shape == (5, 3)
    inside_jit = jax.jit(lambda: model.init(key)[0]["dense_0"]["w"])()
    np.testing.assert_array_equal(inside_jit, model.init(key)[0]["dense_0"]["w"])
