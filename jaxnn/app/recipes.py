"""Training recipes: the settings measured to reach each model's known accuracy on a dataset.

A recipe is what ``jaxnn train --model M --dataset D`` starts from when no saved config is given:
:class:`jaxnn.train.FitConfig` fields and, under ``"model_config"``, fields of the model's
``Config``. Flags override it. The results each recipe reaches are in the README's recipe table;
the models themselves know no recipe.
"""

from __future__ import annotations

__all__ = ["RECIPES", "recipe", "describe"]

#: ``(model, dataset) -> settings``.
RECIPES: dict[tuple[str, str], dict] = {
    ("mlp", "mnist1d"): {
        "epochs": 100,
        "lr": 3e-3,
        "batch_size": 100,
        "schedule": "cosine",
        "patience": 10,
        "model_config": {"hidden": (256, 256), "dropout": 0.3},
    },
    ("cnn", "mnist1d"): {"epochs": 50, "lr": 3e-3, "batch_size": 100, "augment": "shift"},
    ("rnn", "mnist1d"): {"epochs": 40, "lr": 3e-3, "schedule": "cosine"},
}


def recipe(name: str, dataset: str) -> dict:
    """The training recipe of model ``name`` for ``dataset`` (``{}`` if none), as a fresh dict."""
    found = RECIPES.get((name, dataset), {})
    return {k: dict(v) if isinstance(v, dict) else v for k, v in found.items()}


def describe() -> str:
    """Every recipe on one line each, for ``jaxnn train --help``."""
    rows = [
        f"{name} on {dataset}: " + ", ".join(f"{k}={v}" for k, v in values.items())
        for (name, dataset), values in RECIPES.items()
    ]
    return "; ".join(rows) or "none"
