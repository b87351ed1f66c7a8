"""The ``jaxnn`` command line: ``train``, ``eval``, ``predict``, ``sample``, ``doctor``, ...

The ``train`` flags are generated from the fields of :class:`RunConfig` and
:class:`jaxnn.train.FitConfig` (``batch_size`` -> ``--batch-size``, booleans get ``--x/--no-x``),
with the help text, default and choices taken from each class, so a flag and a field cannot drift
apart. Values come, in increasing precedence, from the field defaults, the model's recipe for the
dataset (:func:`jaxnn.app.recipes.recipe`), a saved ``--config`` (or, with ``--resume``, the
run's own ``config.json``), and the flags given.

Every expected failure prints one line, ``jaxnn <command>: error: <what, where, what to do>``, and
exits 2; Ctrl-C exits 130 and SIGTERM 143, each after saying how to resume. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import signal
import sys
import time
import typing
from pathlib import Path

from jaxnn import __version__
from jaxnn.app import checkout, doctor, predict, recipes
from jaxnn.errors import UserError
from jaxnn.host_memory import reuse_freed_memory
from jaxnn.train import interrupts

__all__ = ["RunConfig", "main", "build_parser"]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What to train on and where to write it.

    Attributes:
      model: model name.
      dataset: mnist1d, digits, mnist5k, pydoc_text, synthetic:<name>, tfds:<name>, or a file of
        your own: csv:PATH, npz:PATH, npy:DIR, text:PATH, images:DIR (a bare my.csv works too).
      out: run directory for metrics, curves, summary, TensorBoard files and checkpoints.
      resume: continue the run in --out from its latest checkpoint, with its saved config (no
        other flag needed; a flag that changes what is trained is refused).
      config: start from a saved config.json (e.g. RUN/config.json); flags override its values.
      normalize: standardize inputs with statistics of the training split only.
      doctor: first run the cheap checks of the chapter-14 checklist (labels, leakage, the
        tiny-subset overfit) and stop with the report when one fails.
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
    config: str = ""
    normalize: bool = True
    doctor: bool = False
    model_config: tuple[str, ...] = ()
    data_option: tuple[str, ...] = ()
    coordinator: str = ""
    num_processes: int = 1
    process_id: int = 0

    CHOICES: typing.ClassVar[dict] = {}

    def __post_init__(self):
        from jaxnn.train.config import check_field_types

        check_field_types(self)
        if not (0 <= self.process_id < self.num_processes):
            raise UserError(
                f"RunConfig: expected 0 <= process_id < num_processes ({self.num_processes}), "
                f"got {self.process_id}"
            )


# Fields a resumed run may change (recorded in the config's history); any other is refused.
RESUMABLE = ("epochs", "patience", "progress", "keep_last", "keep_best", "eval_batch_size")
# --model-config fields a resumed run may change: they change how a step computes (remat
# recomputes activations), not what it computes.
RESUMABLE_MODEL_CONFIG = ("remat",)
_NOT_SAVED = ("out", "resume", "config", "doctor", "coordinator", "num_processes", "process_id")


# ---------------------------------------------------------------------------------------------
# Flags from dataclasses.


def _field_docs(cls) -> dict[str, str]:
    doc = cls.__doc__ or ""
    found = re.findall(
        r"^\s{6}(\w+): (.+?)(?=^\s{6}\w+: |\Z)", doc.split("Attributes:", 1)[-1], re.M | re.S
    )
    return {k: " ".join(v.split()) for k, v in found}  # fmt: skip


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls, choices: dict) -> None:
    docs, hints = _field_docs(cls), typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        flag, kind = "--" + field.name.replace("_", "-"), hints[field.name]
        allowed = field.metadata.get("choices") or choices.get(field.name)
        docs.setdefault(field.name, field.metadata.get("help", ""))
        shown = f" (default: {field.default}" + (
            f"; one of {', '.join(allowed)})" if allowed else ")"
        )
        help_ = docs.get(field.name, "").replace("%", "%%") + shown
        kwargs = {"default": argparse.SUPPRESS, "help": help_}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, action="append", metavar="KEY=VALUE", **kwargs)
        else:
            parser.add_argument(
                flag, type=kind, choices=allowed, metavar=field.name.upper(), **kwargs
            )


def _parse_value(raw: str):
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def _parse_pairs(pairs, what: str) -> dict:
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{what}: expected KEY=VALUE, got {pair!r}")
        out[key] = _parse_value(raw)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxnn`` argument parser with its subcommands."""
    from jaxnn import models
    from jaxnn.train.loop import FitConfig

    parser = argparse.ArgumentParser(prog="jaxnn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"jaxnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train a model and score the test split once",
        description="Train a model and score the test split once. Without flags, a model "
        "trains with its recipe for the dataset (jaxnn.app.recipes: " + recipes.describe() + ").",
    )
    _add_dataclass_flags(train, RunConfig, {"model": models.NAMES})
    _add_dataclass_flags(train, FitConfig, {})
    ev = sub.add_parser("eval", help="score a run's best-validation model on a split or a file")
    ev.add_argument("--out", required=True, help="run directory written by `jaxnn train`")
    ev.add_argument("--split", choices=("val", "test"), default="val", help="(default: val)")
    ev.add_argument("--dataset", help="score every example of this source instead of a split")
    ev.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE")
    pr = sub.add_parser("predict", help="predict classes (or values) for new inputs with a run")
    pr.add_argument("--out", required=True, help="run directory written by `jaxnn train`")
    pr.add_argument(
        "--input",
        required=True,
        help="a CSV, an .npy array, an image folder or file, or a .txt of prompts (language model)",
    )
    pr.add_argument("--output", help="write here instead of standard output")
    pr.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="(default: csv)")
    sample = sub.add_parser("sample", help="generate text from a trained transformer LM")
    sample.add_argument("--out", required=True, help="run directory written by `jaxnn train`")
    sample.add_argument("--prompt", default="The ", help="(default: 'The ')")
    sample.add_argument("--length", type=int, default=200, help="new tokens (default: 200)")
    sample.add_argument("--temperature", type=float, default=0.8, help="(default: 0.8; 0: greedy)")
    sample.add_argument("--seed", type=int, default=0, help="(default: 0)")
    doctor.add_parser(sub)
    checkout.add_parsers(sub)
    return parser


# ---------------------------------------------------------------------------------------------
# Resolving a train command: defaults < recipe < saved config < flags.


@contextlib.contextmanager
def _user_input(what: str):
    """Turn a ``ValueError`` raised while reading the user's input into a :class:`UserError`."""
    try:
        yield
    except UserError:
        raise
    except ValueError as err:
        raise UserError(f"{what}: {err}") from None


def _saved_settings(path: Path) -> dict:
    """The settings of a saved ``config.json``, as flag-field names."""
    from jaxnn.train.run import read_config

    config = read_config(path.parent) if path.name == "config.json" else None
    if config is None:
        raise UserError(f"--config: expected a run's config.json, got {path}")
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "normalize": data.get("normalize", True),
        "model_config": dict(config["model_config"]),
        "data_option": dict(data.get("options", {})),
        **config["fit"],
    }


def _given_settings(args) -> dict:
    given = {k: v for k, v in vars(args).items() if k != "command"}
    if "model_config" in given:
        given["model_config"] = _parse_pairs(given["model_config"], "--model-config")
    if "data_option" in given:
        given["data_option"] = _parse_pairs(given["data_option"], "--data-option")
    return given


def _check_resume_changes(saved: dict, given: dict, out: Path) -> dict:
    """The allowed changes of a resumed run; raise naming the first refused one."""
    changed = {}
    for key, value in given.items():
        if key in _NOT_SAVED or key not in saved:
            continue
        old = saved[key]
        if isinstance(value, dict):  # only the keys given are compared
            old = {k: old.get(k) for k in value}
            value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
        if value == old:
            continue
        if key not in RESUMABLE and not _resumable_model_config(key, old, value):
            raise UserError(
                f"--resume: --{key.replace('_', '-')} changes what {out} trains (saved {old!r}, "
                f"given {value!r}); drop the flag to resume, or train into a new --out"
            )
        changed[key] = [old, value]
    return changed


def _resumable_model_config(key: str, old: dict, value: dict) -> bool:
    """Whether a ``--model-config`` change on resume touches only :data:`RESUMABLE_MODEL_CONFIG`."""
    changed = [k for k, v in value.items() if old.get(k) != v] if key == "model_config" else [key]
    return all(k in RESUMABLE_MODEL_CONFIG for k in changed)


def _resolve_train(args):
    """``(RunConfig, FitConfig, model overrides, data options, history)`` for ``jaxnn train``."""
    from jaxnn import models
    from jaxnn.train.loop import FitConfig

    given = _given_settings(args)
    out = Path(given.get("out", RunConfig.out))
    saved, history = {}, []
    if given.get("resume") and (out / "config.json").exists():
        saved = _saved_settings(out / "config.json")
        changed = _check_resume_changes(saved, given, out)
        history = _history(out, changed)
    elif given.get("config"):
        saved = _saved_settings(Path(given["config"]))
    name = given.get("model", saved.get("model", RunConfig.model))
    dataset = given.get("dataset", saved.get("dataset", RunConfig.dataset))
    recipe = recipes.recipe(name, dataset) if not saved else {}
    settings = {**recipe, **saved, **given}
    settings["model_config"] = {
        **recipe.get("model_config", {}),
        **saved.get("model_config", {}),
        **given.get("model_config", {}),
    }
    fit_fields = {f.name for f in dataclasses.fields(FitConfig)}
    run_fields = {f.name for f in dataclasses.fields(RunConfig)} - {"model_config", "data_option"}
    run = RunConfig(**{k: v for k, v in settings.items() if k in run_fields})
    fit_cfg = FitConfig(**{k: v for k, v in settings.items() if k in fit_fields})
    if run.model not in models.NAMES:
        raise UserError(f"--model: expected one of {', '.join(models.NAMES)}, got {run.model!r}")
    return run, fit_cfg, settings["model_config"], settings.get("data_option", {}), history


def _history(out: Path, changed: dict) -> list:
    from jaxnn.train.run import read_config

    history = list(read_config(out).get("history", []))
    if changed:
        history.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "resume_changed": changed})
    return history


# ---------------------------------------------------------------------------------------------
# Commands.


def _load_data(dataset: str, seed: int, options: dict, normalize: bool):
    from jaxnn import data
    from jaxnn.data import pipeline

    with _user_input(f"--dataset {dataset}"):
        splits = data.load(dataset, seed=seed, **options)
        if normalize:
            splits, _ = pipeline.standardize(splits)
    return splits


def _data_record(dataset: str, options: dict, normalize: bool) -> dict:
    from jaxnn.data import sources

    spec = sources.resolve_spec(dataset)
    record = sources.source_record(spec, **options) if sources.parse_spec(spec) else None
    return {"options": options, "normalize": normalize, "source": record}


def cmd_train(args) -> int:
    """``jaxnn train``: load, normalize with train statistics, build, fit, report."""
    import jax

    from jaxnn import models, parallel
    from jaxnn.train.loop import fit

    run, fit_cfg, overrides, options, history = _resolve_train(args)
    if run.num_processes > 1:
        parallel.initialize_distributed(run.coordinator, run.num_processes, run.process_id)
    _check_out_dir(Path(run.out))
    splits = _load_data(run.dataset, fit_cfg.seed, options, run.normalize)
    with _user_input("--model-config"):
        model = models.build(run.model, splits.info, **overrides)
    info = splits.info
    say = print if jax.process_index() == 0 else (lambda *a, **k: None)
    say(
        f"{run.model} on {info.name}: {len(splits.train)} train / {len(splits.val)} val, "
        f"input {info.input_shape}, {info.num_classes} outputs",
        flush=True,
    )
    if run.doctor and not _preflight_passes(model, splits, fit_cfg):
        return 1
    run_info = {"data": _data_record(run.dataset, options, run.normalize), "history": history}
    result = fit(model, splits, fit_cfg, out_dir=run.out, resume=run.resume, run_info=run_info)
    keys = ("best_epoch", "best_val_accuracy", "test_accuracy", "test_loss", "epochs_run")
    say(json.dumps({k: result.summary[k] for k in (*keys, "stopped_reason")}), flush=True)
    return 1 if result.summary["stopped_reason"] == "diverged" else 0


def _preflight_passes(model, splits, fit_cfg) -> bool:
    """``--doctor``: the cheap checks before training; print the report when one fails."""
    from jaxnn.app.doctor import preflight
    from jaxnn.train.loop import make_optimizer

    tx, _ = make_optimizer(fit_cfg.optimization, total_steps=max(fit_cfg.epochs, 1))
    report = preflight(model, splits, tx, seed=fit_cfg.seed)
    if not report.ok:
        print(report.text(), flush=True)
    return report.ok


def _check_out_dir(out: Path) -> None:
    """The run directory must be a directory (or not exist yet); never follow a link there."""
    if out.is_symlink():
        raise UserError(f"--out {out}: expected a directory, got a symbolic link")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: expected a directory, got a file; choose another --out")


def _eval_dataset(run, args):
    """The dataset ``jaxnn eval`` scores, standardized with the run's saved statistics."""
    from jaxnn import data
    from jaxnn.data.pipeline import apply_statistics

    config = run.config
    saved = config.get("data", {}) if isinstance(config.get("data"), dict) else {}
    source = saved.get("source") or {}
    spec = args.dataset or config["dataset"]
    options = (
        _parse_pairs(args.data_option, "--data-option")
        if args.dataset
        else saved.get("options", {})
    )
    if not args.dataset and source.get("path") and not Path(source["path"]).exists():
        raise UserError(
            f"eval: the training file {source['path']} is gone; pass --dataset FILE to score "
            "another file"
        )
    with _user_input(f"eval --dataset {spec}"):
        splits = data.load(spec, seed=int(config["fit"].get("seed", 0)), **options)
    if args.dataset:
        dataset = _concat_splits(splits, run.info)
    else:
        dataset = (
            splits.val if args.split == "val" else splits.test.unseal("jaxnn eval --split test")
        )
    if run.info.normalization is not None:
        dataset = data.Dataset(apply_statistics(run.info.normalization, dataset.x), dataset.y)
    return dataset


def _concat_splits(splits, info):
    """Every example of a new source, its class labels mapped to the run's class ids."""
    import numpy as np

    from jaxnn import data

    parts = [splits.train, splits.val, splits.test.unseal("jaxnn eval --dataset")]
    x = np.concatenate([p.x for p in parts])
    y = np.concatenate([p.y for p in parts])
    new, old = splits.info.class_names, info.class_names
    if info.task == "classification" and new and old and tuple(new) != tuple(old):
        missing = sorted(set(new) - set(old))
        if missing:
            raise UserError(f"eval: classes {missing} were not in the run's classes {list(old)}")
        y = np.asarray([old.index(new[i]) for i in y], np.int32)
    return data.Dataset(x, y)


def cmd_eval(args) -> int:
    """``jaxnn eval``: score the best-validation model on a saved split or on a new file."""
    from jaxnn.train.loop import evaluate

    run = predict.load_run(args.out)
    dataset = _eval_dataset(run, args)
    metrics = evaluate(
        run.model, run.params, run.model_state, dataset, task=run.info.task,
        batch_size=int(run.config["fit"].get("eval_batch_size", 1000)),
    )  # fmt: skip
    from jaxnn.train.logger import json_safe

    where = args.dataset or args.split
    record = json_safe({"split": where, "examples": len(dataset), **metrics})
    print(json.dumps(record, allow_nan=False))
    return 0


def cmd_predict(args) -> int:
    """``jaxnn predict``: the model's predictions for new inputs, as CSV or JSON lines."""
    run = predict.load_run(args.out)
    rows = predict.predict_file(run, args.input)
    text = predict.format_rows(rows, args.format)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_sample(args) -> int:
    """``jaxnn sample``: continue ``--prompt`` with a trained transformer language model."""
    import jax
    import jax.numpy as jnp

    from jaxnn.models import transformer

    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UserError(f"--temperature: expected a number >= 0, got {args.temperature}")
    if args.length <= 0:
        raise UserError(f"--length: expected a positive number of tokens, got {args.length}")
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed: expected 0 <= seed < 2**32, got {args.seed}")
    run = predict.load_run(args.out)
    tokenizer = run.info.tokenizer
    if run.config["model"] != "transformer" or tokenizer is None:
        raise UserError(
            f"sample: expected a transformer language-model run, got model "
            f"{run.config['model']!r} on {run.config['dataset']!r}"
        )
    with _user_input("--prompt"):
        prompt = jnp.asarray(tokenizer.encode(args.prompt), jnp.int32)
    ids = transformer.generate(
        run.params, prompt, cfg=run.model.cfg, key=jax.random.PRNGKey(args.seed),
        length=args.length, temperature=args.temperature,
    )  # fmt: skip
    print(tokenizer.decode([int(i) for i in ids]))
    return 0


# ---------------------------------------------------------------------------------------------
# Entry point: one line per expected failure.


def _end_now(name: str):
    """The handler for Ctrl-C and SIGTERM outside the training loop (which defers them to a safe
    point, :mod:`jaxnn.train.interrupts`): nothing is half-written there, so the process ends at
    once, with one line; raising from a handler could be swallowed by a callback."""

    def handler(signum, frame):
        what = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
        interrupts.end_now(signum, f"{name}: {what}")

    return handler


def _resume_hint(args) -> str:
    out = Path(getattr(args, "out", "") or "")
    steps = sorted(int(p.name) for p in (out / "checkpoints").glob("[0-9]*") if p.name.isdigit())
    if args.command != "train" or not steps:
        return ""
    return (
        f"; checkpoint step {steps[-1]} in {out / 'checkpoints'} is intact: resume with "
        f"`jaxnn train --out {out} --resume`"
    )


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "sample": cmd_sample,
    "doctor": lambda args: doctor.run(args),
    "book": checkout.run,
    "bench": checkout.run,
}


def main(argv=None) -> int:
    """Entry point of the ``jaxnn`` console script and ``python -m jaxnn``."""
    args = build_parser().parse_args(argv)
    name = f"jaxnn {args.command}"
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notes are not the user's business
    reuse_freed_memory()  # before the first big allocation (jaxnn.host_memory)
    previous = {s: signal.signal(s, _end_now(name)) for s in interrupts.SIGNALS}
    try:
        return COMMANDS[args.command](args)
    except UserError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    except interrupts.Interrupted as stop:
        print(f"{name}: {stop}{_resume_hint(args)}", file=sys.stderr)
        return interrupts.exit_code(stop.signum)
    except KeyboardInterrupt:
        print(f"{name}: interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except OSError as err:
        if err.filename is None:
            raise
        print(f"{name}: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
