"""A mesh with a second axis: --mesh data=2,fsdp=2 splits the large parameters and optimizer
moments along fsdp and the batch over both axes, and trains as one device does."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _cpu_env import cpu_env
from jax.sharding import PartitionSpec

from jaxnn import parallel, sharding
from jaxnn.app import cli
from jaxnn.errors import UserError
from jaxnn.train import FitConfig

ROOT = Path(__file__).resolve().parents[1]
MESH_WORKER = Path(__file__).with_name("_mesh_worker.py")
FIT_WORKER = Path(__file__).with_name("_fit_worker.py")


class _FakeMesh:
    """What partition_specs reads of a mesh: its axis sizes."""

    def __init__(self, **shape):
        self.shape = shape


# --- the spelling ------------------------------------------------------------------------------


def test_parse_mesh_reads_the_documented_spelling_in_axis_order():
    assert parallel.parse_mesh("data=2,fsdp=2") == {"data": 2, "fsdp": 2}
    assert parallel.parse_mesh("fsdp=4") == {"data": 1, "fsdp": 4}
    assert parallel.parse_mesh(" data=8 ") == {"data": 8, "fsdp": 1}


@pytest.mark.parametrize("spec", ["", "data=0", "model=2", "data=2,data=2", "data", "data=x"])
def test_parse_mesh_refuses_what_is_not_the_spelling(spec):
    with pytest.raises(ValueError, match="parse_mesh: expected"):
        parallel.parse_mesh(spec)


def test_the_train_command_takes_mesh_and_shard_leaf_flags():
    args = cli.build_parser().parse_args(
        ["train", "--mesh", "data=2,fsdp=2", "--shard-leaf", "embed/*=none"]
    )
    assert (args.mesh, args.shard_leaf) == ("data=2,fsdp=2", "embed/*=none")


def test_fit_config_refuses_a_bad_mesh_or_one_that_disagrees_with_devices():
    with pytest.raises(UserError, match="parse_mesh"):
        FitConfig(mesh="data=2,tp=2")
    with pytest.raises(UserError, match="devices \\(3\\)"):
        FitConfig(devices=3, mesh="data=2,fsdp=2")
    with pytest.raises(UserError, match="PATTERN=DIM"):
        FitConfig(shard_leaf="embed=first")
    assert FitConfig(devices=4, mesh="data=2,fsdp=2").mesh == "data=2,fsdp=2"


def test_a_topology_is_resumable_and_what_is_trained_is_not():
    assert {"devices", "mesh", "shard_leaf"} <= set(cli.RESUMABLE)
    assert "batch_size" not in cli.RESUMABLE and "seed" not in cli.RESUMABLE


def test_no_mesh_without_devices_and_mesh_and_a_named_mesh_refuses_too_many_devices():
    assert parallel.mesh_for(0, "") is None
    with pytest.raises(ValueError, match="expected at most"):
        parallel.mesh_for(0, f"data={len(jax.devices())},fsdp=2")


# --- the rule ----------------------------------------------------------------------------------


def test_the_rule_splits_the_largest_divisible_dimension_of_a_large_leaf():
    assert sharding.fsdp_dim((64, 512), 2) == 1
    assert sharding.fsdp_dim((512, 64), 4) == 0
    assert sharding.fsdp_dim((96, 96), 2) == 0  # a tie: the first
    assert sharding.fsdp_dim((33, 64), 2) == 1  # 33 is not divisible
    assert sharding.fsdp_dim((31, 33), 2) is None  # nothing divisible
    assert sharding.fsdp_dim((16, 16), 2) is None  # under MIN_SIZE elements
    assert sharding.fsdp_dim((64, 512), 1) is None  # no fsdp axis


def test_partition_specs_apply_the_rule_and_the_overrides_to_params_and_moments_alike():
    params = {"embed": {"w": jnp.zeros((256, 32))}, "dense": {"w": jnp.zeros((32, 64))}}
    state = (params, optax.adam(1e-3).init(params))
    mesh = _FakeMesh(data=1, fsdp=2)
    specs = sharding.partition_specs(state, mesh, min_size=1000)
    flat = {sharding.leaf_name(p): s for p, s in jax.tree_util.tree_leaves_with_path(specs)}
    assert flat["0/embed/w"] == flat["1/0/mu/embed/w"] == PartitionSpec("fsdp")
    assert flat["0/dense/w"] == flat["1/0/nu/dense/w"] == PartitionSpec(None, "fsdp")
    assert flat["1/0/count"] == PartitionSpec()
    specs = sharding.partition_specs(state, mesh, min_size=1000, overrides={"embed/w": None})
    flat = {sharding.leaf_name(p): s for p, s in jax.tree_util.tree_leaves_with_path(specs)}
    assert flat["0/embed/w"] == flat["1/0/mu/embed/w"] == PartitionSpec()
    assert flat["0/dense/w"] == PartitionSpec(None, "fsdp")


def test_a_user_rule_replaces_the_shape_rule_and_a_bad_choice_is_named():
    params = {"a": jnp.zeros((4, 6)), "b": jnp.zeros((8,))}
    mesh = _FakeMesh(data=1, fsdp=2)
    specs = sharding.partition_specs(params, mesh, rule=lambda path, shape: len(shape) - 1)
    assert specs == {"a": PartitionSpec(None, "fsdp"), "b": PartitionSpec("fsdp")}
    with pytest.raises(ValueError, match="leaf a \\(4, 6\\) to have a dimension 3"):
        sharding.partition_specs(params, mesh, overrides={"a": 3})


def test_parse_overrides_reads_dims_and_none_and_refuses_the_rest():
    assert sharding.parse_overrides("embed/*=none, */wq=1") == {"embed/*": None, "*/wq": 1}
    assert sharding.parse_overrides("") == {}
    with pytest.raises(ValueError, match="PATTERN=DIM or PATTERN=none"):
        sharding.parse_overrides("embed")


def test_device_bytes_counts_every_byte_of_a_one_device_tree():
    tree = {"a": jnp.zeros((3, 5)), "b": jnp.zeros((7,), jnp.int8)}
    assert sharding.device_bytes(tree) == {jax.devices()[0].id: 3 * 5 * 4 + 7}


# --- four fake devices -------------------------------------------------------------------------


def _mesh_run(tmp_path, models):
    npz = tmp_path / "mesh.npz"
    cmd = [sys.executable, str(MESH_WORKER), "--npz", str(npz), "--models", ",".join(models)]
    done = subprocess.run(cmd, env=cpu_env(4), timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(npz)


def _check_same_run_and_memory(z, name):
    one, fsdp, data4 = (f"{name}/{tag}" for tag in ("one", "fsdp", "data4"))
    assert int(z[f"{fsdp}/sharded"]) > 0 and int(z[f"{data4}/sharded"]) == 0
    assert len(z[f"{one}/losses"]) == 20
    for tag in (fsdp, data4):
        np.testing.assert_allclose(z[f"{tag}/losses"], z[f"{one}/losses"], rtol=1e-5, atol=1e-6)
        params = sorted(k for k in z.files if k.startswith(f"{tag}/param"))
        assert len(params) == len([k for k in z.files if k.startswith(f"{one}/param")])
        for k in params:
            ref = z[k.replace(tag, one)]
            np.testing.assert_allclose(z[k], ref, rtol=1e-4, atol=1e-5, err_msg=k)
    replicated, split = z[f"{data4}/bytes"], z[f"{fsdp}/bytes"]
    assert len(set(replicated)) == len(set(split)) == 1  # every device holds the same
    # Each split leaf holds half its bytes per device (fsdp=2); the rest is replicated.
    assert split[0] == replicated[0] - int(z[f"{fsdp}/sharded_bytes"]) // 2
    return replicated[0] / split[0]


def test_the_mlp_on_a_two_axis_mesh_trains_as_one_device_does_in_half_the_memory(tmp_path):
    z = _mesh_run(tmp_path, ["mlp"])
    assert _check_same_run_and_memory(z, "mlp") > 1.8


@pytest.mark.slow
def test_every_built_in_model_on_a_two_axis_mesh_trains_as_one_device_does(tmp_path):
    models = ["cnn", "rnn", "transformer"]  # the mlp: the quick twin above
    z = _mesh_run(tmp_path, models)
    ratios = {name: _check_same_run_and_memory(z, name) for name in models}
    assert ratios["transformer"] > 1.8 and ratios["rnn"] > 1.8, ratios


def test_fit_on_a_two_axis_mesh_gives_the_one_device_result(tmp_path):
    def run(npz, *flags):
        cmd = [sys.executable, str(FIT_WORKER), "--npz", str(npz), *flags]
        done = subprocess.run(cmd, env=cpu_env(4), timeout=300, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        z = np.load(npz)
        return [z[k] for k in sorted(z.files, key=str) if k.startswith("arr_")], z["split_leaves"]

    one, none_split = run(tmp_path / "one.npz")
    two_axes, split = run(tmp_path / "mesh.npz", "--mesh", "data=2,fsdp=2")
    assert int(none_split) == 0 and int(split) > 0  # the hidden layer's weight is split
    for a, b in zip(one, two_axes, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
