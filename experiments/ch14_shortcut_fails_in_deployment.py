"""Chapter 14: high benchmark accuracy can still be unsafe: shortcuts and underrepresented groups.

The book's claims: "dataset problems ... spurious correlations can produce models that look
accurate in benchmarks but fail in deployment"; "Can high benchmark accuracy still be unsafe?
Yes; models may rely on shortcuts, fail under distribution shift, or perform poorly for
underrepresented groups." And chapter 13's "good evaluation also requires metrics aligned with
the task, class balance, and deployment conditions".

Measured here, each time with the benchmark (a test split drawn like the training data) against
the data the model meets in deployment:

1. **A shortcut.** MNIST-1D signals with a planted class pattern
   (:func:`jaxnn.data.corrupt.spurious_feature`: each class adds its own fixed pattern) that
   agrees with the label in 95% of the training examples and of the benchmark's, and is random in
   deployment (the collection artifact is gone). An MLP 40-256-256-10 trained on it scores at
   least 90% on the benchmark, while on deployment data it scores at least 20 points below a
   model trained on clean signals (which a shortcut-free benchmark would have shown):
   it looks accurate and fails in deployment. The remedy: ``spurious_feature_check`` flags the
   planted directions (their correlation with the label holds in training and vanishes on
   deployment data), and projecting them out of every input, in training and deployment alike,
   brings the deployment accuracy back within 5 points of the clean model's.
2. **An underrepresented group.** The 8x8 ``digits`` where a second group of images, drawn
   inverted (white on black turned black on white, as by another scanner), makes up 3% of the
   training set and of the benchmark. An MLP 64-128-10 scores at least 90% on the benchmark
   overall, yet on the inverted group (all of the test images inverted, as a deployment to that
   scanner meets them) at least 20 points below the majority group. The remedy is data: with the
   group at 30% of the training images (more of them collected), the gap closes to at most 5
   points, with the overall benchmark accuracy still >= 90%.

``--quick`` trains fewer epochs (the same assertions).

Figure: benchmark against deployment accuracy for the shortcut model, the clean model and the
remedied one; overall against per-group accuracy before and after more data of the group.

Run: ``python -m experiments.ch14_shortcut_fails_in_deployment [--quick] [--out DIR]``.
"""

from __future__ import annotations

import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import PALETTE, legend_below, panels, threshold_line
from jaxnn import diagnostics as D
from jaxnn.data import Dataset, corrupt, load, pipeline
from jaxnn.models import build
from jaxnn.train import evaluate, fit

CLAIM = (
    "Chapter 14: a model can look accurate on its benchmark and fail in deployment: a shortcut "
    "model scores >= 90% where the shortcut holds and >= 20 points under a clean model where it "
    "does not, and an underrepresented group scores far below the average; removing the "
    "flagged shortcut and collecting more data of the group fix each."
)
STRENGTH, GROUP_SHARE, REMEDY_SHARE = 0.95, 0.03, 0.3


def _train(splits, hidden, epochs, lr=1e-3, seed=0):
    model = build("mlp", splits.info, hidden=hidden)
    cfg = fit_config(epochs=epochs, batch_size=50, lr=lr, seed=seed, progress=False,
                    checkpoint=False)  # fmt: skip
    result = fit(model, splits, cfg, verbose=False)
    return lambda ds: evaluate(model, result.best_params, result.best_model_state, ds)["accuracy"]


def _plant(ds: Dataset, patterns, scale: float, strength: float, seed: int) -> Dataset:
    """Add class ``y``'s pattern to each example with probability ``strength`` (another class's
    otherwise), as :func:`jaxnn.data.corrupt.spurious_feature` does for training data."""
    rng = np.random.default_rng(seed)
    k = len(patterns)
    other = (ds.y + rng.integers(1, k, len(ds))) % k
    cls = np.where(rng.random(len(ds)) < strength, ds.y, other)
    return Dataset((ds.x + scale * patterns[cls]).astype(ds.x.dtype), ds.y)


def _project_out(ds: Dataset, basis: np.ndarray) -> Dataset:
    """Remove the span of ``basis`` (K, D), orthonormal rows, from every input."""
    x = ds.x - (ds.x @ basis.T) @ basis
    return Dataset(x.astype(ds.x.dtype), ds.y)


def shortcut(epochs: int) -> dict:
    m1d, _ = pipeline.standardize(load("mnist1d", seed=0))
    test = m1d.test.unseal("ch14: a benchmark and a deployment set from the test split")
    half = len(test) // 2
    bench_clean, deploy_clean = test.take(range(half)), test.take(range(half, len(test)))
    (train, deploy), record = corrupt.spurious_feature(
        m1d.train, deploy_clean, strength=STRENGTH, seed=0
    )
    scale = record["amplitude"] * float(m1d.train.x.std())
    bench = _plant(bench_clean, record["patterns"], scale, STRENGTH, seed=1)
    val = _plant(m1d.val, record["patterns"], scale, STRENGTH, seed=2)
    hidden = (256, 256)
    shortcut_model = _train(m1d.replace(train=train, val=val), hidden, epochs)
    clean_model = _train(m1d, hidden, epochs)
    check = D.spurious_feature_check(train.x, train.y, deploy.x, deploy.y, num_classes=10,
                                     directions=record["patterns"])  # fmt: skip
    found = record["patterns"][list(check.flagged_features)]  # (K, 40), the flagged directions
    basis = np.linalg.qr(found.T)[0].T  # (K, 40) orthonormal
    fixed = m1d.replace(train=_project_out(train, basis), val=_project_out(val, basis))
    remedy_model = _train(fixed, hidden, epochs)
    return {
        "flagged": list(check.flagged_features),
        "train_agreement": record["train_agreement"],
        "shortcut": {"benchmark": shortcut_model(bench), "deployment": shortcut_model(deploy)},
        "clean": {"benchmark": clean_model(bench_clean), "deployment": clean_model(deploy_clean)},
        "remedy": {
            "benchmark": remedy_model(_project_out(bench, basis)),
            "deployment": remedy_model(_project_out(deploy, basis)),
        },  # fmt: skip
    }


def _invert(ds: Dataset) -> Dataset:
    return Dataset((1.0 - ds.x).astype(ds.x.dtype), ds.y)


def _with_group(ds: Dataset, share: float, seed: int) -> tuple[Dataset, np.ndarray]:
    """``ds`` with a random ``share`` of its images inverted; returns the group mask too."""
    mask = np.random.default_rng(seed).random(len(ds)) < share
    where = mask.reshape(-1, *([1] * (ds.x.ndim - 1)))  # (N, 1, 1, 1) for images
    x = np.where(where, 1.0 - ds.x, ds.x).astype(ds.x.dtype)
    return Dataset(x, ds.y), mask


def group(epochs: int) -> dict:
    raw = load("digits", seed=0)
    test = raw.test.unseal("ch14: score the benchmark overall and per group")
    train, train_mask = _with_group(raw.train, GROUP_SHARE, seed=1)
    val, _ = _with_group(raw.val, GROUP_SHARE, seed=2)
    bench, bench_mask = _with_group(test, GROUP_SHARE, seed=3)
    inverted_test = _invert(test)  # the group in deployment: every image from the other scanner
    splits = raw.replace(train=train, val=val)
    normed, stats = pipeline.standardize(splits)
    std = lambda ds: Dataset(stats.apply(ds.x).astype(np.float32), ds.y)  # noqa: E731
    out = {"group_in_train": int(train_mask.sum()), "group_in_benchmark": int(bench_mask.sum())}
    collected, _ = _with_group(raw.train, REMEDY_SHARE, seed=1)  # more images from that scanner
    more = normed.replace(train=Dataset(stats.apply(collected.x).astype(np.float32), collected.y))
    for name, data in (("before", normed), ("more group data", more)):
        score = _train(data, (128,), epochs, lr=3e-3)
        out[name] = {
            "benchmark": score(std(bench)),
            "majority group": score(std(test)),
            "inverted group": score(std(inverted_test)),
        }
    return out


def draw(exp, cut, grp):
    figs, (ax, bx) = panels(2, size=(4.2, 4.0))
    names = ["shortcut", "clean", "remedy"]
    labels = ["shortcut model", "clean model", "shortcut removed"]
    pos = np.arange(3)
    for shift, key, color in ((-0.2, "benchmark", PALETTE[0]), (0.2, "deployment", PALETTE[1])):
        bars = ax.bar(pos + shift, [cut[n][key] for n in names], 0.4, color=color, label=key)
        ax.bar_label(bars, fmt="%.2f")
    threshold_line(ax, 0.9, "asserted: shortcut benchmark >= 0.9")
    ax.set_xticks(pos, [n.replace(" ", "\n") for n in labels])
    ax.set_ylim(0, 1.3)
    ax.set_ylabel("test accuracy (MNIST-1D)")
    ax.set_title("Looks accurate, fails deployed")
    legend_below(ax)
    keys = ["benchmark", "majority group", "inverted group"]
    for shift, case, color in ((-0.2, "before", PALETTE[1]), (0.2, "more group data", PALETTE[2])):
        bars = bx.bar(np.arange(3) + shift, [grp[case][k] for k in keys], 0.4, color=color,
                      label=case)  # fmt: skip
        bx.bar_label(bars, fmt="%.2f")
    threshold_line(bx, grp["before"]["majority group"] - 0.2, "asserted: >= 20 points gap before")
    bx.set_xticks(range(3), [k.replace(" ", "\n") for k in keys])
    bx.set_ylim(0, 1.3)
    bx.set_ylabel("accuracy (digits)")
    bx.set_title(f"A group {GROUP_SHARE:.0%} of the data")
    legend_below(bx)
    exp.save(
        figs,
        "shortcut_and_group.png",
        caption="The shortcut model tops the benchmark and collapses on deployment data where "
        "the shortcut is gone; the overall score hides a group that fares far worse; removing "
        "the flagged pattern and collecting more images of the group repair each.",
        alt=[
            "Grouped bars of benchmark and deployment accuracy for the shortcut model, a clean "
            "model and the model with the shortcut projected out: the shortcut model's "
            "deployment bar is far below its benchmark bar.",
            "Grouped bars of benchmark, majority-group and inverted-group accuracy before and "
            "after more data of the group: the inverted group's bar rises.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch14_shortcut_fails_in_deployment", CLAIM, argv)
    epochs = 15 if exp.quick else 30
    if exp.quick:
        exp.notes.append("--quick: 15 epochs per run (full: 30)")
    cut = shortcut(epochs)
    grp = group(epochs)
    exp.record(
        shortcut_strength=STRENGTH,
        shortcut_train_agreement=cut["train_agreement"],
        shortcut_flagged_patterns=cut["flagged"],
        shortcut_accuracy={k: cut[k] for k in ("shortcut", "clean", "remedy")},
        group_share=GROUP_SHARE,
        group_examples={"train": grp["group_in_train"], "benchmark": grp["group_in_benchmark"]},
        group_accuracy_before=grp["before"],
        group_accuracy_more_group_data=grp["more group data"],
    )
    draw(exp, cut, grp)

    s, c, r = cut["shortcut"], cut["clean"], cut["remedy"]
    exp.check(
        s["benchmark"] >= 0.9,
        f"the shortcut model looks accurate: {s['benchmark']:.3f} on the benchmark (>= 0.9)",
    )
    exp.check(
        s["deployment"] <= c["deployment"] - 0.20,
        f"and fails in deployment: {s['deployment']:.3f}, >= 20 points under the clean model's "
        f"{c['deployment']:.3f}",
    )
    exp.check(
        sorted(cut["flagged"]) == list(range(10)),
        "spurious_feature_check flags all 10 planted patterns against deployment data",
    )
    exp.check(
        r["deployment"] >= c["deployment"] - 0.05,
        f"with the flagged patterns projected out, deployment accuracy {r['deployment']:.3f} is "
        f"within 5 points of the clean model's {c['deployment']:.3f}",
    )
    b, a = grp["before"], grp["more group data"]
    gap_before = b["majority group"] - b["inverted group"]
    gap_after = a["majority group"] - a["inverted group"]
    exp.check(
        b["benchmark"] >= 0.9 and gap_before >= 0.20,
        f"the benchmark says {b['benchmark']:.3f} (>= 0.9) while the inverted group scores "
        f"{b['inverted group']:.3f}, {gap_before:.0%} below the majority group (>= 20 points)",
    )
    exp.check(
        gap_after <= 0.05 and a["benchmark"] >= 0.9,
        f"more data of the group closes the gap to {gap_after:.1%} (<= 5 points; the group at "
        f"{a['inverted group']:.3f}) with the benchmark at {a['benchmark']:.3f} (>= 0.9)",
    )
    exp.finish()


if __name__ == "__main__":
    main()
