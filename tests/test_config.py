"""jaxnn.train.config: FitConfig is the flat face, its concerns are views, and the shared checks."""

from __future__ import annotations

import dataclasses

import pytest

from jaxnn.errors import UserError
from jaxnn.train import config
from jaxnn.train.config import FitConfig, setting


def test_every_fit_config_field_belongs_to_exactly_one_concern():
    names = [f.name for cls in config.CONCERNS for f in dataclasses.fields(cls)]
    assert sorted(names) == sorted(f.name for f in dataclasses.fields(FitConfig))


def test_each_concern_holds_the_values_of_its_config():
    cfg = FitConfig(lr=0.25, patience=3, scan=True, keep_last=5, optimizer="sgd")
    views = (cfg.optimization, cfg.policy, cfg.execution, cfg.output)
    assert tuple(type(v) for v in views) == config.CONCERNS
    for view in views:
        assert all(getattr(view, f.name) == getattr(cfg, f.name) for f in dataclasses.fields(view))
    assert (cfg.optimization.lr, cfg.policy.patience, cfg.execution.scan) == (0.25, 3, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.policy.epochs = 3


def test_the_fit_record_keeps_its_fields_and_their_order():
    # config.json's "fit" record is asdict(FitConfig): saved runs and --resume rely on it
    assert list(dataclasses.asdict(FitConfig())) == [
        "epochs", "batch_size", "lr", "optimizer", "schedule", "warmup_steps", "weight_decay",
        "clip_norm", "seed", "patience", "min_delta", "monitor", "keep_last", "keep_best", "scan",
        "device_data", "devices", "augment", "divergence_factor", "dtype", "eval_batch_size",
        "progress", "checkpoint",
        # added after the first release, at the end: an older record is a prefix of this one
        "min_lr", "decay_steps", "beta2", "weight_decay_mask", "mesh", "shard_leaf",
        "last_batch", "max_steps",
    ]  # fmt: skip


def test_every_fit_config_field_has_plain_help_text():
    for field in dataclasses.fields(FitConfig):
        text = field.metadata["help"]
        assert text and "``" not in text and ":class:" not in text, field.name


@dataclasses.dataclass(frozen=True)
class _Options:
    name: str = setting("a", "a name.", choices=("a", "b"))
    count: int = setting(1, "a count.")
    path: str | None = setting(None, "an optional path.", choices=("x", "y"))
    pairs: tuple[str, ...] = setting((), "KEY=VALUE pairs.")


@pytest.mark.parametrize(
    "values,message",
    [
        ({"count": True}, "expected count to be int, got True"),
        ({"count": "3"}, "expected count to be int, got '3'"),
        ({"path": 3}, "expected path to be str, got 3"),
        ({"pairs": ["a=1"]}, "expected pairs to be tuple"),
    ],
)
def test_check_field_types_names_the_field_and_the_value(values, message):
    with pytest.raises(UserError, match=message):
        config.check_field_types(_Options(**values))


def test_an_optional_field_takes_none_and_its_type():
    for path in (None, "x"):
        config.check_field_types(_Options(path=path))
        config.check_field_choices(_Options(path=path))


def test_check_field_choices_lists_the_choices():
    with pytest.raises(UserError, match=r"_Options: expected name in a, b, got 'c'"):
        config.check_field_choices(_Options(name="c"))
    with pytest.raises(UserError, match="expected optimizer in sgd, momentum"):
        FitConfig(optimizer="lion")


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"optimizer": "sgd", "beta2": 0.99}, "beta2 applies to adam and adamw"),
        ({"min_lr": 1e-4}, "min_lr and decay_steps apply to the cosine schedules"),
        ({"schedule": "cosine", "min_lr": 1e-2}, "expected min_lr below lr"),
        ({"schedule": "warmup_cosine", "warmup_steps": 50, "decay_steps": 50}, "above warmup"),
        ({"beta2": 1.5}, r"expected beta2 in \(0, 1\)"),
        ({"weight_decay_mask": "biases"}, "expected weight_decay_mask in all, matrices"),
    ],
)
def test_optimizer_settings_that_do_not_apply_are_refused_before_training(fields, match):
    with pytest.raises(UserError, match=match):
        FitConfig(**fields)


def test_the_optimizer_concern_carries_the_recipe_settings():
    cfg = FitConfig(optimizer="adamw", schedule="cosine", min_lr=1e-4, decay_steps=500, beta2=0.99)
    opt = cfg.optimization
    assert (opt.min_lr, opt.decay_steps, opt.beta2, opt.weight_decay_mask) == (
        1e-4,
        500,
        0.99,
        "all",
    )
