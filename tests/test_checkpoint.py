"""Tests for jaxnn.train.checkpoint: round trips, retention, atomic saves, kills and corruption."""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import _ckpt_worker as worker
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn.errors import UserError
from jaxnn.train.checkpoint import CheckpointManager, load_best

# A failed orbax read can leave a callback for the asyncio loop orbax has already closed; it is
# reported as an unraisable exception at garbage collection, after the test asserted its facts.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

# Checkpointing is not differentiated through: nothing for the gradient-check registry.
GRAD_CASES = {}

WORKER = Path(__file__).with_name("_ckpt_worker.py")
TMP_MARK = ".orbax-checkpoint-tmp"


def _abstract(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)


def _assert_bitwise_equal(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape)
        assert g.tobytes() == w.tobytes()


def _train_state():
    """A state like the training loop's: step, params, optax chain state, key data, model state."""
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {
        "dense": {"w": jax.random.normal(k1, (5, 3)), "b": jnp.linspace(-1, 1, 3)},  # (in, out)
        "emb": jax.random.normal(k2, (7, 2)).astype(jnp.bfloat16),  # (vocab, D)
    }
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2))
    opt_state = jax.tree.map(lambda x: x + 2, tx.init(params))  # non-zero moments, count 2
    return {
        "step": jnp.asarray(2, jnp.int32),
        "params": params,
        "opt_state": opt_state,
        "rng": jax.random.key_data(jax.random.key(42)),  # (2,) uint32
        "model_state": {"bn": {"mean": jnp.arange(3.0), "count": jnp.asarray(9, jnp.int32)}},
    }


EXTRA = {
    "epoch": 3,
    "batch_in_epoch": 17,
    "best": {"value": 0.8125, "epoch": 2},
    "history": [{"loss": 0.1 + 0.2, "ok": True}, {"loss": None}],
    "config": {"model": "mlp", "lr": 3e-4, "hidden": [64, 32], "seed": 2**40},
}


@pytest.mark.parametrize("target_kind", ["abstract", "arrays"])
def test_restore_gives_bitwise_identical_arrays_and_the_same_extra(tmp_path, target_kind):
    state = _train_state()
    with CheckpointManager(tmp_path) as manager:
        manager.save(7, state, extra=EXTRA, metrics={"val_accuracy": 0.5})
    target = _abstract(state) if target_kind == "abstract" else jax.tree.map(jnp.zeros_like, state)
    with CheckpointManager(tmp_path) as fresh:
        restored, extra = fresh.restore(target=target)
    _assert_bitwise_equal(restored, state)
    assert extra == EXTRA
    adam_state = restored["opt_state"][1][0]
    assert isinstance(adam_state, optax.ScaleByAdamState) and int(adam_state.count) == 2
    assert isinstance(restored["opt_state"][0], optax.EmptyState)


def test_restored_key_data_rebuilds_the_same_random_stream(tmp_path):
    key = jax.random.key(3)
    with CheckpointManager(tmp_path) as manager:
        manager.save(0, {"rng": jax.random.key_data(key)}, extra={})
        restored, _ = manager.restore(target={"rng": jax.random.key_data(key)})
    again = jax.random.wrap_key_data(restored["rng"])
    assert np.array_equal(jax.random.normal(again, (4,)), jax.random.normal(key, (4,)))


def test_restore_defaults_to_the_latest_step_and_can_pick_an_older_one(tmp_path):
    with CheckpointManager(tmp_path, keep_last=3) as manager:
        for step in (10, 20, 30):
            manager.save(step, worker.make_state(step), extra=worker.make_extra(step))
        assert manager.steps() == [10, 20, 30] and manager.latest_step() == 30
        target = _abstract(worker.make_state(0))
        _, latest = manager.restore(target=target)
        older, extra = manager.restore(20, target=target)
    assert latest["step"] == 30 and extra["step"] == 20
    _assert_bitwise_equal(older, worker.make_state(20))


def _expected_kept(values, keep_last, keep_best, mode):
    steps = list(range(len(values)))
    ranked = sorted(steps, key=lambda s: values[s], reverse=mode == "min")
    return sorted(set(steps[-keep_last:]) | set(ranked[len(ranked) - keep_best :]))


@pytest.mark.parametrize(
    "keep_last, keep_best, mode", [(2, 1, "max"), (1, 2, "min"), (3, 0, "max")]
)
def test_retention_keeps_the_newest_and_the_best_by_the_validation_metric(
    tmp_path, keep_last, keep_best, mode
):
    values = [0.2, 0.9, 0.3, 0.95, 0.1, 0.4, 0.05, 0.35]  # goes up and down
    state = {"w": jnp.zeros((2,))}
    manager = CheckpointManager(
        tmp_path, keep_last=keep_last, keep_best=keep_best, best_metric="val_loss", best_mode=mode
    )
    for step, value in enumerate(values):
        manager.save(step, state, extra={}, metrics={"val_loss": value, "other": -value})
    kept = _expected_kept(values, keep_last, keep_best, mode)
    assert manager.steps() == kept
    if keep_best:
        best = max(range(len(values)), key=lambda s: values[s] if mode == "max" else -values[s])
        assert manager.best_step() == best
        assert best not in kept[-keep_last:]  # the best survived past keep_last
    manager.close()
    with CheckpointManager(tmp_path, keep_last=keep_last, keep_best=keep_best) as fresh:
        assert fresh.steps() == kept
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == sorted(
        str(s) for s in kept
    )


def test_checkpoint_without_metrics_is_kept_only_while_among_the_newest(tmp_path):
    with CheckpointManager(tmp_path, keep_last=2, keep_best=1) as manager:
        manager.save(0, {"w": jnp.zeros(1)}, extra={})
        manager.save(1, {"w": jnp.zeros(1)}, extra={}, metrics={"val_accuracy": 0.1})
        assert manager.best_step() == 1
        manager.save(2, {"w": jnp.zeros(1)}, extra={}, metrics={"val_accuracy": 0.0})
        assert manager.steps() == [1, 2]


def test_nan_metric_never_ranks_as_best(tmp_path):
    with CheckpointManager(tmp_path, keep_last=1, keep_best=1) as manager:
        manager.save(0, {"w": jnp.zeros(1)}, extra={}, metrics={"val_accuracy": 0.3})
        manager.save(1, {"w": jnp.zeros(1)}, extra={}, metrics={"val_accuracy": float("nan")})
        manager.save(2, {"w": jnp.zeros(1)}, extra={}, metrics={"val_accuracy": 0.1})
        assert manager.best_step() == 0
        assert manager.steps() == [0, 2]


def test_save_writes_a_temporary_directory_and_renames_it_when_complete(tmp_path, monkeypatch):
    from orbax.checkpoint._src.path import async_path

    renames = []
    real_rename = async_path.rename

    async def spy(src, dst):
        src, dst = Path(src), Path(dst)
        renames.append((src.name, dst, sorted(p.name for p in src.iterdir()), dst.exists()))
        return await real_rename(src, dst)

    monkeypatch.setattr(async_path, "rename", spy)
    with CheckpointManager(tmp_path) as manager:
        manager.save(5, {"w": jnp.ones((3,))}, extra={"a": 1}, metrics={"val_accuracy": 1.0})
    (src_name, dst, contents, dst_existed_before) = renames[-1]
    assert TMP_MARK in src_name and src_name.startswith("5")
    assert dst == tmp_path / "5" and not dst_existed_before
    assert {"state", "extra", "digest", "metrics"} <= set(contents)
    assert not any(TMP_MARK in p.name for p in tmp_path.iterdir())


def _largest_file(directory: Path) -> Path:
    return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _corrupt(step_dir: Path, how: str) -> None:
    if how == "delete_manifest":
        (step_dir / "state" / "manifest.ocdbt").unlink()
    elif how == "truncate_data":
        data = _largest_file(step_dir / "state")
        os.truncate(data, data.stat().st_size // 2)
    elif how == "flip_data_byte":
        data = _largest_file(step_dir / "state")
        with open(data, "r+b") as f:
            f.seek(data.stat().st_size // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x01]))
    elif how == "flip_extra_byte":
        meta = step_dir / "extra" / "metadata"
        meta.write_text(meta.read_text().replace('"step": ', '"stap": '))
    elif how == "delete_state":
        for p in sorted((step_dir / "state").rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()


def _two_checkpoints(directory):
    with CheckpointManager(directory, keep_last=3) as manager:
        for step in (1, 2):
            manager.save(
                step,
                worker.make_state(step, size=512),
                extra=worker.make_extra(step),
                metrics=worker.make_metrics(step),
            )


@pytest.mark.parametrize(
    "how", ["delete_manifest", "truncate_data", "flip_data_byte", "flip_extra_byte", "delete_state"]
)
def test_corrupt_latest_checkpoint_warns_and_restore_falls_back_to_the_previous(tmp_path, how):
    _two_checkpoints(tmp_path)
    _corrupt(tmp_path / "2", how)
    target = _abstract(worker.make_state(0, size=512))
    with CheckpointManager(tmp_path) as manager:
        with pytest.warns(UserWarning, match=r"step 2 .* is incomplete or corrupt") as record:
            state, extra = manager.restore(target=target)
        assert str(tmp_path) in str(record[0].message)
        assert extra == worker.make_extra(1)
        _assert_bitwise_equal(state, worker.make_state(1, size=512))
        with pytest.raises(
            ValueError, match=rf"step 2 in {re.escape(str(tmp_path))} cannot be restored"
        ):
            manager.restore(2, target=target)


def test_no_restorable_checkpoint_raises_naming_the_directory_and_each_reason(tmp_path):
    _two_checkpoints(tmp_path)
    for step in ("1", "2"):
        _corrupt(tmp_path / step, "truncate_data")
    with CheckpointManager(tmp_path) as manager:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(
                ValueError, match=rf"no restorable checkpoint in {re.escape(str(tmp_path))}.*step 1"
            ):
                manager.restore(target=_abstract(worker.make_state(0, size=512)))


def test_empty_directory_restore_raises_file_not_found_naming_it(tmp_path):
    with CheckpointManager(tmp_path / "ckpt") as manager:
        assert manager.latest_step() is None and manager.best_step() is None
        with pytest.raises(FileNotFoundError, match="no checkpoint in .*ckpt") as info:
            manager.restore(target={"w": jnp.zeros(1)})
    assert isinstance(info.value, UserError)  # the CLI prints it as one line


def test_restore_of_a_missing_step_lists_the_available_ones(tmp_path):
    with CheckpointManager(tmp_path) as manager:
        manager.save(4, {"w": jnp.zeros(1)}, extra={})
        with pytest.raises(FileNotFoundError, match=r"expected a step in \[4\], got 5"):
            manager.restore(5, target={"w": jnp.zeros(1)})


def test_saving_again_after_a_fallback_replaces_the_corrupt_step(tmp_path):
    _two_checkpoints(tmp_path)
    _corrupt(tmp_path / "2", "truncate_data")
    target = _abstract(worker.make_state(0, size=512))
    with CheckpointManager(tmp_path, keep_last=3) as manager:
        with pytest.warns(UserWarning, match="corrupt"):
            manager.restore(target=target)
        new_state = worker.make_state(102, size=512)
        with pytest.warns(UserWarning, match=r"saving step 2 replaces checkpoints \[2\]"):
            manager.save(2, new_state, extra={"step": 2, "resumed": True})
        state, extra = manager.restore(target=target)
    assert extra == {"step": 2, "resumed": True}
    _assert_bitwise_equal(state, new_state)


def test_unreadable_metrics_file_does_not_stop_the_directory_from_opening(tmp_path):
    _two_checkpoints(tmp_path)
    (tmp_path / "2" / "metrics" / "metrics").write_text('{"val_accu')
    with pytest.warns(UserWarning, match="metrics of step 2 .* unreadable"):
        manager = CheckpointManager(tmp_path)
    with manager:
        assert manager.steps() == [1, 2]
        _, extra = manager.restore(target=_abstract(worker.make_state(0, size=512)))
    assert extra["step"] == 2


def test_extra_and_metrics_accept_numpy_and_jax_scalars_stored_as_plain_numbers(tmp_path):
    extra = {"best": np.float32(0.25), "epoch": np.int64(3), "loss": jnp.asarray(1.5)}
    with CheckpointManager(tmp_path) as manager:
        manager.save(
            0, {"w": jnp.zeros(1)}, extra=extra, metrics={"val_accuracy": jnp.asarray(0.5)}
        )
        _, restored = manager.restore(target={"w": jnp.zeros(1)})
        assert manager.metrics(0)["val_accuracy"] == 0.5
    assert restored == {"best": 0.25, "epoch": 3, "loss": 1.5}
    assert json.loads(json.dumps(restored)) == restored


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(keep_last=0), "keep_last"),
        (dict(keep_best=-1), "keep_best"),
        (dict(best_mode="median"), "max, min"),
        (dict(best_metric=""), "best_metric"),
    ],
)
def test_constructor_rejects_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CheckpointManager(tmp_path, **kwargs)


@pytest.mark.parametrize(
    "step, state, extra, metrics, message",
    [
        (-1, {"w": jnp.zeros(1)}, {}, None, "non-negative int"),
        (0, {"key": jax.random.key(0)}, {}, None, "key_data"),
        (0, {"w": 1.5}, {}, None, r"pytree of arrays, got float at state\['w'\]"),
        (0, {"w": jnp.zeros(1)}, {"f": object()}, None, "JSON-serializable"),
        (0, {"w": jnp.zeros(1)}, [1], None, "extra to be a dict"),
        (0, {"w": jnp.zeros(1)}, {}, {"loss": 0.1}, r"metrics\['val_accuracy'\]"),
    ],
)
def test_save_rejects_bad_input_before_writing_anything(
    tmp_path, step, state, extra, metrics, message
):
    with CheckpointManager(tmp_path) as manager:
        with pytest.raises(ValueError, match=message):
            manager.save(step, state, extra=extra, metrics=metrics)
        assert manager.steps() == []
    assert not any(p.name.isdigit() or TMP_MARK in p.name for p in tmp_path.iterdir())


# Kill tests ----------------------------------------------------------------------------------


def _start_worker(directory, first_step, size, log, die_at=None):
    cmd = [sys.executable, str(WORKER), str(directory), str(first_step), "--size", str(size)]
    if die_at:
        cmd += ["--die-at", die_at]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    watchdog = threading.Timer(120, proc.kill)  # never hang the suite on a stuck worker
    watchdog.start()
    return proc, watchdog


def _saved_steps(lines):
    return [int(line.split()[1]) for line in lines if line.startswith("saved ")]


def _kill_and_resume(directory: Path, attempts: int, size: int, log_path: Path):
    """Kill a saving worker ``attempts`` times; after each kill check what a fresh manager sees.

    Attempts 0-2 kill at fixed points of the save (before the commit rename, after it, during
    retention); later ones SIGKILL after a delay derived from the attempt index, at varying
    points of the save loop.
    """
    target = _abstract(worker.make_state(0, size))
    acknowledged, first_step, restored_steps = -1, 0, []
    for attempt in range(attempts):
        die_at = worker.PHASES[attempt] if attempt < len(worker.PHASES) else None
        with open(log_path, "a") as log:
            proc, watchdog = _start_worker(directory, first_step, size, log, die_at)
            lines = []
            if die_at is None:
                wait_for = f"saving {first_step + attempt % 3}"
                for line in proc.stdout:
                    lines.append(line.strip())
                    if lines[-1] == wait_for:
                        break
                time.sleep((attempt * 7 % 12) * 0.008)  # 0 to 88 ms into the save loop
                proc.send_signal(signal.SIGKILL)
            lines += proc.stdout.read().split("\n")
            returncode = proc.wait()
            watchdog.cancel()
        assert returncode == -signal.SIGKILL, f"worker ended with {returncode}; see {log_path}"
        acknowledged = max([acknowledged, *_saved_steps(lines)])
        left_tmp = any(TMP_MARK in p.name for p in directory.iterdir())  # before a writer opens
        with CheckpointManager(directory, keep_last=worker.KEEP_LAST) as manager:
            state, extra = manager.restore(target=target)  # no warning: nothing is corrupt
            step = extra["step"]
            assert step == manager.latest_step() and step >= acknowledged
            assert extra == worker.make_extra(step, size)
            _assert_bitwise_equal(state, worker.make_state(step, size))
            for older in manager.steps()[:-1]:  # every listed checkpoint is complete
                _, older_extra = manager.restore(older, target=target)
                assert older_extra["step"] == older
        if die_at == "commit":  # the new step was fully written but never renamed into place
            assert step == _saved_steps(lines)[-1] and left_tmp
        if die_at == "fsync":  # renamed into place: it counts even though save() never returned
            assert step == _saved_steps(lines)[-1] + 1
            assert not left_tmp  # this writer removed the unfinished save of the previous one
        if die_at == "retention":  # killed while removing an old checkpoint that was moved aside
            assert any((directory / "_deleted").iterdir())
        restored_steps.append(step)
        first_step = step + 1
    return restored_steps


def test_sigkill_during_saves_always_leaves_the_latest_complete_checkpoint(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a fallback would mean a partial checkpoint
        steps = _kill_and_resume(tmp_path / "ckpt", 10, 256, tmp_path / "worker.log")
    assert steps == sorted(steps) and steps[-1] > steps[0]  # never lost ground, made progress


@pytest.mark.slow
def test_sigkill_during_saves_always_leaves_the_latest_complete_checkpoint_many_times(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        steps = _kill_and_resume(tmp_path / "ckpt", 30, 2048, tmp_path / "worker.log")
    assert steps == sorted(steps) and steps[-1] > steps[0]


# Containment: a run directory is untrusted input ------------------------------------------------


def _victim(tmp_path: Path) -> Path:
    """A directory outside the run directory holding one file that must survive."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (victim / "7").mkdir()  # looks like a checkpoint step to a sweep that follows links
    return victim


def _plant(ckpt: Path, victim: Path, where: str) -> None:
    if where == "_deleted":
        (ckpt / "_deleted").rmdir() if (ckpt / "_deleted").exists() else None
        (ckpt / "_deleted").symlink_to(victim, target_is_directory=True)
    elif where == "step":
        (ckpt / "3").symlink_to(victim, target_is_directory=True)
    elif where == "tmp":
        (ckpt / f"3{TMP_MARK}-1234").symlink_to(victim, target_is_directory=True)
    elif where == "file_in_step":
        (ckpt / "2" / "extra" / "metadata").unlink()
        (ckpt / "2" / "extra" / "metadata").symlink_to(victim / "keep.txt")


@pytest.mark.parametrize("where", ["_deleted", "step", "tmp", "file_in_step"])
def test_a_symlink_planted_in_the_checkpoint_directory_is_refused_and_nothing_outside_is_deleted(
    tmp_path, where
):
    ckpt = tmp_path / "run" / "checkpoints"
    with CheckpointManager(ckpt, keep_last=1) as manager:
        for step in (1, 2):
            manager.save(step, {"w": jnp.zeros(2)}, extra={}, metrics={"val_accuracy": 0.1})
    victim = _victim(tmp_path)
    _plant(ckpt, victim, where)
    with pytest.raises(UserError, match=r"symbolic link .*victim.*remove the link"):
        CheckpointManager(ckpt, keep_last=1)
    assert (victim / "keep.txt").read_text() == "precious" and (victim / "7").is_dir()


def test_a_symlink_planted_after_opening_is_refused_at_the_next_save(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints"
    victim = _victim(tmp_path)
    with CheckpointManager(ckpt, keep_last=1) as manager:
        manager.save(1, {"w": jnp.zeros(2)}, extra={}, metrics={"val_accuracy": 0.1})
        _plant(ckpt, victim, "_deleted")
        with pytest.raises(UserError, match=r"_deleted is a symbolic link"):
            manager.save(2, {"w": jnp.zeros(2)}, extra={}, metrics={"val_accuracy": 0.2})
    assert (victim / "keep.txt").read_text() == "precious" and (victim / "7").is_dir()
    assert os.path.islink(ckpt / "_deleted") and (ckpt / "1").is_dir()


def test_a_checkpoint_directory_that_is_itself_a_symlink_is_refused(tmp_path):
    victim = _victim(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").symlink_to(victim, target_is_directory=True)
    with pytest.raises(UserError, match=r"checkpoints is a symbolic link to .*victim"):
        CheckpointManager(tmp_path / "run" / "checkpoints")
    assert sorted(p.name for p in victim.iterdir()) == ["7", "keep.txt"]


def test_a_checkpoint_directory_that_is_a_file_is_refused_naming_it(tmp_path):
    (tmp_path / "checkpoints").write_text("not a directory")
    with pytest.raises(UserError, match=r"expected .*checkpoints to be a directory, got a file"):
        CheckpointManager(tmp_path / "checkpoints")


# Integrity: digest, run id, structure --------------------------------------------------------


def test_checkpoint_without_digest_is_refused_and_restore_falls_back_to_the_previous(tmp_path):
    _two_checkpoints(tmp_path)
    shutil.rmtree(tmp_path / "2" / "digest")
    _corrupt(tmp_path / "2", "flip_data_byte")  # without a digest this would load silently
    target = _abstract(worker.make_state(0, size=512))
    with CheckpointManager(tmp_path) as manager:
        with pytest.warns(UserWarning, match=r"step 2 .* no digest/ .* cannot be verified"):
            state, extra = manager.restore(target=target)
        assert extra == worker.make_extra(1)
        _assert_bitwise_equal(state, worker.make_state(1, size=512))
        with pytest.raises(UserError, match=r"step 2 in .* cannot be restored: .*no digest/"):
            manager.restore(2, target=target)


def test_a_checkpoint_of_another_run_is_refused_naming_both_run_ids(tmp_path):
    with CheckpointManager(tmp_path, run_id="moons-1") as manager:
        manager.save(1, {"w": jnp.ones(3)}, extra={"run": "moons"})
    with CheckpointManager(tmp_path, run_id="xor-7") as manager:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a refusal is not a fallback
            with pytest.raises(UserError, match=r"belongs to run 'moons-1', expected run 'xor-7'"):
                manager.restore(target={"w": jnp.zeros(3)}, expected_run_id="xor-7")
        state, extra = manager.restore(target={"w": jnp.zeros(3)}, expected_run_id="moons-1")
    assert extra == {"run": "moons"} and np.array_equal(state["w"], np.ones(3))


def test_a_different_model_is_reported_as_a_mismatch_naming_the_leaf_and_shapes(tmp_path):
    state = _train_state()
    with CheckpointManager(tmp_path) as manager:
        manager.save(3, state, extra={})
    wider = dict(
        state,
        params=dict(
            state["params"], dense={"w": jnp.zeros((5, 4)), "b": state["params"]["dense"]["b"]}
        ),
    )
    with CheckpointManager(tmp_path) as manager:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(UserError, match="does not match the target") as info:
                manager.restore(target=_abstract(wider))
    message = str(info.value)
    assert "params/dense/w is saved as (5, 3) float32, the target has (5, 4) float32" in message
    assert "corrupt" not in message and "incomplete" not in message


def test_a_target_with_a_missing_leaf_is_a_mismatch_naming_the_saved_leaf(tmp_path):
    with CheckpointManager(tmp_path) as manager:
        manager.save(0, {"a": jnp.zeros(2), "b": jnp.zeros(2)}, extra={})
        with pytest.raises(UserError, match=r"leaf b is saved but not in the target"):
            manager.restore(target={"a": jnp.zeros(2)})


def test_constructor_rejects_a_run_id_that_is_not_a_string(tmp_path):
    with pytest.raises(ValueError, match="run_id to be a string"):
        CheckpointManager(tmp_path, run_id=7)


# Full disk, read-only directory --------------------------------------------------------------


def _fail_json_writes(monkeypatch, code):
    from orbax.checkpoint._src.handlers import json_checkpoint_handler

    async def refuse(self, x, directory):
        raise OSError(code, os.strerror(code), str(directory))

    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", refuse)


def _fail_mkdir(monkeypatch, code):
    real_mkdir = os.mkdir

    def refuse(path, *args, **kwargs):
        if TMP_MARK in os.fspath(path):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", refuse)


@pytest.mark.parametrize(
    "fail, code, reason",
    [
        (_fail_json_writes, errno.ENOSPC, "No space left on device"),
        (_fail_mkdir, errno.EROFS, "Read-only file system"),
        (_fail_mkdir, errno.EACCES, "Permission denied"),
    ],
)
def test_a_full_disk_or_unwritable_directory_is_a_user_error_and_the_previous_step_survives(
    tmp_path, monkeypatch, fail, code, reason
):
    ckpt = tmp_path / "ckpt"
    with CheckpointManager(ckpt) as manager:
        manager.save(1, worker.make_state(1), extra=worker.make_extra(1))
        with monkeypatch.context() as patch:
            fail(patch, code)
            with pytest.raises(UserError) as info:
                manager.save(2, worker.make_state(2), extra=worker.make_extra(2))
    message = str(info.value)
    assert f"cannot write checkpoint step 2 in {ckpt}: {reason}" in message
    assert "checkpoint step 1 there is intact" in message
    with CheckpointManager(ckpt) as fresh:
        assert fresh.steps() == [1]
        state, extra = fresh.restore(target=_abstract(worker.make_state(0)))
    assert extra == worker.make_extra(1)
    _assert_bitwise_equal(state, worker.make_state(1))


def test_an_unrelated_save_failure_is_not_disguised_as_a_user_error(tmp_path, monkeypatch):
    from orbax.checkpoint._src.handlers import json_checkpoint_handler

    async def bug(self, x, directory):
        raise RuntimeError("a bug in a writer")

    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", bug)
    with CheckpointManager(tmp_path) as manager:
        with pytest.raises(Exception, match="a bug in a writer") as info:
            manager.save(0, {"w": jnp.zeros(1)}, extra={})
    assert not isinstance(info.value, UserError)


# load_best, read-only readers, plain orbax ---------------------------------------------------


def _fit_like_checkpoints(directory, run_id=None):
    """Checkpoints shaped as fit writes them: (train state, (best params, best model state))."""
    state = _train_state()
    best = (jax.tree.map(lambda x: x * 3, state["params"]), state["model_state"])
    with CheckpointManager(directory, run_id=run_id) as manager:
        manager.save(1, (state, (state["params"], state["model_state"])), extra={})
        manager.save(2, (state, best), extra={}, metrics={"val_accuracy": 0.5})
    return state, best


@pytest.mark.parametrize("target_kind", ["abstract", "arrays"])
def test_load_best_returns_the_best_pair_without_the_optimizer(tmp_path, target_kind):
    state, best = _fit_like_checkpoints(tmp_path, run_id="r1")
    target = (state["params"], state["model_state"])  # what model.init gives: no optimizer
    target = _abstract(target) if target_kind == "abstract" else target
    got = load_best(tmp_path, target, expected_run_id="r1")
    _assert_bitwise_equal(got, best)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(got))


def test_load_best_refuses_another_run_and_another_model(tmp_path):
    state, _ = _fit_like_checkpoints(tmp_path, run_id="r1")
    with pytest.raises(UserError, match="belongs to run 'r1', expected run 'r2'"):
        load_best(tmp_path, (state["params"], state["model_state"]), expected_run_id="r2")
    params = dict(state["params"], dense=dict(state["params"]["dense"], w=jnp.zeros((5, 4))))
    with pytest.raises(UserError, match=r"leaf 1/0/dense/w is saved as \(5, 3\) float32, the"):
        load_best(tmp_path, (params, state["model_state"]))


def test_load_best_falls_back_past_a_corrupt_newest_checkpoint(tmp_path):
    state, _ = _fit_like_checkpoints(tmp_path)
    _corrupt(tmp_path / "2", "truncate_data")
    with pytest.warns(UserWarning, match="step 2 .* is incomplete or corrupt"):
        got = load_best(tmp_path, (state["params"], state["model_state"]))
    _assert_bitwise_equal(got, (state["params"], state["model_state"]))  # step 1's best


def test_load_best_of_a_run_without_checkpoints_is_a_user_error_naming_it(tmp_path):
    with pytest.raises(
        UserError, match=r"no checkpoint in .*checkpoints \(checkpoints were off.*; train the run"
    ):
        load_best(tmp_path / "checkpoints", ({"w": jnp.zeros(1)}, {}))
    assert not (tmp_path / "checkpoints").exists()  # a reader creates nothing


def test_a_read_only_reader_leaves_a_writers_unfinished_save_alone(tmp_path):
    _two_checkpoints(tmp_path)
    unfinished = tmp_path / f"3{TMP_MARK}-1700000000"
    (unfinished / "state").mkdir(parents=True)
    with CheckpointManager(tmp_path, read_only=True) as reader:
        _, extra = reader.restore(target=_abstract(worker.make_state(0, size=512)))
        with pytest.raises(ValueError, match="read_only=True"):
            reader.save(3, worker.make_state(3), extra={})
    assert extra["step"] == 2 and unfinished.is_dir()
    with CheckpointManager(tmp_path) as writer:  # a writer removes it when it opens
        writer.save(3, worker.make_state(3), extra={})
    assert not unfinished.exists()


def test_plain_orbax_restores_a_run_as_the_readme_shows(tmp_path):
    import orbax.checkpoint as ocp

    state, best = _fit_like_checkpoints(tmp_path / "checkpoints")
    # The README snippet, verbatim apart from the directory.
    manager = ocp.CheckpointManager(tmp_path / "checkpoints")
    step = manager.latest_step()
    restored = manager.restore(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardRestore(), extra=ocp.args.JsonRestore()),
    )
    train_state, (best_params, best_model_state) = restored["state"]
    manager.close()
    assert step == 2 and restored["extra"] == {}
    _assert_bitwise_equal((best_params, best_model_state), best)
    _assert_bitwise_equal(train_state["params"], state["params"])
    metrics = json.loads((tmp_path / "checkpoints" / "2" / "metrics" / "metrics").read_text())
    assert metrics == {"val_accuracy": 0.5}


def _tiny_fit(run, epochs, **kw):
    from jaxnn import data, models
    from jaxnn.train import FitConfig, fit

    splits = data.load("digits", seed=0)
    model = models.build("mlp", splits.info, hidden=(8,))
    cfg = FitConfig(epochs=epochs, batch_size=256, progress=False, keep_last=1)
    return model, fit(model, splits, cfg, out_dir=run, verbose=False, **kw)


def test_resuming_a_run_whose_deleted_folder_links_outside_deletes_nothing_there(tmp_path):
    """The reported attack, end to end: ``fit(resume=True)`` on a run with a planted link."""
    run = tmp_path / "run"
    _tiny_fit(run, epochs=1)
    victim = _victim(tmp_path)
    _plant(run / "checkpoints", victim, "_deleted")
    with pytest.raises(UserError, match=r"checkpoints/_deleted is a symbolic link to .*victim"):
        _tiny_fit(run, epochs=3, resume=True)
    assert (victim / "keep.txt").read_text() == "precious" and (victim / "7").is_dir()


def test_load_best_of_a_fit_run_gives_fits_best_params_from_the_model_alone(tmp_path):
    model, result = _tiny_fit(tmp_path / "run", epochs=3)
    target = model.init(jax.random.key(123))  # (params, model_state): no optimizer, no data
    best = load_best(tmp_path / "run" / "checkpoints", target)
    _assert_bitwise_equal(best, (result.best_params, result.best_model_state))


def test_a_failed_save_is_reported_even_while_orbaxs_writer_thread_still_runs():
    # orbax's writer thread re-raises its failure from join(); a thread still alive when the
    # failed save settles once let that OSError escape instead of the one-line UserError
    import threading

    from jaxnn.train.checkpoint import _settle

    release = threading.Event()

    class _SignalingThread(threading.Thread):
        def join(self, timeout=None):
            super().join(timeout)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    class Manager:
        def wait_until_finished(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    thread = _SignalingThread(target=release.wait, args=(5.0,))
    thread.start()
    threading.Timer(0.2, release.set).start()
    _settle(Manager())  # waits for the thread and raises nothing
    assert not thread.is_alive()
