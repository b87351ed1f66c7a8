"""Chapter 12: attention reaches far back directly and trains in parallel; a recurrence does not.

The book's claims: "Why did Transformers replace many RNNs? They model long-range context more
directly and train efficiently in parallel on modern hardware." "RNN: a recurrent model that
updates hidden state across sequence steps."

Measured here on a recall task that needs long-range context: a sequence of ``T`` random tokens
(8 symbols) whose label is its *first* token, so the answer sits ``T - 1`` steps before the end.
A GRU classifier (``jaxnn.models.rnn``, one layer of 64 units, tokens one-hot) and a Transformer
classifier (``jaxnn.models.transformer``, one block of width 32, 4 heads, learned positions, mean
pooling) are trained by ``fit`` with the same optimizer, learning rate, batch size and epochs on
2,000 sequences per length. Asserted:

1. long-range context: the Transformer's test accuracy is at least 90% at every length; the GRU
   gets there on the shortest sequences (>= 90%) but stays near chance (<= 50%; chance is 12.5%)
   on the longest, with the same budget;
2. parallel training, counted in the compiled program (``jax.make_jaxpr`` of the forward pass,
   deterministic): the GRU runs a loop of exactly ``T`` sequential steps (one per token, each
   waiting for the last), the Transformer none at any length: its positions are computed at once.

The time of one training step (median of repeats) is drawn and reported beside it; a time
decides nothing here (on a CPU with two cores the parallel work has few cores to spread over).

``--quick`` uses lengths 16 and 64 and 10 epochs (full: 8 to 128, 20 epochs); the assertions are
the same.

Figure: test accuracy against the distance to the answer; sequential steps per forward pass
against the length; median time per training step against the length.

Run: ``python -m experiments.ch12_gru_vs_transformer [--quick] [--out DIR]``.
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np
import optax

from experiments.harness import Experiment, fit_config
from experiments.style import PALETTE, baseline_line, panels, threshold_line
from jaxnn.data import Dataset, DatasetInfo, Splits
from jaxnn.models import build, get
from jaxnn.train import create_train_state, fit, make_train_step

CLAIM = (
    "Chapter 12: a Transformer recalls a token far back that a GRU of the same budget loses "
    "(attention reaches long-range context directly), and its forward pass has no sequential "
    "loop over positions, where the GRU's has one step per token."
)
VOCAB = 8
MODELS = ("gru", "transformer")
COLORS = {"gru": PALETTE[1], "transformer": PALETTE[0]}


def recall_splits(length: int, onehot: bool) -> Splits:
    """Sequences of random tokens labelled by their first token (train 2,000, val and test
    500 each); one-hot ``(T, V)`` floats for the GRU, token ids ``(T,)`` for the Transformer."""
    sets = []
    for n, seed in ((2000, 1), (500, 2), (500, 3)):
        x = np.random.default_rng(seed * 1000 + length).integers(0, VOCAB, (n, length))
        y = x[:, 0].astype(np.int32)
        sets.append(
            Dataset(np.eye(VOCAB, dtype=np.float32)[x] if onehot else x.astype(np.int32), y)
        )
    info = DatasetInfo(
        name=f"first_token_recall_{length}",
        task="classification",
        input_shape=(length, VOCAB) if onehot else (length,),
        num_classes=VOCAB,
        modality="signal" if onehot else "text",
        description=f"{length} random tokens of {VOCAB}; the label is the first",
    )
    return Splits(*sets, info)


def model_for(name: str, splits):
    if name == "gru":
        return build("rnn", get("rnn").config_for(splits.info, cell="gru", hidden=(64,)))
    cfg = get("transformer").config_for(
        splits.info, vocab_size=VOCAB, dim=32, num_heads=4, num_layers=1, positional="learned"
    )
    return build("transformer", cfg)


def sequential_steps(jaxpr) -> int:
    """Loop iterations that must run one after another in a jaxpr: a ``scan`` of length ``n``
    counts ``n`` times its body's own count (at least 1); calls are followed inside."""
    total = 0
    for eqn in jaxpr.eqns:
        inner = [v for v in eqn.params.values() if hasattr(v, "jaxpr") or hasattr(v, "eqns")]
        inner_steps = max((sequential_steps(getattr(j, "jaxpr", j)) for j in inner), default=0)
        if eqn.primitive.name == "scan":
            total += eqn.params["length"] * max(1, inner_steps)
        elif eqn.primitive.name == "while":
            raise ValueError("sequential_steps: a while loop has no static length")
        else:
            total += inner_steps
    return total


def step_cost(model, splits, repeats: int) -> dict:
    """Median seconds of one training step (batch 50), and the sequential loop steps of the
    forward pass."""
    tx = optax.adam(3e-3)
    step = make_train_step(model, tx)
    state = create_train_state(model, tx, 0)
    x, y = splits.train.x[:50], splits.train.y[:50]
    state, _ = step(state, x, y)  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, metrics = step(state, x, y)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    params, model_state = model.init(jax.random.PRNGKey(0))
    loop = sequential_steps(
        jax.make_jaxpr(lambda p, x: model.apply(p, x, state=model_state)[0])(params, x).jaxpr
    )
    return {"seconds": statistics.median(times), "sequential_steps": loop}


def draw(exp, lengths, acc, cost):
    figs, (ax, bx, cx) = panels(3)
    for name in MODELS:
        ax.plot(lengths, acc[name], marker="o", color=COLORS[name], label=name)
    baseline_line(ax, 1 / VOCAB, f"chance 1/{VOCAB}")
    threshold_line(ax, 0.9, "asserted: Transformer >= 0.9")
    ax.axhline(0.5, color=COLORS["gru"], ls="-.", lw=1.2, label="asserted: GRU <= 0.5 at longest")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(t) for t in lengths])
    ax.minorticks_off()
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("sequence length T (answer T - 1 back)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Recall the first token")
    ax.legend(loc="center left")
    for name in MODELS:
        steps = [cost[name][t]["sequential_steps"] for t in lengths]
        bx.plot(lengths, steps, marker="o", color=COLORS[name], label=name)
    bx.set_xscale("log", base=2)
    bx.set_xticks(lengths, [str(t) for t in lengths])
    bx.minorticks_off()
    bx.set_xlabel("sequence length T")
    bx.set_ylabel("sequential loop steps per pass")
    bx.set_title("What must wait for what")
    bx.legend(loc="upper left")
    for name in MODELS:
        cx.plot(lengths, [cost[name][t]["seconds"] for t in lengths], marker="o",
                color=COLORS[name], label=name)  # fmt: skip
    cx.set_xscale("log", base=2)
    cx.set_yscale("log")
    cx.set_xticks(lengths, [str(t) for t in lengths])
    cx.minorticks_off()
    cx.set_xlabel("sequence length T")
    cx.set_ylabel("seconds per training step (median)")
    cx.set_title("Training step time (reported)")
    cx.legend(loc="upper left")
    exp.save(
        figs,
        "gru_vs_transformer.png",
        caption="The GRU recalls the first token of short sequences and falls to chance as the "
        "distance grows, while the Transformer recalls it at every length; the GRU's forward "
        "pass is a loop of one step per token, the Transformer's has none.",
        alt=[
            "Test accuracy against sequence length: the Transformer at 1.0 throughout, the GRU "
            "falling from about 1.0 to chance.",
            "Sequential loop steps per forward pass against length: the GRU's line equals T, "
            "the Transformer's is zero.",
            "Median seconds per training step against length for both models.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch12_gru_vs_transformer", CLAIM, argv)
    if exp.quick:
        lengths, epochs, repeats = (16, 64), 10, 10
        exp.notes.append("--quick: lengths 16 and 64, 10 epochs")
    else:
        lengths, epochs, repeats = (8, 16, 32, 64, 128), 20, 30
    acc = {name: [] for name in MODELS}
    cost = {name: {} for name in MODELS}
    for length in lengths:
        for name in MODELS:
            splits = recall_splits(length, onehot=name == "gru")
            model = model_for(name, splits)
            cfg = fit_config(epochs=epochs, batch_size=50, lr=3e-3, progress=False,
                            checkpoint=False)  # fmt: skip
            acc[name].append(fit(model, splits, cfg, verbose=False).summary["test_accuracy"])
            cost[name][length] = step_cost(model, splits, repeats)
    exp.record(
        lengths=list(lengths),
        epochs=epochs,
        test_accuracy_gru=acc["gru"],
        test_accuracy_transformer=acc["transformer"],
        sequential_steps_gru=[cost["gru"][t]["sequential_steps"] for t in lengths],
        sequential_steps_transformer=[cost["transformer"][t]["sequential_steps"] for t in lengths],
        seconds_per_step_median_gru=[cost["gru"][t]["seconds"] for t in lengths],
        seconds_per_step_median_transformer=[cost["transformer"][t]["seconds"] for t in lengths],
    )
    draw(exp, lengths, acc, cost)

    exp.check(
        min(acc["transformer"]) >= 0.9,
        f"the Transformer recalls the first token at every length {lengths} (test accuracy >= "
        f"0.9; lowest {min(acc['transformer']):.3f})",
    )
    exp.check(
        acc["gru"][0] >= 0.9 and acc["gru"][-1] <= 0.5,
        f"the GRU recalls it {lengths[0]} steps back ({acc['gru'][0]:.3f} >= 0.9) but not "
        f"{lengths[-1]} ({acc['gru'][-1]:.3f} <= 0.5; chance {1 / VOCAB:g})",
    )
    exp.check(
        all(cost["gru"][t]["sequential_steps"] == t for t in lengths)
        and all(cost["transformer"][t]["sequential_steps"] == 0 for t in lengths),
        "the GRU's forward pass loops over exactly T sequential steps at every length; the "
        "Transformer's has no loop",
    )
    exp.finish()


if __name__ == "__main__":
    main()
