"""Chapter 1: one framework, many tasks: classification, regression, translation and control are
all an input-output mapping learned the same way.

The book's claim: "Why is the function view useful? It unifies tasks such as classification,
regression, translation, and control as input-output mapping problems."

Measured here: four tasks, each a dataset of input-output pairs and nothing else task-specific,
all trained by the same call, :func:`train` (``jaxnn.models.build`` + ``jaxnn.train.fit`` with
one ``FitConfig``); only the model family and the loss that the task implies differ (``fit``
takes them from the data's ``task``). Each is scored against the baseline that ignores the
input:

1. **classification**: 8x8 ``digits`` images to their digit (MLP). Asserted: test accuracy at
   least 90%, at least 50 points above the majority class.
2. **regression**: ``x`` to ``sin x + noise`` (``synthetic:sine``, MLP). Asserted: test mean
   squared error at most a fifth of the variance of ``y`` (the loss of predicting its mean).
3. **translation**: a toy language whose sentences are 6 words of 10; the translation of a
   sentence reverses its word order and maps each word through a fixed dictionary, so every
   output word depends on an input word at another position. A causal Transformer
   (``jaxnn.models.transformer``) reads ``source, separator, translation`` and predicts each
   next word; scored on the translation's words of unseen sentences, each predicted from the
   source and the words before it. Asserted: at least 90% of the translated words right (chance
   10%).
4. **control**: keep an unstable system ``s' = A s + B u`` (two states, both growing without
   control) at the origin. The MLP maps a state to the action of an expert controller (the
   optimal linear-quadratic one, solved here by iterating the Riccati equation) on random states;
   then it steers on its own from 200 new start states for 80 steps, each 1 to 2 from the origin
   (a start nearer than the imitation's own error, about 0.01, says nothing of steering; one at
   0.027 ended at 0.011 in a full run). Asserted: without control
   every run ends farther from the origin than it started; under the learned policy every run
   ends at most a tenth as far.

``--quick`` uses fewer examples and epochs; the assertions are the same.

Figure: the four tasks' scores against their input-ignoring baselines; a sentence and its
predicted translation; closed-loop trajectories under the learned policy and without control.

Run: ``python -m experiments.ch01_one_framework_many_tasks [--quick] [--out DIR]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import BASELINE, PALETTE, legend_below, panels, threshold_line
from jaxnn.data import Dataset, DatasetInfo, Splits, load, pipeline
from jaxnn.models import build, get
from jaxnn.train import fit

CLAIM = (
    "Chapter 1: one framework serves many tasks: the same build-and-fit call learns a "
    "classifier, a regression, a translation and a controller from input-output pairs, each far "
    "beyond its input-ignoring baseline."
)
WORDS, LENGTH = 10, 6
SEP = WORDS  # the separator token
A = np.array([[1.05, 0.10], [0.0, 1.04]], np.float32)  # both states grow without control
B = np.array([[0.0], [0.1]], np.float32)


def train(name: str, splits, epochs: int, **overrides):
    """The one training call every task goes through: its model and its ``fit``."""
    model = build(name, get(name).config_for(splits.info, **overrides))
    cfg = fit_config(epochs=epochs, batch_size=64, lr=3e-3, seed=0, progress=False,
                    checkpoint=False)  # fmt: skip
    return model, fit(model, splits, cfg, verbose=False)


def _splits(name, task, sets, input_shape, num_classes, modality, description) -> Splits:
    info = DatasetInfo(name=name, task=task, input_shape=input_shape, num_classes=num_classes,
                       modality=modality, description=description)  # fmt: skip
    return Splits(*[Dataset(x, y) for x, y in sets], info)


def classification(epochs: int) -> dict:
    splits, _ = pipeline.standardize(load("digits", seed=0))
    _, result = train("mlp", splits, epochs, hidden=(128,))
    test = splits.test.unseal("ch01: the majority-class baseline")
    return {"score": result.summary["test_accuracy"],
            "baseline": float(np.bincount(test.y).max() / len(test.y))}  # fmt: skip


def regression(epochs: int) -> dict:
    splits = load("synthetic:sine", seed=0, n=2000, noise=0.1)
    _, result = train("mlp", splits, epochs, hidden=(64, 64))
    test = splits.test.unseal("ch01: the predict-the-mean baseline")
    return {"score": result.summary["test_loss"], "baseline": float(np.var(test.y))}


def translate_words(src: np.ndarray) -> np.ndarray:
    """The toy language's translation: reverse the words, then map each through the
    dictionary ``w -> (3 w + 7) mod 10``."""
    return (3 * src[..., ::-1] + 7) % WORDS


def translation(n: int, epochs: int) -> dict:
    sets = []
    for rows, seed in ((n, 1), (500, 2), (500, 3)):
        src = np.random.default_rng(seed).integers(0, WORDS, (rows, LENGTH))
        seq = np.concatenate([src, np.full((rows, 1), SEP), translate_words(src)], 1)
        sets.append((seq[:, :-1].astype(np.int32), seq[:, 1:].astype(np.int32)))
    about = "6-word sentences and their reversed, re-worded translations"
    splits = _splits("toy_translation", "language_model", sets, (2 * LENGTH,), WORDS + 1,
                     "text", about)  # fmt: skip
    model, result = train("transformer", splits, epochs, dim=64, num_heads=4, num_layers=2,
                          positional="learned")  # fmt: skip
    test = splits.test.unseal("ch01: score the translated words")
    logits, _ = model.apply(result.best_params, test.x, state=result.best_model_state)
    pred = np.asarray(logits).argmax(-1)[:, LENGTH:]  # the positions that predict the translation
    right = pred == test.y[:, LENGTH:]
    return {"score": float(right.mean()), "baseline": 1.0 / WORDS,
            "example": (test.x[0, :LENGTH], pred[0], test.y[0, LENGTH:])}  # fmt: skip


def expert_gain(steps: int = 500) -> np.ndarray:
    """The optimal linear-quadratic feedback ``u = -K s`` (state cost I, action cost 1), by
    iterating the discrete Riccati equation to its fixed point."""
    p = np.eye(2)
    for _ in range(steps):
        k = np.linalg.solve(1.0 + B.T @ p @ B, B.T @ p @ A)
        p = np.eye(2) + A.T @ p @ (A - B @ k)
    return k  # (1, 2)


def control(n: int, epochs: int, horizon: int = 80) -> dict:
    k = expert_gain()
    sets = []
    for rows, seed in ((n, 1), (500, 2), (500, 3)):
        s = np.random.default_rng(seed).uniform(-2.0, 2.0, (rows, 2)).astype(np.float32)
        sets.append((s, (-s @ k.T).astype(np.float32)))  # (N, 1): the expert's action
    splits = _splits("lqr_imitation", "regression", sets, (2,), 1, "tabular",
                     "states of an unstable linear system and an LQR expert's actions")  # fmt: skip
    model, result = train("mlp", splits, epochs, hidden=(64, 64))

    @jax.jit
    def policy(s):
        return model.apply(result.best_params, s, state=result.best_model_state)[0]

    rng = np.random.default_rng(4)
    angle, radius = rng.uniform(0.0, 2 * np.pi, 200), rng.uniform(1.0, 2.0, 200)
    starts = (radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)).astype(np.float32)
    paths = {"learned policy": [starts], "no control": [starts]}
    for _ in range(horizon):
        s = paths["learned policy"][-1]
        paths["learned policy"].append(s @ A.T + np.asarray(policy(jnp.asarray(s))) @ B.T)
        paths["no control"].append(paths["no control"][-1] @ A.T)
    paths = {name: np.stack(p) for name, p in paths.items()}  # (T + 1, 200, 2)
    norms = {name: np.linalg.norm(p, axis=-1) for name, p in paths.items()}  # (T + 1, 200)
    ratio = {name: norms[name][-1] / norms[name][0] for name in norms}
    return {
        "paths": paths,
        "norms": norms,
        "worst_controlled": float(ratio["learned policy"].max()),
        "least_uncontrolled": float(ratio["no control"].min()),
        "action_mse": result.summary["test_loss"],
        "action_variance": float(np.var(splits.test.unseal("ch01: the mean-action baseline").y)),
    }


def draw(exp, cls, reg, tra, ctl):
    figs, (ax, bx, cx) = panels(3, size=(4.2, 3.8))
    tasks = ["classification\n(accuracy)", "translation\n(words right)"]
    pos = np.arange(2)
    ax.bar(pos - 0.2, [cls["score"], tra["score"]], 0.4, color=PALETTE[2], label="learned")
    ax.bar(pos + 0.2, [cls["baseline"], tra["baseline"]], 0.4, color=BASELINE,
           label="ignoring the input")  # fmt: skip
    threshold_line(ax, 0.9, "asserted: >= 0.9")
    ax.set_xticks(pos, tasks)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("test score")
    ax.set_title("Two tasks, one fit")
    legend_below(ax, ncols=2)
    bx.bar(pos - 0.2, [reg["score"], ctl["action_mse"]], 0.4, color=PALETTE[2], label="learned")
    bx.bar(pos + 0.2, [reg["baseline"], ctl["action_variance"]], 0.4, color=BASELINE,
           label="predicting the mean")  # fmt: skip
    bx.set_xticks(pos, ["regression\n(sin x)", "control\n(expert's action)"])
    threshold_line(bx, reg["baseline"] / 5, "asserted: regression <= 1/5")
    bx.set_yscale("log")
    bx.set_ylabel("test mean squared error")
    bx.set_title("Two regressions, one fit")
    legend_below(bx)
    t = np.arange(ctl["norms"]["no control"].shape[0])
    for name, color in (("no control", PALETTE[1]), ("learned policy", PALETTE[0])):
        norms = ctl["norms"][name]
        cx.plot(t, np.median(norms, 1), color=color, label=f"{name} (median of 200)")
        cx.fill_between(t, norms.min(1), norms.max(1), color=color, alpha=0.2)
    cx.set_yscale("log")
    cx.set_xlabel("time step")
    cx.set_ylabel("distance from the origin |s|")
    cx.set_title("The learned controller steers")
    legend_below(cx)
    src, pred, want = tra["example"]
    exp.save(
        figs,
        "one_framework.png",
        caption="Images to digits, x to sin x, sentences to translations and states to actions, "
        f"all learned by the same call; e.g. the sentence {' '.join(map(str, src))} was "
        f"translated {' '.join(map(str, pred))} (right: {' '.join(map(str, want))}).",
        alt=[
            "Bars of test accuracy for digit classification and of the share of translated "
            "words right, each far above the score of ignoring the input.",
            "Bars of test mean squared error on a log axis for the sine regression and the "
            "controller's actions, each far below predicting the mean.",
            "Distance from the origin over time for 200 starts: growing without control, "
            "shrinking toward zero under the learned policy.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch01_one_framework_many_tasks", CLAIM, argv)
    if exp.quick:
        epochs, n_seq, n_ctl = 15, 3000, 2000
        exp.notes.append("--quick: 15 epochs, 3,000 sentences, 2,000 states")
    else:
        epochs, n_seq, n_ctl = 30, 6000, 4000
    cls, reg = classification(epochs), regression(epochs)
    tra, ctl = translation(n_seq, epochs), control(n_ctl, epochs)
    exp.record(
        classification_test_accuracy=cls["score"],
        classification_majority_class=cls["baseline"],
        regression_test_mse=reg["score"],
        regression_variance_of_y=reg["baseline"],
        translation_words_right=tra["score"],
        translation_chance=tra["baseline"],
        control_action_test_mse=ctl["action_mse"],
        control_worst_final_over_start=ctl["worst_controlled"],
        no_control_least_final_over_start=ctl["least_uncontrolled"],
    )
    draw(exp, cls, reg, tra, ctl)

    exp.check(
        cls["score"] >= 0.9 and cls["score"] >= cls["baseline"] + 0.5,
        f"classification: test accuracy {cls['score']:.3f} (>= 0.9, >= 50 points above the "
        f"majority class {cls['baseline']:.3f})",
    )
    exp.check(
        reg["score"] <= reg["baseline"] / 5,
        f"regression: test MSE {reg['score']:.4f} <= a fifth of the variance {reg['baseline']:.3f}",
    )
    exp.check(
        tra["score"] >= 0.9,
        f"translation: {tra['score']:.1%} of the translated words right (>= 90%; chance 10%)",
    )
    exp.check(
        ctl["least_uncontrolled"] > 1 and ctl["worst_controlled"] <= 0.1,
        f"control: without control every run drifts away (at least "
        f"{ctl['least_uncontrolled']:.1f}x its start); under the learned policy every run ends "
        f"at <= a tenth of its start (worst {ctl['worst_controlled']:.3f})",
    )
    exp.finish()


if __name__ == "__main__":
    main()
