"""Training recipes: the settings measured to reach each model's known accuracy on a dataset.

A recipe is what ``jaxnn train --model M --dataset D`` starts from when no saved config is given:
:class:`jaxnn.train.FitConfig` fields and, under ``"model_config"``, fields of the model's
``Config``. Flags override it. The results each recipe reaches are in the README's recipe table;
the models themselves know no recipe. The MNIST-1D recipes keep ``last_batch="drop"``, the
batches their published figures were measured with.

A dataset of the user's own (a file or folder) has no recipe of its own: :func:`for_data` picks
the settings from its size instead (the small-data recipe), and the run records them.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["RECIPES", "NAMED", "SMALL_DATA", "recipe", "named", "for_data", "describe"]

#: ``(model, dataset) -> settings``.
RECIPES: dict[tuple[str, str], dict] = {
    ("mlp", "mnist1d"): {
        "epochs": 100,
        "lr": 3e-3,
        "batch_size": 100,
        "schedule": "cosine",
        "patience": 10,
        "last_batch": "drop",
        "model_config": {"hidden": (256, 256), "dropout": 0.3},
    },
    ("cnn", "mnist1d"): {
        "epochs": 50,
        "lr": 3e-3,
        "batch_size": 100,
        "augment": "shift",
        "last_batch": "drop",
    },
    ("rnn", "mnist1d"): {"epochs": 40, "lr": 3e-3, "schedule": "cosine", "last_batch": "drop"},
}

#: Recipes chosen by name (``jaxnn train --recipe NAME``): a model, a dataset and settings, each
#: overridden by a flag. ``nanogpt-char`` is nanoGPT's CPU configuration of its character-level
#: Shakespeare model (``config/train_shakespeare_char.py`` with the README's CPU overrides: 4
#: layers, 4 heads, width 128, block 64, batch 12, 2000 iterations, no dropout), here on the
#: built-in ``pydoc_text`` (``--dataset text:input.txt`` trains it on another text): AdamW with
#: beta2 0.99 and weight decay 0.1 on matrices only, a 100-step warm-up and a cosine decay to
#: 1e-4 over the 2000 steps, gradients clipped at norm 1, learned positions, bias-free layers,
#: tied embeddings, and a fresh random window for every example of every step
#: (``train_stride=1``).
NAMED: dict[str, dict] = {
    "nanogpt-char": {
        "model": "transformer",
        "dataset": "pydoc_text",
        "data_option": {"seq_len": 64, "train_stride": 1},
        "model_config": {
            "num_layers": 4,
            "num_heads": 4,
            "dim": 128,
            "max_len": 64,
            "mlp_ratio": 4,
            "dropout": 0.0,
            "positional": "learned",
            "bias": False,
            "tie_embeddings": True,
        },
        "optimizer": "adamw",
        "lr": 1e-3,
        "beta2": 0.99,
        "weight_decay": 0.1,
        "weight_decay_mask": "matrices",
        "schedule": "warmup_cosine",
        "warmup_steps": 100,
        "min_lr": 1e-4,
        "decay_steps": 2000,
        "max_steps": 2000,
        "batch_size": 12,
        "clip_norm": 1.0,
        "last_batch": "drop",
    },
}

#: The small-data recipe's constants: the batch is ``clip(N / per_batch, *batch)``, the epochs
#: ``clip(ceil(steps / steps_per_epoch), *epochs)``.
SMALL_DATA: dict[str, Any] = {
    "per_batch": 16,
    "batch": (16, 128),
    "steps": 600,
    "epochs": (20, 200),
}


def recipe(name: str, dataset: str) -> dict:
    """The training recipe of model ``name`` for ``dataset`` (``{}`` if none), as a fresh dict."""
    found = RECIPES.get((name, dataset), {})
    return {k: dict(v) if isinstance(v, dict) else v for k, v in found.items()}


def named(name: str) -> dict:
    """The recipe called ``name`` in :data:`NAMED`, as a fresh dict.

    Raises:
      ValueError: for a name that is not there, naming the ones that are.
    """
    if name not in NAMED:
        raise ValueError(f"recipe: expected one of {sorted(NAMED)}, got {name!r}")
    return {k: dict(v) if isinstance(v, dict) else v for k, v in NAMED[name].items()}


def for_data(info, n_train: int, given: dict | None = None) -> dict:
    """The small-data recipe: settings for a dataset of the user's own, from its size.

    Chapters 6, 11 and 13: with ``N`` training examples the batch is ``clip(N / 16, 16, 128)``,
    so that even a small set gives about 16 steps per epoch, and the epochs are
    ``clip(ceil(600 / steps_per_epoch), 20, 200)``, about 600 steps in all (a big set trains for
    the default 20 epochs). The best epoch is chosen by validation loss (on a validation split of
    a few dozen examples, accuracy ties between epochs and picks an early one). Images get the
    CNN (when no model was asked for) and random shifts (``augment="shift"``). A setting in
    ``given`` (the flags given and a saved config's) is never changed, and a given batch size
    sets the epochs.

    Args:
      info: the dataset's :class:`jaxnn.data.DatasetInfo`.
      n_train: examples in the training split.
      given: the settings the user chose, by field name.

    Returns:
      The settings to apply (RunConfig and FitConfig fields); ``{}`` for a language model.
    """
    if info.task == "language_model":
        return {}
    given = dict(given or {})
    lo, hi = SMALL_DATA["batch"]
    batch = given.get("batch_size") or min(max(n_train // SMALL_DATA["per_batch"], lo), hi)
    batch = min(batch, n_train)
    steps = -(-n_train // batch)
    first, last = SMALL_DATA["epochs"]
    epochs = min(max(math.ceil(SMALL_DATA["steps"] / steps), first), last)
    chosen = {"batch_size": batch, "epochs": epochs, "monitor": "val_loss"}
    if info.modality == "image":
        chosen.update(model="cnn", augment="shift")
    return {k: v for k, v in chosen.items() if k not in given}


def describe() -> str:
    """Every recipe on one line each, for ``jaxnn train --help``."""
    rows = [
        f"{name} on {dataset}: " + ", ".join(f"{k}={v}" for k, v in values.items())
        for (name, dataset), values in RECIPES.items()
    ]
    rows += [
        f"--recipe {name}: {values['model']} on {values['dataset']}"
        for name, values in NAMED.items()
    ]
    rows.append(
        "a file or folder of your own: batch clip(N/16, 16, 128), about 600 steps (20 to 200 "
        "epochs), best epoch by val_loss, and for images the cnn with augment=shift"
    )
    return "; ".join(rows)
