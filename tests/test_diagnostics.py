"""Tests for jaxnn.diagnostics: each detector fires on the fault that jaxnn.data.corrupt injects
and stays quiet on clean data."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import diagnostics as D
from jaxnn.data import load, pipeline
from jaxnn.data.corrupt import class_imbalance, distribution_shift, label_noise, spurious_feature
from jaxnn.layers import dense, init_dense
from jaxnn.models import build
from jaxnn.train import FitConfig, fit

GRAD_CASES = {}  # verdicts over data and histories; the registry does not walk this module


@functools.cache
def _mnist1d():
    return load("mnist1d", seed=0)


@functools.cache
def _digits():
    splits, _ = pipeline.standardize(load("digits", seed=0))
    return splits


def _history(train_loss, val_loss, train_acc=None, val_acc=None):
    rows = []
    for i, (tl, vl) in enumerate(zip(train_loss, val_loss, strict=True)):
        row = {"epoch": i + 1, "train_loss": tl, "val_loss": vl}
        if train_acc is not None:
            row.update(train_accuracy=train_acc[i], val_accuracy=val_acc[i])
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# fit_diagnosis


def test_fit_diagnosis_calls_flat_training_loss_underfitting():
    hist = _history([2.30, 2.29, 2.28, 2.28], [2.31, 2.30, 2.30, 2.29], [0.12] * 4, [0.11] * 4)
    out = D.fit_diagnosis(hist)
    assert out.verdict == "underfitting"
    assert out.loss_drop < 0.1


def test_fit_diagnosis_calls_falling_train_rising_val_overfitting_and_names_best_epoch():
    train = [2.0, 1.0, 0.5, 0.3, 0.2, 0.1, 0.05]
    val = [2.0, 1.2, 0.9, 1.0, 1.1, 1.3, 1.5]
    acc_t = [0.3, 0.7, 0.85, 0.9, 0.95, 0.98, 0.99]
    acc_v = [0.3, 0.65, 0.75, 0.74, 0.74, 0.73, 0.72]
    out = D.fit_diagnosis(_history(train, val, acc_t, acc_v))
    assert out.verdict == "overfitting"
    assert out.best_val_epoch == 3
    assert out.epochs_since_best_val == 4
    assert out.val_loss_rise == pytest.approx(0.6)


def test_fit_diagnosis_calls_falling_train_and_val_healthy():
    train = [2.0, 1.0, 0.6, 0.45, 0.4]
    val = [2.0, 1.1, 0.7, 0.55, 0.5]
    out = D.fit_diagnosis(
        _history(train, val, [0.3, 0.7, 0.8, 0.85, 0.87], [0.3, 0.68, 0.78, 0.8, 0.82])
    )
    assert out.verdict == "healthy"
    assert out.reasons == () and out.ok


def test_fit_diagnosis_takes_a_rise_of_thousandths_of_a_nat_for_noise_not_overfitting():
    # a run at 100% validation accuracy: its val loss went from 0.0034 to 0.0074 near the end
    val = [0.5, 0.05, 0.0034, 0.006, 0.005, 0.0074]
    hist = _history(
        [0.9, 0.1, 0.01, 0.005, 0.003, 0.002], val, [0.7, 1, 1, 1, 1, 1], [0.8] + [1] * 5
    )
    assert D.fit_diagnosis(hist).verdict == "healthy"
    assert D.fit_diagnosis(hist, min_val_rise=0.0).verdict == "overfitting"


def test_fit_diagnosis_thresholds_are_keywords_that_change_the_verdict():
    hist = _history([2.0, 1.0, 0.6], [2.0, 1.1, 0.7], [0.3, 0.6, 0.7], [0.3, 0.6, 0.65])
    assert D.fit_diagnosis(hist).verdict == "healthy"
    assert D.fit_diagnosis(hist, min_train_accuracy=0.8).verdict == "underfitting"
    assert D.fit_diagnosis(hist, max_accuracy_gap=0.01).verdict == "overfitting"


def test_fit_diagnosis_works_without_accuracies():
    out = D.fit_diagnosis(_history([1.0, 0.5, 0.4], [1.0, 0.6, 0.5]))
    assert out.verdict == "healthy" and out.accuracy_gap is None


def test_fit_diagnosis_rejects_short_or_incomplete_histories():
    with pytest.raises(ValueError, match="at least 2 epochs, got 1"):
        D.fit_diagnosis(_history([1.0], [1.0]))
    with pytest.raises(ValueError, match="'val_loss'"):
        D.fit_diagnosis([{"train_loss": 1.0}, {"train_loss": 0.5}])


@functools.cache
def _real_fits():
    splits = _digits().replace(train=_digits().train.take(range(400)))
    model = build("mlp", splits.info, hidden=(64,))
    runs = {}
    for label, lr in (("trained", 3e-3), ("starved", 1e-6)):
        cfg = FitConfig(epochs=8, batch_size=50, lr=lr, progress=False, checkpoint=False, seed=0)
        runs[label] = fit(model, splits, cfg, verbose=False).history
    return runs


def test_fit_diagnosis_of_real_runs_tells_a_trained_mlp_from_one_with_a_tiny_learning_rate():
    runs = _real_fits()
    assert D.fit_diagnosis(runs["trained"]).verdict == "healthy"
    starved = D.fit_diagnosis(runs["starved"])
    assert starved.verdict == "underfitting"
    assert starved.final_train_accuracy < 0.6


# ---------------------------------------------------------------------------------------------
# gradients


def _deep_grads(activation, scale, depth=12, width=16):
    keys = jax.random.split(jax.random.key(0), depth + 1)
    params = {f"dense_{i}": init_dense(keys[i], width, width) for i in range(depth)}
    params = jax.tree.map(lambda p: p * scale, params)
    x = jax.random.normal(keys[-1], (32, width))  # (B, D)

    def loss(p):
        h = x
        for i in range(depth):
            h = activation(dense(p[f"dense_{i}"], h))  # (B, D)
        return jnp.mean(h**2)

    return jax.grad(loss)(params)


def test_layer_grad_norms_groups_leaves_by_layer_in_natural_order(transform):
    grads = {f"dense_{i}": {"w": jnp.full((2, 2), float(i)), "b": jnp.ones(2)} for i in range(12)}
    norms = transform(D.layer_grad_norms)(grads)
    assert list(D.layer_grad_norms(grads)) == [f"['dense_{i}']" for i in range(12)]
    assert list(D.gradient_health(norms).norms) == [f"['dense_{i}']" for i in range(12)]
    for i in range(12):
        want = np.sqrt(4 * i**2 + 2)
        np.testing.assert_allclose(norms[f"['dense_{i}']"], want, rtol=1e-6)


def test_gradient_health_flags_vanishing_gradients_of_a_deep_sigmoid_stack():
    out = D.gradient_health(_deep_grads(jax.nn.sigmoid, 1.0))
    assert out.vanishing and not out.exploding
    assert out.ratio < 1e-3


def test_gradient_health_flags_exploding_gradients_of_an_over_scaled_linear_stack():
    out = D.gradient_health(_deep_grads(lambda h: h, 4.0))
    assert out.exploding and not out.vanishing
    assert out.max_norm > 1e3


def test_gradient_health_passes_a_he_scaled_relu_stack():
    # init_dense's default is Glorot; sqrt(2) rescales it to He's variance for relu
    out = D.gradient_health(_deep_grads(jax.nn.relu, np.sqrt(2.0)))
    assert out.verdict == "healthy" and out.ok, out
    assert 1e-2 < out.ratio < 1e2


def test_gradient_health_accepts_norm_lists_and_flags_non_finite_norms_as_exploding():
    assert D.gradient_health([1e-9, 1e-3, 1.0]).vanishing
    assert D.gradient_health({"a": 1.0, "b": 1.0}).ok
    assert D.gradient_health([float("nan"), 1.0]).exploding
    assert D.gradient_health([1e2, 1e-2]).exploding  # grows 1e4-fold toward the input
    assert D.gradient_health([1e4, 1.0], max_norm=1e5, max_growth=1e5).ok
    with pytest.raises(ValueError, match="non-negative norms"):
        D.gradient_health([-1.0, 1.0])
    with pytest.raises(ValueError, match="with leaves, got none"):
        D.gradient_health({})


# ---------------------------------------------------------------------------------------------
# mislabeled examples


def test_suspicious_labels_returns_the_top_losses_highest_first(transform):
    loss = jnp.array([0.1, 5.0, 0.2, 3.0, 0.3, 4.0, 0.0, 0.1, 0.2, 0.3])  # (N,)
    idx = transform(functools.partial(D.suspicious_labels, fraction=0.3))(loss)
    assert idx.tolist() == [1, 5, 3]
    per_row = jax.vmap(functools.partial(D.suspicious_labels, fraction=0.3))(
        jnp.stack([loss, -loss])
    )
    assert per_row[0].tolist() == [1, 5, 3] and per_row[1].tolist() == [6, 0, 7]


def test_suspicious_labels_rejects_bad_shapes_and_fractions():
    with pytest.raises(ValueError, match=r"shape \(N,\) with N >= 1, got shape \(2, 3\)"):
        D.suspicious_labels(jnp.zeros((2, 3)), fraction=0.1)
    with pytest.raises(ValueError, match=r"shape \(N,\) with N >= 1, got shape \(0,\)"):
        D.suspicious_labels(jnp.zeros((0,)), fraction=0.1)
    with pytest.raises(ValueError, match="fraction in"):
        D.suspicious_labels(jnp.zeros(4), fraction=0.0)


@functools.cache
def _noisy_model():
    splits = _digits()
    noisy, record = label_noise(splits.train, 0.2, num_classes=10, seed=0)
    model = build("mlp", splits.info, hidden=(64,))
    cfg = FitConfig(epochs=6, batch_size=64, lr=3e-3, progress=False, checkpoint=False)
    result = fit(model, splits.replace(train=noisy), cfg, verbose=False)
    logits, _ = model.apply(result.best_params, noisy.x, state=result.best_model_state)  # (N, C)
    return splits.train, noisy, record, logits


def test_suspicious_labels_finds_injected_label_noise_after_brief_training():
    clean, noisy, record, logits = _noisy_model()
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, noisy.y)  # (N,)
    flagged = np.asarray(D.suspicious_labels(loss, fraction=0.2))
    precision = np.isin(flagged, record["indices"]).mean()
    assert precision > 3 * record["fraction"], precision  # random flagging scores 0.2


def test_suspicious_labels_under_the_true_labels_does_not_pick_out_the_noisy_indices():
    # the flagged examples are wrong labels, not merely hard inputs: with the true labels the
    # same model's top losses land on the recorded indices at about the noise rate
    clean, noisy, record, logits = _noisy_model()
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, clean.y)  # (N,)
    flagged = np.asarray(D.suspicious_labels(loss, fraction=0.2))
    assert np.isin(flagged, record["indices"]).mean() < 2 * record["fraction"]


# ---------------------------------------------------------------------------------------------
# class imbalance


def test_class_balance_flags_exactly_the_shrunk_minority_classes():
    train = _mnist1d().train
    imbalanced, record = class_imbalance(train, 0.2, seed=0)
    out = D.class_balance(imbalanced.y, 10)
    assert out.verdict == "imbalanced" and not out.ok
    assert list(out.flagged_classes) == list(record["minority_classes"])
    assert list(out.counts) == [record["counts_after"][c] for c in range(10)]
    assert out.imbalance_ratio > 4


def test_class_balance_does_not_flag_the_clean_training_split():
    out = D.class_balance(_mnist1d().train.y, 10)
    assert out.verdict == "healthy" and out.flagged_classes == ()
    assert out.imbalance_ratio < 1.2


def test_class_balance_reports_an_absent_class_as_infinite_imbalance():
    out = D.class_balance(np.array([0, 0, 1, 1]), 3)
    assert out.flagged_classes == (2,) and out.imbalance_ratio == float("inf")


def test_class_balance_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"shape \(N,\) with N >= 1, got shape \(2, 2\)"):
        D.class_balance(np.zeros((2, 2), np.int32), 3)
    with pytest.raises(ValueError, match="expected integer labels, got dtype float32"):
        D.class_balance(np.zeros(3, np.float32), 3)
    with pytest.raises(ValueError, match=r"labels in \[0, 3\), got values in \[0, 5\]"):
        D.class_balance(np.array([0, 5]), 3)


# ---------------------------------------------------------------------------------------------
# distribution shift


@pytest.mark.parametrize("kind", ["gaussian_noise", "scale", "offset"])
def test_distribution_shift_flags_each_injected_shift(kind):
    splits = _mnist1d()
    shifted, _ = distribution_shift(splits.val, kind=kind, severity=1.0, seed=0)
    assert D.distribution_shift(splits.train.x, shifted.x).verdict == "shifted"


def test_distribution_shift_does_not_flag_the_clean_validation_split():
    splits = _mnist1d()
    out = D.distribution_shift(splits.train.x, splits.val.x)
    assert out.verdict == "clean" and out.ok
    assert out.mean_score < 0.1 and out.scale_score < 0.1


def test_feature_shift_measures_an_offset_in_training_standard_deviations(transform):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3)) * np.array([1.0, 2.0, 4.0])  # (N, F)
    b = rng.standard_normal((4000, 3)) * np.array([1.0, 2.0, 4.0]) + 2.0  # (M, F)
    z, v = transform(D.feature_shift)(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(z, [2.0, 1.0, 0.5], atol=0.06)
    np.testing.assert_allclose(v, 0.0, atol=0.05)


def test_feature_shift_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(4,\)"):
        D.feature_shift(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"N >= 2, got shape \(1, 3\)"):
        D.distribution_shift(np.zeros((5, 3)), np.zeros((1, 3)))


# ---------------------------------------------------------------------------------------------
# spurious features


def test_spurious_feature_check_names_every_planted_pattern_and_its_class():
    splits = _mnist1d()
    (train, val), record = spurious_feature(splits.train, splits.val, strength=0.9, seed=0)
    out = D.spurious_feature_check(
        train.x, train.y, val.x, val.y, num_classes=10, directions=record["patterns"]
    )
    assert out.verdict == "spurious" and sorted(out.flagged_features) == list(range(10))
    assert out.tracked_class == tuple(range(10))  # pattern c tracks class c


def test_spurious_feature_check_does_not_flag_the_same_patterns_on_clean_data():
    splits = _mnist1d()
    _, record = spurious_feature(splits.train, splits.val, strength=0.9, seed=0)
    out = D.spurious_feature_check(
        splits.train.x,
        splits.train.y,
        splits.val.x,
        splits.val.y,
        num_classes=10,
        directions=record["patterns"],
    )
    assert out.verdict == "clean" and out.flagged_features == ()


def test_spurious_feature_check_on_raw_features_flags_shortcut_data_not_clean_data():
    splits = _mnist1d()
    (train, val), _ = spurious_feature(splits.train, splits.val, strength=0.9, seed=0)
    assert not D.spurious_feature_check(train.x, train.y, val.x, val.y, num_classes=10).ok
    clean = splits.train, splits.val
    assert D.spurious_feature_check(
        clean[0].x, clean[0].y, clean[1].x, clean[1].y, num_classes=10
    ).ok


def test_label_correlation_is_one_for_a_feature_equal_to_the_class_indicator(transform):
    y = jnp.array([0, 1, 2, 0, 1, 2, 0, 1])  # (N,)
    x = jnp.stack([(y == 1).astype(jnp.float32), jnp.zeros(8)], axis=1)  # (N, 2)
    r = transform(functools.partial(D.label_correlation, num_classes=3))(x, y)
    assert r.shape == (2, 3)
    np.testing.assert_allclose(r[0, 1], 1.0, rtol=1e-6)
    np.testing.assert_allclose(r[1], 0.0)  # a constant feature correlates with nothing


def test_spurious_feature_check_rejects_mismatched_inputs():
    x, y = np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"same length, got shapes \(4, 3\) and \(3,\)"):
        D.spurious_feature_check(x, y[:3], x, y, num_classes=2)
    with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(2,\)"):
        D.spurious_feature_check(x, y, x[:, :2], y, num_classes=2)
    with pytest.raises(ValueError, match=r"directions \(K, \.\.\.\)"):
        D.spurious_feature_check(x, y, x, y, num_classes=2, directions=np.ones((2, 4)))


# ---------------------------------------------------------------------------------------------
# the checklist's newer checks: shared small fixtures


def _mlp(splits, **overrides):
    return build("mlp", splits.info, **overrides)


def _shuffled(ds, num_classes=10):
    # every label replaced with probability 1 - 1/C by a uniform other class: y' is uniform and
    # independent of x, as after a shuffle
    return label_noise(ds, 1 - 1 / num_classes, num_classes=num_classes, seed=0)[0]


def _ce(outputs, y):
    return optax.softmax_cross_entropy_with_integer_labels(outputs, y)


def _log_of_softmax_loss(outputs, y):
    # a hand-written cross-entropy: log(softmax) is -inf where a probability underflows to 0
    probs = jax.nn.softmax(outputs)
    return -jnp.sum(jax.nn.one_hot(y, outputs.shape[-1]) * jnp.log(probs), axis=-1)


# ---------------------------------------------------------------------------------------------
# label_signal


def test_label_signal_finds_no_signal_in_shuffled_labels_and_signal_in_clean_ones():
    splits = _digits()
    clean = D.label_signal(splits.train, splits.val, num_classes=10)
    shuffled = D.label_signal(_shuffled(splits.train), splits.val, num_classes=10)
    assert clean.verdict == "signal" and clean.ok and clean.accuracy > 0.9
    assert shuffled.verdict == "no_signal" and not shuffled.ok
    assert shuffled.accuracy < shuffled.threshold


# ---------------------------------------------------------------------------------------------
# leakage_check


def test_leakage_check_counts_exact_and_near_duplicates_of_training_examples_in_test():
    splits = _digits()
    test = splits.test.unseal("test")
    x = test.x.copy()
    x[:20] = splits.train.x[:20]  # exact copies
    x[20:40] = splits.train.x[20:40] + 1e-3  # copies with a tiny perturbation
    leaky = splits.replace(test=type(test)(x, test.y))
    out = D.leakage_check(leaky)
    assert out.verdict == "leakage" and not out.ok
    assert out.pairs["train/test"]["exact"] == 20
    assert out.pairs["train/test"]["near"] == 20
    assert out.pairs["train/test"]["examples"][:3] == [0, 1, 2]
    assert out.pairs["train/val"]["exact"] == out.pairs["train/val"]["near"] == 0


def test_leakage_check_passes_the_clean_splits_and_records_why_the_test_split_was_opened():
    splits = load("digits", seed=0)
    before = splits.test.unseal_count
    out = D.leakage_check(splits)
    assert out.verdict == "clean" and out.ok
    assert all(p["fraction"] == 0 for p in out.pairs.values())
    assert splits.test.unseal_count == before + 1
    assert "nothing is scored" in splits.test.unseal_log[-1]


# ---------------------------------------------------------------------------------------------
# overfit_tiny_batch


def test_overfit_tiny_batch_memorizes_16_examples_with_a_working_setup():
    splits = _digits()
    batch = (splits.train.x[:16], splits.train.y[:16])
    out = D.overfit_tiny_batch(_mlp(splits, hidden=(64,)), optax.adam(3e-3), batch, steps=150)
    assert out.verdict == "overfits" and out.ok
    assert out.final_loss < 0.05 * out.initial_loss and out.final_accuracy == 1.0
    assert len(out.losses) == 150


@pytest.mark.parametrize(
    "hidden,lr", [((1,), 3e-3), ((64,), 1e-6)], ids=["one_hidden_unit", "lr_1e-6"]
)
def test_overfit_tiny_batch_fails_with_a_one_unit_model_or_a_tiny_learning_rate(hidden, lr):
    splits = _digits()
    batch = (splits.train.x[:16], splits.train.y[:16])
    out = D.overfit_tiny_batch(_mlp(splits, hidden=hidden), optax.adam(lr), batch, steps=150)
    assert out.verdict == "fails" and not out.ok
    assert out.final_loss > 0.05 * out.initial_loss


# ---------------------------------------------------------------------------------------------
# lr_range_test


@functools.cache
def _lr_reports():
    splits = _digits()
    model = _mlp(splits, hidden=(64,))
    return {
        lr: D.lr_range_test(model, splits.train, lr=lr, steps=120, start_lr=1e-6, end_lr=10.0)
        for lr in (10.0, 1e-3, 1e-7)
    }


def test_lr_range_test_calls_lr_10_diverging_and_1e_7_too_low_for_adam():
    reports = _lr_reports()
    assert reports[10.0].verdict == "diverges"  # training at 10 itself trips the loop's guard
    assert "training at lr 10 diverges" in reports[10.0].message
    assert reports[1e-7].verdict == "too_low"
    assert not reports[10.0].ok and not reports[1e-7].ok


def test_lr_range_test_judges_a_rate_at_the_sweeps_end_from_a_sweep_past_it():
    # the sweep used to end at the judged rate, its loss still falling there: "below the
    # minimum" and no problem found; it now reaches 10x the rate and sees the loss turn up
    splits = _digits()
    model = _mlp(splits, hidden=(64,))
    out = D.lr_range_test(model, splits.train, lr=10.0, end_lr=10.0, steps=100, probe_steps=0)
    assert max(out.lrs) > 10.0 or out.divergence_lr is not None
    assert out.verdict == "too_high" and not out.ok, out.message


def test_lr_range_test_passes_the_default_adam_rate_and_suggests_a_range_around_it():
    out = _lr_reports()[1e-3]
    assert out.verdict == "ok" and out.ok
    low, high = out.suggested_range
    assert low < out.suggested_lr < high < out.min_loss_lr
    assert out.divergence_lr is None or out.divergence_lr > out.min_loss_lr
    # the curve is cut at the divergence point and the rates rise geometrically
    ratios = np.diff(np.log(out.lrs))
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)
    assert np.isfinite(out.losses).all() and len(out.lrs) == len(out.smoothed)


# ---------------------------------------------------------------------------------------------
# activation_report


def test_activation_report_names_each_dense_layer_and_its_relu_in_order():
    splits = _digits()
    model = _mlp(splits, hidden=(32, 16))
    params, _ = model.init(jax.random.key(0))
    out = D.activation_report(model, params, splits.train.x[:128])
    names = [a.name for a in out.layers]
    assert names == [
        "['dense_0']",
        "relu after ['dense_0']",
        "['dense_1']",
        "relu after ['dense_1']",
        "['dense_2']",
    ]
    assert [a.shape for a in out.layers][:2] == [(128, 32), (128, 32)]
    relu = out.layers[1]
    h = np.maximum(
        np.asarray(splits.train.x[:128]).reshape(128, -1) @ params["dense_0"]["w"]
        + params["dense_0"]["b"],
        0,
    )
    np.testing.assert_allclose(relu.mean, h.mean(), rtol=1e-5)
    assert relu.dead_fraction == pytest.approx(float((h.max(0) <= 0).mean()))


def test_activation_report_of_a_remat_model_sees_the_layers_its_scan_runs():
    # remat runs equal-width layers in a lax.scan; the report reads the unrolled model instead
    x = jax.random.normal(jax.random.key(1), (64, 8))
    plain = build("mlp", None, input_dim=8, hidden=(16,) * 5, num_classes=3)
    params, _ = plain.init(jax.random.key(0))
    remat = build("mlp", plain.cfg, remat=True)
    want, got = (D.activation_report(m, params, x) for m in (plain, remat))
    assert len(want.layers) == 11
    assert [a.name for a in got.layers] == [a.name for a in want.layers]
    assert [a.mean for a in got.layers] == pytest.approx([a.mean for a in want.layers])


def test_activation_report_sees_the_relus_of_the_cnn_after_each_convolution():
    splits = _digits()
    model = build("cnn", splits.info, channels=(4, 4), hidden=8)
    params, _ = model.init(jax.random.key(0))
    out = D.activation_report(model, params, splits.train.x[:32])
    kinds = [(a.kind, a.name) for a in out.layers]
    assert kinds[:2] == [("layer", "['conv_0']"), ("relu", "relu after ['conv_0']")]
    assert out.verdict == "healthy"


def _one_huge_step(model, params, x, y, lr):
    def loss(p):
        return _ce(model.apply(p, x, state={})[0], y).mean()

    return jax.tree.map(lambda p, g: p - lr * g, params, jax.grad(loss)(params))


def test_activation_report_flags_dead_relus_after_one_huge_step_and_not_before():
    splits = _digits()
    model = _mlp(splits, hidden=(64, 64))
    params, _ = model.init(jax.random.key(0))
    x, y = splits.train.x[:256], splits.train.y[:256]
    healthy = D.activation_report(model, params, x)
    dead = D.activation_report(model, _one_huge_step(model, params, x, y, 100.0), x)
    assert healthy.verdict == "healthy" and healthy.worst_dead_fraction < 0.1
    assert dead.verdict == "dead_relu" and dead.worst_dead_fraction > 0.4


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_activation_report_flags_saturation_of_over_scaled_weights_only(activation):
    splits = _digits()
    model = _mlp(splits, hidden=(64, 64), activation=activation)
    params, _ = model.init(jax.random.key(0))
    x = splits.train.x[:256]
    assert D.activation_report(model, params, x).verdict == "healthy"
    loud = jax.tree.map(lambda p: 10.0 * p, params)
    out = D.activation_report(model, loud, x)
    assert out.verdict == "saturated" and out.worst_saturated_fraction > 0.3
    assert {a.kind for a in out.layers} == {"layer", activation}


def test_activation_report_recognizes_jax_nn_relu_but_not_a_max_against_minus_infinity():
    def apply(params, x, *, state=None, train=False, key=None):
        h = jax.nn.relu(x @ params["w"])  # (B, 4)
        return jnp.maximum(h, -jnp.inf) @ params["v"], state

    model = type("M", (), {"apply": staticmethod(apply), "init": None})()
    params = {
        "w": jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)), jnp.float32),
        "v": jnp.ones((4, 2)),
    }
    x = jnp.asarray(np.random.default_rng(1).normal(size=(8, 3)), jnp.float32)
    out = D.activation_report(model, params, x, model_state={})
    assert [a.kind for a in out.layers] == ["layer", "relu", "layer"]
    assert [a.name for a in out.layers][0] == "['w']"


# ---------------------------------------------------------------------------------------------
# find_nonfinite


def test_find_nonfinite_names_the_log_after_the_output_layer_and_the_example_that_underflows():
    splits = _digits()
    model = _mlp(splits, hidden=(32,))
    params, _ = model.init(jax.random.key(0))
    x, y = np.array(splits.train.x[:64]), splits.train.y[:64]
    x[7] *= 1e4  # one example with huge logits: its softmax underflows to exact zeros
    out = D.find_nonfinite(model, params, (x, y), loss_fn=_log_of_softmax_loss)
    assert out.verdict == "nonfinite" and not out.ok
    assert (out.stage, out.op, out.layer) == ("forward", "log", "['dense_1']")
    assert out.examples == (7,)


def test_find_nonfinite_passes_the_same_batch_under_a_log_softmax_loss_and_the_clean_batch():
    splits = _digits()
    model = _mlp(splits, hidden=(32,))
    params, _ = model.init(jax.random.key(0))
    x, y = np.array(splits.train.x[:64]), splits.train.y[:64]
    assert D.find_nonfinite(model, params, (x, y), loss_fn=_log_of_softmax_loss).verdict == "finite"
    x[7] *= 1e4
    out = D.find_nonfinite(model, params, (x, y))  # the default loss uses log-sum-exp
    assert out.verdict == "finite" and out.ok


def test_find_nonfinite_names_the_parameter_whose_gradient_is_nan_from_a_sqrt_at_zero():
    splits = _digits()
    model = _mlp(splits, hidden=(32,))
    params, _ = model.init(jax.random.key(0))
    x, y = splits.train.x[:16], splits.train.y[:16]

    def sqrt_loss(outputs, y):  # sqrt(0) is finite, its derivative is not
        return jnp.sqrt(jnp.maximum(outputs[:, 0] - 1e9, 0.0))

    out = D.find_nonfinite(model, params, (x, y), loss_fn=sqrt_loss)
    assert out.stage == "backward" and out.op == "div"
    assert out.parameter in ("['dense_0']['b']", "['dense_0']['w']", "['dense_1']['b']")
    assert out.examples == tuple(range(16))


# ---------------------------------------------------------------------------------------------
# class_report


def test_class_report_computes_precision_recall_support_and_flags_an_ignored_class():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 1, 1, 1, 0, 0, 0, 0])  # class 2 is never predicted
    out = D.class_report(pred, y, 3)
    assert out.support == (2, 2, 4) and out.predicted == (5, 3, 0)
    np.testing.assert_allclose(out.precision[:2], [1 / 5, 2 / 3])
    np.testing.assert_allclose(out.recall, [0.5, 1.0, 0.0])
    assert out.ignored == (2,) and out.verdict == "ignored_classes"
    assert D.class_report(jax.nn.one_hot(y, 3), y, 3).verdict == "healthy"


def test_class_report_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"got shapes \(3,\) and \(2,\)"):
        D.class_report(np.zeros(3, int), np.zeros(2, int), 2)


def test_reports_serialize_to_plain_json():
    import json

    out = D.class_report(np.array([0, 1]), np.array([0, 0]), 2)
    text = json.dumps(out.to_json())
    assert '"verdict": "healthy"' in text and '"ok": true' in text


def test_lr_range_test_is_inconclusive_and_quiet_when_no_rate_of_the_sweep_is_large_enough():
    splits = _digits()
    out = D.lr_range_test(
        _mlp(splits, hidden=(64,)), splits.train, lr=1e-9, steps=40, start_lr=1e-10, end_lr=1e-8
    )
    assert out.verdict == "inconclusive" and out.ok
    assert out.suggested_lr is None and out.divergence_lr is None


# ---------------------------------------------------------------------------------------------
# the one report type

REPORTS = [getattr(D, name) for name in D.__all__ if name.endswith("Report")]


def test_every_report_class_is_a_report_with_ok_verdicts_apart_from_its_problems():
    assert D.Report in REPORTS and len(REPORTS) == 15
    for cls in REPORTS:
        assert issubclass(cls, D.Report) and dataclasses.is_dataclass(cls), cls
        assert cls.OK and not set(cls.OK) & set(cls.PROBLEMS), cls


def test_a_report_refuses_a_verdict_it_does_not_list():
    with pytest.raises(ValueError, match="BalanceReport: expected a verdict from healthy, imbal"):
        D.BalanceReport("skewed", "", (1,), 1.0, ())


def test_report_evidence_is_its_own_fields_and_to_json_adds_verdict_ok_and_message():
    out = D.class_balance(np.array([0, 0, 0, 1]), 3)
    assert out.verdict == "imbalanced" and not out.ok
    assert out.evidence == {
        "counts": (3, 1, 0),
        "imbalance_ratio": math.inf,
        "flagged_classes": (1, 2),
    }
    assert out.message == "class counts [3, 1, 0], largest/smallest inf; under-represented: [1, 2]"
    assert out.to_json() == {
        "verdict": "imbalanced",
        "ok": False,
        "message": out.message,
        "counts": [3, 1, 0],
        "imbalance_ratio": None,  # JSON has no infinity
        "flagged_classes": [1, 2],
    }
