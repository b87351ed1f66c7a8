"""Weights as safetensors files: stable names, dtypes and bits kept, the model in the header, and
one line naming the first mismatch when a file does not fit its target."""

import json
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
from _tiny_models import VARIANTS, make

from jaxnn import models, weights
from jaxnn.errors import UserError


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _all_same_bits(tree_a, tree_b) -> bool:
    if jax.tree.structure(tree_a) != jax.tree.structure(tree_b):
        return False
    return all(map(_same_bits, jax.tree.leaves(tree_a), jax.tree.leaves(tree_b)))


def _header(path) -> dict:
    data = open(path, "rb").read()
    return json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])


class Pair(NamedTuple):
    first: np.ndarray
    second: np.ndarray


def test_names_are_the_keys_of_the_path_joined_by_dots():
    x = np.zeros(2, np.float32)
    tree = {"dense_0": {"w": x, "b": x}, "layers": [x, (x, x)], "pair": Pair(x, x)}
    assert list(weights.flatten(tree)) == [
        "dense_0.b", "dense_0.w", "layers.0", "layers.1.0", "layers.1.1", "pair.first",
        "pair.second",
    ]  # fmt: skip


def test_the_file_holds_exactly_the_flat_names_and_the_format_version(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = weights.save(tmp_path / "w.safetensors", {"a": {"b": x}, "c": [x]})
    header = _header(path)
    assert sorted(k for k in header if k != "__metadata__") == ["a.b", "c.0"]
    assert header["__metadata__"] == {"jaxnn.format_version": str(weights.FORMAT_VERSION)}
    assert header["a.b"]["shape"] == [2, 3] and header["a.b"]["dtype"] == "F32"


@pytest.mark.parametrize(
    "key, expect",
    [("a.b", "without '.', got 'a.b'"), ("", "non-empty strings"), (3, "got 3 under w")],
)
def test_a_key_that_breaks_the_naming_rule_is_refused(key, expect):
    with pytest.raises(ValueError, match=expect):
        weights.flatten({"w": {key: np.zeros(1)}})


@pytest.mark.parametrize(
    "leaf, expect",
    [
        (1.5, "expected an array at 'x', got float"),
        (jax.random.key(0), "store a PRNG key as jax.random.key_data"),
        (np.zeros(2, np.complex128), "got complex128 at 'x'"),
    ],
)
def test_a_leaf_safetensors_cannot_hold_is_refused_by_name(leaf, expect, tmp_path):
    with pytest.raises(ValueError, match=expect):
        weights.save(tmp_path / "w.safetensors", {"x": leaf})
    assert list(tmp_path.iterdir()) == []


def test_every_dtype_and_shape_comes_back_with_its_bits(tmp_path):
    rng = np.random.default_rng(0)
    floats = rng.normal(size=(3, 4))
    tree = {
        "f32": floats.astype(np.float32),
        "bf16": jnp.asarray(floats, jnp.bfloat16),
        "f16": floats.astype(np.float16),
        "f64": floats,
        "f8": floats.astype(jnp.float8_e4m3fn),
        "i8": np.array([-128, 0, 127], np.int8),
        "i32": np.array([-(2**31), 7], np.int32),
        "i64": np.array([2**62 + 1, -5], np.int64),
        "u8": np.array([0, 255], np.uint8),
        "u64": np.array([2**64 - 1], np.uint64),
        "bool": np.array([True, False]),
        "scalar": np.array(3.25, np.float32),
        "empty": np.zeros((0, 5), np.float32),
    }
    path = weights.save(tmp_path / "w.safetensors", tree)
    back = weights.load(path, tree)
    assert _all_same_bits(tree, back)
    assert back["i64"].dtype == np.int64 and back["i64"][0] == 2**62 + 1  # no x64 narrowing


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_model_file_rebuilds_the_model_with_the_same_bits(variant, tmp_path):
    model, params, state, _ = make(variant)
    path = weights.save_model(tmp_path / "m.safetensors", model, params, state)
    loaded = weights.load_model(path)
    assert loaded.model.name == model.name and loaded.model.cfg == model.cfg
    assert _all_same_bits((params, state), (loaded.params, loaded.state))


def test_a_model_file_names_params_and_state_and_carries_the_config(tmp_path):
    model, params, state, _ = make("cnn_2d_batch_norm")
    header = _header(weights.save_model(tmp_path / "m.safetensors", model, params, state))
    names = set(header) - {"__metadata__"}
    assert {"params.conv_0.w", "params.bn_0.scale", "state.bn_0.mean", "state.bn_1.var"} <= names
    meta = header["__metadata__"]
    assert meta["jaxnn.model"] == "cnn" and meta["jaxnn.layout"] == "jaxnn"
    assert json.loads(meta["jaxnn.config"])["channels"] == [3, 4]


def test_bfloat16_params_keep_their_dtype_through_a_model_file(tmp_path):
    model, params, state, _ = make("transformer_lm")
    params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    loaded = weights.load_model(weights.save_model(tmp_path / "m.safetensors", model, params))
    assert {a.dtype for a in jax.tree.leaves(loaded.params)} == {np.dtype(jnp.bfloat16)}
    assert _all_same_bits(params, loaded.params)


def test_load_takes_the_shapes_of_eval_shape_of_init(tmp_path):
    from jaxnn.models import mlp

    cfg = mlp.Config(input_dim=4, hidden=(3,), num_classes=2)
    params = mlp.init(jax.random.key(1), cfg)
    path = weights.save(tmp_path / "p.safetensors", params)
    target = jax.eval_shape(lambda k: mlp.init(k, cfg), jax.random.key(0))
    assert _all_same_bits(params, weights.load(path, target))


def test_a_file_from_another_program_loads_by_the_naming_rule(tmp_path):
    w, b = np.ones((4, 2), np.float32), np.zeros(2, np.float32)
    safetensors.numpy.save_file({"dense_0.w": w, "dense_0.b": b}, tmp_path / "other.safetensors")
    target = {"dense_0": {"w": w, "b": b}}
    assert _all_same_bits(target, weights.load(tmp_path / "other.safetensors", target))


def _target():
    return {
        "dense_0": {"w": jax.ShapeDtypeStruct((4, 8), jnp.float32), "b": np.zeros(8, np.float32)},
        "dense_1": {"w": np.zeros((8, 2), np.float32), "b": np.zeros(2, np.float32)},
    }


def _saved(tmp_path, change):
    tree = {
        "dense_0": {"w": np.zeros((4, 8), np.float32), "b": np.zeros(8, np.float32)},
        "dense_1": {"w": np.zeros((8, 2), np.float32), "b": np.zeros(2, np.float32)},
    }
    change(tree)
    return weights.save(tmp_path / "w.safetensors", tree)


@pytest.mark.parametrize(
    "change, expect",
    [
        (
            lambda t: t["dense_1"].pop("w"),
            "expected a tensor 'dense_1.w' of shape (8, 2), float32, got no such name",
        ),
        (
            lambda t: t.update(extra={"w": np.zeros(1, np.float32)}),
            "expected only the target's 4 names, got also 'extra.w'",
        ),
        (
            lambda t: t["dense_0"].update(w=np.zeros((4, 16), np.float32)),
            "expected 'dense_0.w' of shape (4, 8), got shape (4, 16)",
        ),
        (
            lambda t: t["dense_0"].update(b=np.zeros(8, jnp.bfloat16)),
            "expected 'dense_0.b' as float32, got bfloat16",
        ),
    ],
    ids=["missing", "unexpected", "shape", "dtype"],
)
def test_a_file_that_does_not_fit_the_target_is_refused_in_one_line(tmp_path, change, expect):
    path = _saved(tmp_path, change)
    with pytest.raises(UserError) as err:
        weights.load(path, _target())
    message = str(err.value)
    assert message == f"weights.load: {path}: {expect}"
    assert "\n" not in message


def test_the_first_mismatch_in_target_order_is_the_one_named(tmp_path):
    def two_problems(t):
        t["dense_0"]["w"] = np.zeros((4, 9), np.float32)  # first in the target's order
        t["dense_1"].pop("b")

    with pytest.raises(UserError, match=r"'dense_0.w' of shape \(4, 8\), got shape \(4, 9\)$"):
        weights.load(_saved(tmp_path, two_problems), _target())


def test_a_model_file_of_another_model_is_refused_naming_the_tensor(tmp_path):
    model, params, state, _ = make("mlp")
    path = weights.save_model(tmp_path / "m.safetensors", model, params, state)
    other = models.build("mlp", model.cfg, hidden=(8, 6))
    other_params, other_state = jax.eval_shape(other.init, jax.random.key(0))
    with pytest.raises(UserError, match=r"'params.dense_1.b' of shape \(6,\), got shape \(5,\)"):
        weights.load(path, {"params": other_params, "state": other_state})
    with pytest.raises(ValueError, match=r"weights.save_model: mlp: expected 'params.dense_1.b'"):
        weights.save_model(tmp_path / "n.safetensors", other, params)


@pytest.mark.parametrize(
    "content, expect",
    [
        (b"not a safetensors file at all", "expected a safetensors file"),
        (b"\x40\x00\x00\x00\x00\x00\x00\x00{}", "expected a safetensors file"),  # cut short
        (b"", "expected a safetensors file"),
    ],
)
def test_a_file_that_is_not_safetensors_is_one_line(tmp_path, content, expect):
    (tmp_path / "bad.safetensors").write_bytes(content)
    with pytest.raises(UserError, match=expect) as err:
        weights.load(tmp_path / "bad.safetensors", _target())
    assert "\n" not in str(err.value)


def test_a_file_of_a_newer_format_version_is_refused(tmp_path):
    newer = {"jaxnn.format_version": str(weights.FORMAT_VERSION + 1)}
    path = weights.save(tmp_path / "w.safetensors", {"x": np.zeros(1)}, metadata=newer)
    with pytest.raises(UserError, match="a newer jaxnn wrote it"):
        weights.load(path, {"x": np.zeros(1)})


def test_load_model_refuses_a_file_without_a_model_header(tmp_path):
    path = weights.save(tmp_path / "w.safetensors", {"x": np.zeros(1)})
    with pytest.raises(UserError, match="expected a jaxnn model file"):
        weights.load_model(path)
    model, params, _, _ = make("mlp")
    broken = {**weights.model_metadata(model), "jaxnn.config": '{"hidden": "wide"}'}
    path = weights.save(tmp_path / "b.safetensors", {"params": params}, metadata=broken)
    with pytest.raises(UserError, match="the saved model does not build"):
        weights.load_model(path)


def test_save_replaces_a_link_at_the_path_and_never_writes_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    os.symlink(victim, tmp_path / "w.safetensors")
    weights.save(tmp_path / "w.safetensors", {"x": np.ones(3, np.float32)})
    assert victim.read_text() == "keep"
    assert not (tmp_path / "w.safetensors").is_symlink()
    assert _header(tmp_path / "w.safetensors")["x"]["shape"] == [3]
