import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxnn import data, models
from jaxnn.data import pipeline
from jaxnn.train import FitConfig, evaluate, fit
from jaxnn.train.state import params_sha256

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    splits, _ = pipeline.standardize(data.load("digits", seed=0))
    return splits


def _mlp(splits, **kw):
    module = models.get("mlp")
    return models.build("mlp", module.config_for(splits.info, **{"hidden": (32,), **kw}))


def _cfg(**kw):
    return FitConfig(
        **{
            "epochs": 2,
            "batch_size": 64,
            "lr": 3e-3,
            "progress": False,
            "eval_batch_size": 256,
            **kw,
        }
    )


def test_same_seed_twice_gives_identical_params(digits):
    a = fit(_mlp(digits), digits, _cfg(), verbose=False).summary
    b = fit(_mlp(digits), digits, _cfg(), verbose=False).summary
    assert a["params_sha256"] == b["params_sha256"]
    c = fit(_mlp(digits), digits, _cfg(seed=1), verbose=False).summary
    assert c["params_sha256"] != a["params_sha256"]


def test_scan_epochs_give_the_params_of_the_python_loop_bit_for_bit(digits):
    loop = fit(_mlp(digits), digits, _cfg(), verbose=False)
    scan = fit(_mlp(digits), digits, _cfg(scan=True), verbose=False)
    assert loop.summary["params_sha256"] == scan.summary["params_sha256"]
    assert loop.history[-1]["train_loss"] == scan.history[-1]["train_loss"]


def test_run_directory_holds_the_documented_files_and_keys(digits, tmp_path):
    fit(_mlp(digits), digits, _cfg(), out_dir=tmp_path, verbose=False)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in (
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "grad_norm",
        "seconds",
    ):
        assert all(isinstance(r[key], (int, float)) for r in rows), key
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "best_epoch",
        "best_val_accuracy",
        "test_accuracy",
        "test_loss",
        "epochs_run",
        "stopped_reason",
        "params_sha256",
    ):
        assert key in summary, key
    assert summary["epochs_run"] == 2 and summary["stopped_reason"] == "completed"
    assert list((tmp_path / "tensorboard").glob("*/train/events.out.tfevents.*"))
    assert (tmp_path / "config.json").exists()
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_digits_mlp_learns(digits):
    result = fit(_mlp(digits), digits, _cfg(epochs=10), verbose=False)
    assert result.summary["best_val_accuracy"] > 0.9
    assert result.summary["test_accuracy"] > 0.85


def test_lr_1e3_is_stopped_by_the_guard_within_3_steps(digits, capsys):
    result = fit(_mlp(digits), digits, _cfg(lr=1e3, optimizer="sgd"), verbose=True)
    assert result.summary["stopped_reason"] == "diverged"
    step = int(result.summary["message"].split("at step ")[1].split(":")[0])
    assert step <= 3
    assert "diverged at step" in capsys.readouterr().out
    for leaf in jax.tree.leaves(result.state.params):
        assert np.all(np.isfinite(leaf))


def test_200_steps_at_a_sane_lr_raise_no_alarm(digits):
    cfg = _cfg(epochs=10, batch_size=64, lr=1e-3)  # 22 steps per epoch
    result = fit(_mlp(digits), digits, cfg, verbose=False)
    assert result.summary["steps"] >= 200
    assert result.summary["stopped_reason"] == "completed"


def test_early_stopping_stops_an_overfitting_run_and_restores_the_best_epoch(digits):
    model = _mlp(digits, hidden=(256, 256))
    cfg = _cfg(epochs=60, lr=1e-2, batch_size=32, patience=3, monitor="val_loss")
    result = fit(model, digits, cfg, verbose=False)
    s = result.summary
    assert s["stopped_reason"] == "early_stopping"
    assert s["epochs_run"] < 60 and s["epochs_run"] == s["best_epoch"] + 3
    val = evaluate(model, result.best_params, result.best_model_state, digits.val)
    best = result.history[s["best_epoch"] - 1]
    assert val["loss"] == pytest.approx(best["val_loss"], rel=1e-5)
    assert min(r["val_loss"] for r in result.history) == pytest.approx(best["val_loss"])


def test_batch_size_larger_than_the_train_split_is_clipped_with_one_line_of_notice(digits, capsys):
    n = len(digits.train)
    result = fit(_mlp(digits), digits, _cfg(batch_size=10**6), verbose=True)
    notices = [line for line in capsys.readouterr().out.splitlines() if "clipped" in line]
    assert notices == [
        f"batch size 1000000 is more than the {n} training examples: clipped to {n} "
        "(one step per epoch)"
    ]
    assert result.summary["steps"] == 2  # one step of all n examples per epoch


def _small(splits, n):
    return splits.replace(train=splits.train.take(range(n)))


@pytest.mark.parametrize("last_batch, steps", [("train", 4), ("drop", 3)])
def test_the_last_partial_batch_is_one_more_step_unless_dropped(digits, last_batch, steps):
    small = _small(digits, 100)  # 100 = 3 x 32 + 4
    cfg = _cfg(epochs=3, batch_size=32, last_batch=last_batch)
    result = fit(_mlp(small), small, cfg, verbose=False)
    assert result.summary["steps"] == 3 * steps


def test_the_last_batch_changes_the_params_it_trains(digits):
    small = _small(digits, 100)
    kept = fit(_mlp(small), small, _cfg(batch_size=32), verbose=False).summary
    dropped = fit(_mlp(small), small, _cfg(batch_size=32, last_batch="drop"), verbose=False)
    assert kept["params_sha256"] != dropped.summary["params_sha256"]


def test_with_no_remainder_train_and_drop_give_the_same_params(digits):
    small = _small(digits, 96)  # 3 x 32: no last batch to train or drop
    a = fit(_mlp(small), small, _cfg(batch_size=32), verbose=False).summary
    b = fit(_mlp(small), small, _cfg(batch_size=32, last_batch="drop"), verbose=False).summary
    assert a["params_sha256"] == b["params_sha256"] and a["steps"] == b["steps"] == 6


@pytest.mark.parametrize("placement", [{}, {"scan": True}])
def test_max_steps_trains_exactly_that_many_steps_cutting_the_last_epoch_short(digits, placement):
    small = _small(digits, 100)  # 4 steps an epoch at batch 32 (3 full, one of 4)
    cut = fit(_mlp(small), small, _cfg(max_steps=10, batch_size=32, **placement), verbose=False)
    assert cut.summary["steps"] == 10 and [r["epoch"] for r in cut.history] == [1, 2, 3]
    # the first two epochs are those of a run of two epochs (a constant learning rate)
    two = fit(_mlp(small), small, _cfg(epochs=2, batch_size=32, **placement), verbose=False)
    assert [r["train_loss"] for r in cut.history[:2]] == [r["train_loss"] for r in two.history]
    whole = fit(_mlp(small), small, _cfg(max_steps=8, batch_size=32, **placement), verbose=False)
    assert whole.summary["params_sha256"] == two.summary["params_sha256"]


def test_max_steps_replaces_epochs_and_sets_the_schedule_length(digits):
    small = _small(digits, 100)
    cfg = _cfg(epochs=50, max_steps=6, batch_size=32, schedule="cosine", min_lr=1e-5)
    result = fit(_mlp(small), small, cfg, verbose=False)
    assert result.summary["steps"] == 6 and result.summary["epochs_run"] == 2
    # the schedule decays over the 6 steps: the second epoch's mean rate is that of steps 4, 5
    from jaxnn.train.loop import make_optimizer

    _, schedule = make_optimizer(cfg.optimization, total_steps=6)
    want = (float(schedule(4)) + float(schedule(5))) / 2
    assert result.history[-1]["lr"] == pytest.approx(want, rel=1e-5)
    assert want < 0.3 * cfg.lr  # far below the rate of a 50-epoch decay at step 5


def _count_train_traces(model):
    """The model with an ``apply`` that counts its training traces (one per compiled step)."""
    import dataclasses

    traces = []

    def apply(params, x, *, state=None, train=False, key=None):
        if train:
            traces.append(x.shape)
        return model.apply(params, x, state=state, train=train, key=key)

    return dataclasses.replace(model, apply=apply), traces


@pytest.mark.parametrize(
    "placement", [{"device_data": False}, {"device_data": True}, {"scan": True}]
)
def test_every_execution_path_compiles_two_train_steps_and_sees_every_example(digits, placement):
    small = _small(digits, 100)
    model, traces = _count_train_traces(_mlp(small))
    cfg = _cfg(epochs=3, batch_size=32, **placement)
    result = fit(model, small, cfg, verbose=False)
    shape = small.info.input_shape
    assert sorted(set(traces)) == [(4, *shape), (32, *shape)] and len(traces) == 2, traces
    assert result.summary["steps"] == 12


@pytest.mark.parametrize("placement", [{"device_data": False}, {"scan": True}])
def test_every_execution_path_gives_the_same_params_with_a_last_batch(digits, placement):
    small = _small(digits, 100)
    indexed = fit(_mlp(small), small, _cfg(batch_size=32), verbose=False)
    other = fit(_mlp(small), small, _cfg(batch_size=32, **placement), verbose=False)
    assert other.summary["params_sha256"] == indexed.summary["params_sha256"]
    assert other.history[-1]["train_loss"] == indexed.history[-1]["train_loss"]


def test_the_epoch_train_loss_weights_each_step_by_its_real_examples(digits):
    small = _small(digits, 100)
    result = fit(_mlp(small), small, _cfg(epochs=1, batch_size=32, lr=1e-9), verbose=False)
    # with lr 1e-9 the params barely move: the epoch's loss is the mean over its 100 examples
    import optax

    from jaxnn.train.state import create_train_state

    start = create_train_state(_mlp(small), optax.adam(1e-9), 0)
    whole = evaluate(_mlp(small), start.params, start.model_state, small.train)
    assert result.history[0]["train_loss"] == pytest.approx(whole["loss"], rel=1e-4)


@pytest.mark.parametrize(
    "field, value",
    [("epochs", 0), ("lr", -1.0), ("monitor", "loss"), ("patience", -1), ("max_steps", -1)],
)
def test_fit_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        _cfg(**{field: value})


def _train_cmd(out, epochs, *extra):
    return [
        sys.executable,
        "-m",
        "jaxnn",
        "train",
        "--model",
        "mlp",
        "--dataset",
        "digits",
        "--epochs",
        str(epochs),
        "--batch-size",
        "64",
        "--lr",
        "3e-3",
        "--seed",
        "3",
        "--optimizer",
        "adam",
        "--schedule",
        "cosine",
        "--model-config",
        "hidden=(32,)",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}


def _kill_after_an_epoch(cmd, extra_seconds: float, epochs_logged: int = 1) -> bool:
    """Start a run, SIGKILL it ``extra_seconds`` after it logs ``epochs_logged`` epochs (before,
    during or after that epoch's checkpoint save); False if it finished first."""
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("epoch ")
        if seen == epochs_logged:
            time.sleep(extra_seconds)
            proc.send_signal(signal.SIGKILL)
            break
    proc.stdout.close()
    return proc.wait() == -signal.SIGKILL


def _run(cmd) -> None:
    subprocess.run(cmd, env=_env(), check=True, capture_output=True, timeout=300)


def _resume_and_compare(straight, killed, epochs: int) -> None:
    """Finish the killed run with --resume; it must equal the straight run bit for bit."""
    _run(_train_cmd(killed, epochs, "--resume"))
    a = json.loads((straight / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    assert a["params_sha256"] == b["params_sha256"]
    assert a["best_params_sha256"] == b["best_params_sha256"]
    assert a["test_accuracy"] == b["test_accuracy"]
    rows = [json.loads(x)["epoch"] for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert rows == list(range(1, epochs + 1))


def test_resume_after_sigkill_is_bit_exact(tmp_path, digits):
    epochs = 4
    n = len(digits.train)
    assert n % 64, "the resumed run must have a last, partial batch each epoch"
    _run(_train_cmd(tmp_path / "straight", epochs))
    steps = json.loads((tmp_path / "straight" / "summary.json").read_text())["steps"]
    assert steps == epochs * -(-n // 64)
    killed = tmp_path / "killed"
    assert _kill_after_an_epoch(_train_cmd(killed, epochs), 0.0, epochs_logged=2)
    done = len((killed / "metrics.jsonl").read_text().splitlines())
    assert 2 <= done < epochs, "the run was not killed mid-training"
    _resume_and_compare(tmp_path / "straight", killed, epochs)


@pytest.mark.slow
def test_ten_kills_at_different_moments_then_resume_is_bit_exact(tmp_path):
    epochs = 14
    _run(_train_cmd(tmp_path / "straight", epochs))
    chained = tmp_path / "chained"
    kills = sum(
        _kill_after_an_epoch(_train_cmd(chained, epochs, "--resume"), 0.01 * (attempt * 7 % 10))
        for attempt in range(10)  # each run resumes the one killed before it
    )
    assert kills == 10
    _resume_and_compare(tmp_path / "straight", chained, epochs)


def test_resume_with_no_checkpoint_yet_starts_from_step_0(digits, tmp_path):
    fresh = fit(_mlp(digits), digits, _cfg(epochs=1), out_dir=tmp_path / "a", verbose=False)
    resumed = fit(
        _mlp(digits), digits, _cfg(epochs=1), out_dir=tmp_path / "b", resume=True, verbose=False
    )
    assert resumed.summary["params_sha256"] == fresh.summary["params_sha256"]


def test_resume_without_checkpoints_enabled_is_refused(digits, tmp_path):
    with pytest.raises(
        ValueError, match=r"resume=True needs out_dir and checkpoints \(checkpoint=True\)"
    ):
        fit(
            _mlp(digits),
            digits,
            _cfg(checkpoint=False),
            out_dir=tmp_path,
            resume=True,
            verbose=False,
        )


def test_test_split_is_opened_once(digits):
    splits, _ = pipeline.standardize(data.load("digits", seed=0))
    fit(_mlp(splits), splits, _cfg(epochs=1), verbose=False)
    assert splits.test.unseal_count == 1


def test_params_sha256_in_summary_matches_the_returned_params(digits):
    result = fit(_mlp(digits), digits, _cfg(epochs=1), verbose=False)
    assert result.summary["params_sha256"] == params_sha256(result.state.params)


def test_streaming_host_batches_gives_the_params_of_device_resident_data(digits):
    on_device = fit(_mlp(digits), digits, _cfg(), verbose=False)
    streamed = fit(_mlp(digits), digits, _cfg(device_data=False), verbose=False)
    assert on_device.summary["params_sha256"] == streamed.summary["params_sha256"]


def test_a_non_finite_gradient_stops_the_run_naming_the_step_and_leaf(digits):
    import dataclasses

    import jax.numpy as jnp

    base = _mlp(digits)

    def poisoned(params, x, *, state=None, train=False, key=None):
        logits, state = base.apply(params, x, state=state, train=train, key=key)
        return logits + jnp.log(params["dense_0"]["b"][0] - 1.0), state  # log of a negative: NaN

    model = dataclasses.replace(base, apply=poisoned)
    result = fit(model, digits, _cfg(), verbose=False)
    assert result.summary["stopped_reason"] == "diverged"
    assert "at step 0" in result.summary["message"]
    assert "first non-finite parameter leaf: ['dense_0']['b']" in result.summary["message"]
    initial, _ = model.init(jax.random.split(jax.random.PRNGKey(0))[0])
    for a, b in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(initial), strict=True):
        np.testing.assert_array_equal(a, b)  # the bad update was never applied


def test_bfloat16_compute_trains_with_float32_master_params(digits):
    result = fit(_mlp(digits), digits, _cfg(epochs=4, dtype="bfloat16"), verbose=False)
    assert result.summary["best_val_accuracy"] > 0.85
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(result.state.params))


@pytest.mark.slow
def test_bfloat16_trains_mnist1d_to_within_one_point_of_float32():
    splits, _ = pipeline.standardize(data.load("mnist1d", seed=0))
    recipe = {k: v for k, v in models.recipe("mlp", "mnist1d").items() if k != "model_config"}
    model = models.build("mlp", splits.info, **models.recipe("mlp", "mnist1d")["model_config"])
    scores = {
        dtype: fit(model, splits, FitConfig(**recipe, dtype=dtype, progress=False), verbose=False)
        for dtype in ("float32", "bfloat16")
    }
    f32, bf16 = (scores[d].summary["test_accuracy"] for d in ("float32", "bfloat16"))
    assert abs(f32 - bf16) <= 0.01, (f32, bf16)


def test_a_cnn_with_batch_norm_trains_and_moves_its_running_statistics(digits):
    model = models.build(
        "cnn", digits.info, channels=(4,), hidden=(8,), batch_norm=True, dropout=0.0
    )
    result = fit(model, digits, _cfg(epochs=1), verbose=False)
    mean, var = (np.asarray(result.best_model_state["bn_0"][k]) for k in ("mean", "var"))
    assert np.all(np.isfinite(mean)) and np.any(mean != 0) and np.any(var != 1)


def test_processes_agree_on_a_user_file_whose_snapshot_only_process_0_records(digits):
    # process 0 writes the run's data snapshot and records it; the others must still agree
    from jaxnn.train.loop import _agreed_part

    source = {"spec": "csv:d.csv", "sha256": "ab" * 32}
    first = {"model": "mlp", "data": {"source": {**source, "snapshot": {"file": "data.npz"}}}}
    other = {"model": "mlp", "data": {"source": dict(source)}}
    assert _agreed_part(first, digits) == _agreed_part(other, digits)
    changed = {"model": "mlp", "data": {"source": {**source, "sha256": "cd" * 32}}}
    assert _agreed_part(changed, digits) != _agreed_part(other, digits)
    assert first["data"]["source"]["snapshot"] == {"file": "data.npz"}  # the record is kept
