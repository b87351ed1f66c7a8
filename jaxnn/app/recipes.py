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

__all__ = ["RECIPES", "SMALL_DATA", "recipe", "for_data", "describe"]

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

#: The small-data recipe's constants: the batch is ``clip(N / per_batch, *batch)``, the epochs
#: ``clip(ceil(steps / steps_per_epoch), *epochs)``.
SMALL_DATA = {"per_batch": 16, "batch": (16, 128), "steps": 600, "epochs": (20, 200)}


def recipe(name: str, dataset: str) -> dict:
    """The training recipe of model ``name`` for ``dataset`` (``{}`` if none), as a fresh dict."""
    found = RECIPES.get((name, dataset), {})
    return {k: dict(v) if isinstance(v, dict) else v for k, v in found.items()}


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
    rows.append(
        "a file or folder of your own: batch clip(N/16, 16, 128), about 600 steps (20 to 200 "
        "epochs), best epoch by val_loss, and for images the cnn with augment=shift"
    )
    return "; ".join(rows)
