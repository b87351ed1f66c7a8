"""The ``jaxnn`` command line: ``train``, ``eval``, ``sample`` and ``book``.

The ``train`` flags are generated from the fields of :class:`RunConfig` and
:class:`jaxnn.train.FitConfig` (``batch_size`` -> ``--batch-size``, booleans get ``--x/--no-x``),
with the help text taken from each class's ``Attributes:`` docstring, so a flag and a field cannot
drift apart.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import re
import sys
import typing
from pathlib import Path

__all__ = ["RunConfig", "main", "build_parser", "load_run", "BOOK"]

BOOK = (
    (1, "Neural networks as function approximators", "jaxnn.models.mlp"),
    (2, "Vectors, matrices and layers", "jaxnn.layers.dense, jaxnn.initializers"),
    (3, "Activation functions and nonlinearity", "jaxnn.activations"),
    (4, "Loss functions define the goal", "jaxnn.losses"),
    (5, "Forward pass", "jaxnn.models.*.apply"),
    (6, "Gradient descent", "jaxnn.train.step"),
    (7, "Backpropagation", "jaxnn.gradcheck"),
    (8, "Parameter updates and optimizers", "jaxnn.optim"),
    (9, "Data pipelines and normalization", "jaxnn.data"),
    (10, "Multilayer perceptrons", "jaxnn.models.mlp"),
    (11, "Convolutional neural networks", "jaxnn.layers.conv, jaxnn.models.cnn"),
    (
        12,
        "RNNs and Transformers",
        "jaxnn.layers.{recurrent,attention}, jaxnn.models.{rnn,transformer}",
    ),
    (13, "Generalization, validation, regularization", "jaxnn.train.loop, jaxnn.layers.dropout"),
    (14, "Common failure modes", "jaxnn.diagnostics, jaxnn.data.corrupt, divergence guard"),
    (15, "End-to-end training loop", "jaxnn.train, jaxnn.train.checkpoint, jaxnn.parallel"),
)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What to train on and where to write it.

    Attributes:
      model: model name (mlp, cnn, rnn, transformer).
      dataset: dataset name (mnist1d, digits, mnist5k, pydoc_text, synthetic:<name>, tfds:<name>).
      out: run directory for metrics, summary, TensorBoard files and checkpoints.
      resume: continue from the latest checkpoint in --out (from scratch if there is none yet).
      normalize: standardize inputs with statistics of the training split only.
      model_config: override a model config field, KEY=VALUE (repeatable), e.g. hidden=(256,256).
      data_option: pass an option to the dataset loader, KEY=VALUE (repeatable), e.g. seq_len=64.
      coordinator: HOST:PORT of process 0 for a multi-process run (jax.distributed).
      num_processes: processes in a multi-process run.
      process_id: this process's index in a multi-process run.
    """

    model: str = "mlp"
    dataset: str = "mnist1d"
    out: str = "runs/latest"
    resume: bool = False
    normalize: bool = True
    model_config: tuple[str, ...] = ()
    data_option: tuple[str, ...] = ()
    coordinator: str = ""
    num_processes: int = 1
    process_id: int = 0


def _field_docs(cls) -> dict[str, str]:
    doc = cls.__doc__ or ""
    return dict(re.findall(r"^\s{2,}(\w+): (.+?)$", doc.split("Attributes:", 1)[-1], re.M))


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls) -> None:
    docs = _field_docs(cls)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        kind, help_ = hints[field.name], docs.get(field.name, "")
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=field.default, help=help_
            )
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, action="append", default=[], metavar="KEY=VALUE", help=help_)
        else:
            parser.add_argument(
                flag, type=kind, default=field.default, help=f"{help_} (default: {field.default})"
            )


def _from_args(cls, args):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        if isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def _parse_pairs(pairs, what: str) -> dict:
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"{what}: expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxnn`` argument parser with its subcommands."""
    from jaxnn.train.loop import FitConfig

    parser = argparse.ArgumentParser(prog="jaxnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model and score the test split once")
    _add_dataclass_flags(train, RunConfig)
    _add_dataclass_flags(train, FitConfig)
    ev = sub.add_parser("eval", help="score a finished run's best-validation model")
    ev.add_argument("--out", required=True, help="run directory written by `jaxnn train`")
    ev.add_argument("--split", choices=("val", "test"), default="val")
    sample = sub.add_parser("sample", help="generate text from a trained transformer LM")
    sample.add_argument("--out", required=True, help="run directory written by `jaxnn train`")
    sample.add_argument("--prompt", default="The ")
    sample.add_argument("--length", type=int, default=200)
    sample.add_argument("--temperature", type=float, default=0.8)
    sample.add_argument("--seed", type=int, default=0)
    sub.add_parser("book", help="which module implements which chapter")
    return parser


def _load_data(dataset: str, seed: int, options: dict, normalize: bool):
    from jaxnn import data
    from jaxnn.data import pipeline

    splits = data.load(dataset, seed=seed, **options)
    if normalize:
        splits, _ = pipeline.standardize(splits)
    return splits


def _model_for(name: str, info, overrides: dict):
    from jaxnn import models

    return models.build(name, info, **overrides)


def cmd_train(args) -> int:
    """``jaxnn train``: load, normalize with train statistics, build, fit, report."""
    import jax

    from jaxnn import models, parallel
    from jaxnn.train.loop import FitConfig, fit

    run = _from_args(RunConfig, args)
    if run.num_processes > 1:
        parallel.initialize_distributed(run.coordinator, run.num_processes, run.process_id)
    fit_cfg = _from_args(FitConfig, args)
    if run.model not in models.NAMES:
        raise ValueError(f"unknown model {run.model!r}; expected one of {', '.join(models.NAMES)}")
    data_options = _parse_pairs(run.data_option, "--data-option")
    splits = _load_data(run.dataset, fit_cfg.seed, data_options, run.normalize)
    model = _model_for(run.model, splits.info, _parse_pairs(run.model_config, "--model-config"))
    info = splits.info
    say = print if jax.process_index() == 0 else (lambda *args, **kwargs: None)
    say(
        f"{run.model} on {info.name}: {len(splits.train)} train / {len(splits.val)} val, "
        f"input {info.input_shape}, {info.num_classes} outputs",
        flush=True,
    )
    result = fit(
        model,
        splits,
        fit_cfg,
        out_dir=run.out,
        resume=run.resume,
        run_info={"data_options": data_options, "normalize": run.normalize},
    )
    say(
        json.dumps(
            {
                k: result.summary[k]
                for k in (
                    "best_epoch",
                    "best_val_accuracy",
                    "test_accuracy",
                    "test_loss",
                    "epochs_run",
                    "stopped_reason",
                )
            }
        ),
        flush=True,
    )
    return 1 if result.summary["stopped_reason"] == "diverged" else 0


def load_run(out_dir):
    """Rebuild a finished run: ``(model, splits, best_params, best_model_state, config)``."""
    from jaxnn import models, optim
    from jaxnn.train.checkpoint import CheckpointManager
    from jaxnn.train.loop import FitConfig
    from jaxnn.train.state import create_train_state

    out = Path(out_dir)
    if not (out / "config.json").exists():
        raise ValueError(f"expected a run directory with config.json, got {out}")
    config = json.loads((out / "config.json").read_text())
    fit_cfg = FitConfig(**config["fit"])
    splits = _load_data(
        config["dataset"],
        fit_cfg.seed,
        config.get("data_options", {}),
        config.get("normalize", True),
    )
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in config["model_config"].items()}
    model = models.build(config["model"], **fields)
    tx, _ = optim.make_optimizer(
        fit_cfg.optimizer,
        fit_cfg.lr,
        schedule=fit_cfg.schedule,
        total_steps=max(fit_cfg.epochs, 1),
        weight_decay=fit_cfg.weight_decay,
        clip_norm=fit_cfg.clip_norm or None,
    )
    state = create_train_state(model, tx, fit_cfg.seed)
    manager = CheckpointManager(out / "checkpoints")
    try:
        (_, (best_params, best_model_state)), _ = manager.restore(
            target=(state, (state.params, state.model_state))
        )
    finally:
        manager.close()
    return model, splits, best_params, best_model_state, config


def cmd_eval(args) -> int:
    """``jaxnn eval``: score the best-validation model of a run on val (or, explicitly, test)."""
    from jaxnn.train.loop import evaluate

    model, splits, params, model_state, config = load_run(args.out)
    dataset = splits.val if args.split == "val" else splits.test.unseal()
    metrics = evaluate(
        model,
        params,
        model_state,
        dataset,
        task=splits.info.task,
        batch_size=config["fit"]["eval_batch_size"],
    )
    print(json.dumps({"split": args.split, **metrics}))
    return 0


def cmd_sample(args) -> int:
    """``jaxnn sample``: continue ``--prompt`` with a trained transformer language model."""
    import jax
    import jax.numpy as jnp

    from jaxnn.models import transformer

    model, splits, params, _, config = load_run(args.out)
    tokenizer = splits.info.tokenizer
    if config["model"] != "transformer" or tokenizer is None:
        raise ValueError(
            f"sample: expected a transformer language-model run, got model {config['model']!r} "
            f"on {config['dataset']!r}"
        )
    prompt = jnp.asarray(tokenizer.encode(args.prompt), jnp.int32)
    ids = transformer.generate(
        params,
        prompt,
        cfg=model.cfg,
        key=jax.random.PRNGKey(args.seed),
        length=args.length,
        temperature=args.temperature,
    )
    print(tokenizer.decode([int(i) for i in ids]))
    return 0


def cmd_book(args) -> int:
    """``jaxnn book``: print the chapter-to-module map."""
    for number, title, where in BOOK:
        print(f"{number:>2}. {title:<45} {where}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``jaxnn`` console script and ``python -m jaxnn``."""
    args = build_parser().parse_args(argv)
    command = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample, "book": cmd_book}
    try:
        return command[args.command](args)
    except ValueError as err:
        print(f"jaxnn {args.command}: error: {err}", file=sys.stderr)
        return 2
