"""The ``jaxnn`` command line: ``train``, ``eval``, ``predict``, ``sample``, ``doctor``, ...

Every command's flags are the fields of frozen dataclasses (:mod:`jaxnn.app.options`): ``train``
takes those of :class:`RunConfig` and :class:`jaxnn.train.FitConfig`, the others one class each.
:mod:`jaxnn.app.flags` turns a field into its flag (``batch_size`` -> ``--batch-size``, booleans
get ``--x/--no-x``), with the help text, default and choices of its declaration, so a flag and a
field cannot drift apart. For ``train``, values come, in increasing precedence, from the field
defaults, the model's recipe for the dataset (:func:`jaxnn.app.recipes.recipe`), a saved
``--config`` (or, with ``--resume``, the run's own ``config.json``), and the flags given.

Every expected failure prints one line, ``jaxnn <command>: error: <what, where, what to do>``, and
exits 2; Ctrl-C exits 130 and SIGTERM 143, each after saying how to resume. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxnn import __version__
from jaxnn._contained import WriteFailed
from jaxnn.app import (
    checkout,
    doctor,
    export,
    flags,
    pack,
    predict,
    recipes,
    rundata,
    rundir,
    scores,
    upfront,
)
from jaxnn.app.doctor import DoctorOptions
from jaxnn.app.export import ExportOptions
from jaxnn.app.options import EvalOptions, PredictOptions, RunConfig, SampleOptions
from jaxnn.app.pack import PackOptions
from jaxnn.errors import UserError
from jaxnn.host_memory import reuse_freed_memory
from jaxnn.train import interrupts
from jaxnn.train.config import FitConfig

__all__ = ["RunConfig", "main", "build_parser"]

# Fields a resumed run may change (recorded in the config's history); any other is refused.
RESUMABLE: tuple[str, ...] = (
    "epochs",
    "patience",
    "progress",
    "keep_last",
    "keep_best",
    "eval_batch_size",
)
# ... and where it runs: a topology is not what is trained (checkpoints restore onto any mesh).
RESUMABLE += ("devices", "mesh", "shard_leaf")
# --model-config fields a resumed run may change: they change how a step computes (remat
# recomputes activations), not what it computes.
RESUMABLE_MODEL_CONFIG = ("remat",)
_NOT_SAVED = (
    "out", "resume", "overwrite", "config", "doctor", "coordinator", "num_processes", "process_id",
)  # fmt: skip

#: command -> the dataclass of its options (train's, RunConfig and FitConfig, are resolved apart).
OPTIONS = {
    "eval": EvalOptions,
    "predict": PredictOptions,
    "sample": SampleOptions,
    "doctor": DoctorOptions,
    "export": ExportOptions,
    "pack": PackOptions,
}
_HELP = {  # the doctor's parser is jaxnn.app.doctor.add_parser
    "eval": "score a run's best-validation model on a split or a file",
    "predict": "predict classes (or values) for new inputs with a run",
    "sample": "generate text from a trained language model (transformer or rnn)",
}


def plain(text: str) -> str:
    """``text`` without reST markup, as ``--help`` shows it: ````jaxnn```` -> ``jaxnn``,
    ``:class:`x.Y``` -> ``Y``."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxnn`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(prog="jaxnn", description=plain(__doc__.splitlines()[0]))
    parser.add_argument("--version", action="version", version=f"jaxnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train a model and score the test split once",
        description="Train a model and score the test split once. Without flags, a model "
        "trains with its recipe for the dataset (jaxnn.app.recipes: " + recipes.describe() + ").",
    )
    flags.add_flags(train, RunConfig, defaults=False)  # only the flags given: they take precedence
    flags.add_flags(train, FitConfig, defaults=False)
    for name, help_ in _HELP.items():
        flags.add_flags(sub.add_parser(name, help=help_), OPTIONS[name])
    doctor.add_parser(sub)
    export.add_parser(sub)
    pack.add_parser(sub)
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
    data = found if isinstance(found := config.get("data"), dict) else {}
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "normalize": data.get("normalize", True),
        "model_config": dict(config["model_config"]),
        "data_option": dict(data.get("options", {})),
        "last_batch": "drop",  # a run saved before the setting existed dropped its last batch
        **config["fit"],
    }


def _given_settings(args) -> dict:
    given = {k: v for k, v in vars(args).items() if k != "command"}
    if "model_config" in given:
        given["model_config"] = flags.parse_pairs(given["model_config"], "--model-config")
    if "data_option" in given:
        given["data_option"] = flags.parse_pairs(given["data_option"], "--data-option")
    return given


def _check_resume_changes(saved: dict, given: dict, out: Path) -> dict:
    """The allowed changes of a resumed run; raise naming the first refused one."""
    changed = {}
    for key, value in given.items():
        if key in _NOT_SAVED or key not in saved:
            continue
        if key == "dataset":  # a bare path names the source it resolves to (my.csv: csv:my.csv)
            from jaxnn.data.sources import resolve_spec

            value = resolve_spec(value)
        old, new = _compared(saved[key], value)
        if new != old:
            _check_resumable(key, old, new, out)
            changed[key] = [old, new]
    return changed


def _compared(old, value):
    """``(saved, given)`` as a resumed run compares them: of a dict, only the keys given (and a
    tuple as the list JSON saved)."""
    if not isinstance(value, dict):
        return old, value
    new = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
    return {k: old.get(k) for k in value}, new


def _check_resumable(key: str, old, new, out: Path) -> None:
    if key not in RESUMABLE and not _resumable_model_config(key, old, new):
        raise UserError(
            f"--resume: {flags.flag_name(key)} changes what {out} trains (saved {old!r}, "
            f"given {new!r}); drop the flag to resume, or train into a new --out"
        )


def _resumable_model_config(key: str, old: dict, value: dict) -> bool:
    """Whether a ``--model-config`` change on resume touches only :data:`RESUMABLE_MODEL_CONFIG`."""
    changed = [k for k, v in value.items() if old.get(k) != v] if key == "model_config" else [key]
    return all(k in RESUMABLE_MODEL_CONFIG for k in changed)


def _start_from(given: dict) -> tuple[dict, list]:
    """The saved settings a train command starts from, and the run's history: with ``--resume``
    the run's own ``config.json`` (a refused change raises), with ``--config`` that file."""
    out = rundir.named(given.get("out", RunConfig.out), resume=bool(given.get("resume")))
    if out is not None:
        given["out"] = str(out)  # the real directory, a link resolved once
    if given.get("resume") and out is not None and (out / "config.json").exists():
        saved = _saved_settings(out / "config.json")
        return saved, _history(out, _check_resume_changes(saved, given, out))
    if given.get("config"):
        return _saved_settings(Path(given["config"])), []
    return {}, []


def _resolve_train(args):
    """``(RunConfig, FitConfig, model overrides, data options, history)`` for ``jaxnn train``:
    the field defaults, overridden by the recipe (when nothing is saved), the saved settings and
    the flags given, in this order; ``--model-config`` fields merge key by key."""
    given = _given_settings(args)
    saved, history = _start_from(given)
    chosen = recipes.named(given["recipe"]) if given.get("recipe") and not saved else {}
    name = given.get("model", saved.get("model", chosen.get("model", RunConfig.model)))
    dataset = given.get("dataset", saved.get("dataset", chosen.get("dataset", RunConfig.dataset)))
    layers = ({} if saved else chosen or recipes.recipe(name, dataset), saved, given)
    settings = {k: v for layer in layers for k, v in layer.items()}
    for merged in ("model_config", "data_option"):  # these merge key by key
        settings[merged] = {k: v for x in layers for k, v in x.get(merged, {}).items()}
    run = RunConfig(**_fields(RunConfig, settings, leave=("model_config", "data_option")))
    fit_cfg = FitConfig(**_fields(FitConfig, settings))
    return run, fit_cfg, settings["model_config"], settings["data_option"], history


def _fields(cls, settings: dict, leave=()) -> dict:
    """The settings that are fields of the dataclass ``cls``, save those in ``leave``."""
    names = {f.name for f in dataclasses.fields(cls)} - set(leave)
    return {k: v for k, v in settings.items() if k in names}


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


def cmd_train(args) -> int:
    """``jaxnn train``: check every setting, claim the run directory, load, normalize with train
    statistics, build, fit, report."""
    from jaxnn import parallel

    run, fit_cfg, overrides, options, history = _resolve_train(args)
    if run.num_processes > 1:  # before anything asks JAX for its devices
        parallel.initialize_distributed(run.coordinator, run.num_processes, run.process_id)
    upfront.check_devices(fit_cfg.devices)
    made, previous = not run.out, rundir.latest_target()  # made: a fresh runs/MODEL-DATASET-N
    out = rundir.fresh(run.model, run.dataset) if made else Path(run.out)
    args.out = str(out)  # the resume hint names it
    try:
        with rundir.claim(
            out, resume=run.resume, overwrite=run.overwrite, main=run.process_id == 0
        ):  # fmt: skip
            return _train(out, made, run, fit_cfg, overrides, options, history, vars(args))
    finally:
        if made and not any(p.name != ".lock" for p in out.iterdir()):
            rundir.remove_if_empty(out, previous=previous)  # refused before any work


def _train(out: Path, made: bool, run, fit_cfg, overrides, options, history, given) -> int:
    """The training of :func:`cmd_train` in its claimed directory ``out``."""
    import jax

    from jaxnn import models
    from jaxnn.train.loop import fit

    run = dataclasses.replace(run, out=str(out))
    splits, data_record = rundata.training_data(run, fit_cfg.seed, options, given=given)
    run, fit_cfg, recipe, notice = _small_data_recipe(given, run, fit_cfg, splits)
    with _user_input("--model-config"):
        model = models.build(run.model, splits.info, **overrides)
    upfront.check_augment(fit_cfg.augment, splits.info)
    upfront.check_memory(model, fit_cfg.optimization)
    info = splits.info
    say = print if jax.process_index() == 0 else (lambda *a, **k: None)
    say(
        f"{run.model} on {info.name}: {len(splits.train)} train / {len(splits.val)} val, "
        f"input {info.input_shape}, {info.num_classes} outputs -> {out}",
        flush=True,
    )
    if run.doctor and not _preflight_passes(model, splits, fit_cfg):
        return 1
    if made and (note := rundir.point_latest(out)):
        say(note, flush=True)
    if notice:
        say(notice, flush=True)
    run_info = {"data": data_record, "history": history, **recipe}
    result = fit(model, splits, fit_cfg, out_dir=out, resume=run.resume, run_info=run_info)
    keys = ("best_epoch", "best_val_accuracy", "test_accuracy", "test_loss", "epochs_run")
    say(json.dumps({k: result.summary[k] for k in (*keys, "stopped_reason")}), flush=True)
    return 1 if result.summary["stopped_reason"] == "diverged" else 0


def _small_data_recipe(args: dict, run: RunConfig, fit_cfg: FitConfig, splits):
    """A file or folder of the user's own, trained with nothing saved: the settings not given
    (``args``: the parsed flags) come from :func:`jaxnn.app.recipes.for_data` (its size). Returns
    ``(run, fit_cfg, record, notice)``: ``{"recipe": ...}`` for ``config.json`` and a one-line
    notice, ``{}`` and ``""`` when no recipe applied."""
    from jaxnn.data import sources

    given = _given_settings(argparse.Namespace(**args))
    if _start_from(given)[0]:  # settings saved: a resumed run keeps the record of its recipe
        saved = _saved_recipe(Path(run.out)) if run.resume else None
        return run, fit_cfg, {"recipe": saved} if saved else {}, ""
    if run.recipe:  # a named recipe, recorded by its name
        return run, fit_cfg, {"recipe": {"name": run.recipe}}, ""
    if not sources.parse_spec(sources.resolve_spec(run.dataset)):
        return run, fit_cfg, {}, ""
    chosen = recipes.for_data(splits.info, len(splits.train), given)
    if not chosen:
        return run, fit_cfg, {}, ""
    run = dataclasses.replace(run, **_fields(RunConfig, chosen))
    fit_cfg = dataclasses.replace(fit_cfg, **_fields(FitConfig, chosen))
    words = ", ".join(f"{flags.flag_name(k)} {v}" for k, v in chosen.items())
    notice = (
        f"small-data recipe for {len(splits.train)} training examples: {words} (flags override it)"
    )
    record = {"name": "small_data", "train_examples": len(splits.train), "chosen": chosen}
    return run, fit_cfg, {"recipe": record}, notice


def _saved_recipe(out: Path) -> dict | None:
    """The small-data recipe record of the run in ``out`` (None: it had none)."""
    from jaxnn.train.run import read_config

    return read_config(out).get("recipe") if (out / "config.json").exists() else None


def _preflight_passes(model, splits, fit_cfg) -> bool:
    """``--doctor``: the cheap checks before training; print the report when one fails."""
    from jaxnn.app.doctor import preflight
    from jaxnn.train.loop import make_optimizer

    tx, _ = make_optimizer(fit_cfg.optimization, total_steps=max(fit_cfg.epochs, 1))
    report = preflight(model, splits, tx, seed=fit_cfg.seed)
    if not report.ok:
        print(report.text(), flush=True)
    return report.ok


def _eval_dataset(run, opts: EvalOptions):
    """The dataset ``jaxnn eval`` scores, standardized with the run's saved statistics: a CSV
    by the run's column names, another source whole, or the run's own split."""
    from jaxnn import data
    from jaxnn.data.pipeline import apply_statistics

    options = flags.parse_pairs(opts.data_option, "--data-option")
    if opts.dataset and rundata.is_named_csv(run, opts.dataset):
        dataset = rundata.named_csv(run, _csv_path(opts.dataset), options)
    elif opts.dataset:
        with _user_input(f"eval --dataset {opts.dataset}"):
            splits = data.load(opts.dataset, seed=int(run.config["fit"].get("seed", 0)), **options)
        dataset = _concat_splits(splits, run.info)
    else:
        splits = rundata.run_splits(run.out, run.config, command="eval")
        test = opts.split == "test"
        dataset = splits.test.unseal("jaxnn eval --split test") if test else splits.val
    if run.info.normalization is not None:
        dataset = data.Dataset(apply_statistics(run.info.normalization, dataset.x), dataset.y)
    return dataset


def _csv_path(spec: str) -> str:
    from jaxnn.data import sources

    parsed = sources.parse_spec(sources.resolve_spec(spec))
    if parsed is None:
        raise UserError(f"--dataset: expected a file of your own (csv:PATH), got {spec!r}")
    return str(parsed[1])


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


def cmd_eval(opts: EvalOptions) -> int:
    """``jaxnn eval``: score the best-validation model on a saved split or on a new file."""
    from jaxnn.train.logger import json_safe
    from jaxnn.train.loop import evaluate

    run = predict.load_run(opts.out)
    dataset = _eval_dataset(run, opts)
    metrics = evaluate(
        run.model, run.params, run.model_state, dataset, task=run.info.task,
        batch_size=int(run.config["fit"].get("eval_batch_size", 1000)),
    )  # fmt: skip
    where = opts.dataset or opts.split
    record = json_safe({"split": where, "examples": len(dataset), **metrics})
    detail = _eval_detail(run, dataset)
    if detail:
        record = {**record, **detail, "report": str(Path(run.out) / scores.REPORT)}
        scores.write(run.out, record)
        print(scores.table(detail), file=sys.stderr, flush=True)
    print(json.dumps(record, allow_nan=False))
    return 0


def _eval_detail(run, dataset) -> dict:
    """Per-class scores and the confusion matrix (classification), MAE and R² (regression);
    nothing for a language model."""
    task = run.info.task
    if task not in ("classification", "regression") or not len(dataset):
        return {}
    batch = int(run.config["fit"].get("eval_batch_size", 1000))
    outputs = scores.model_outputs(
        run.model, run.params, run.model_state, dataset.x, batch_size=batch
    )
    if task == "regression":
        return scores.regression(outputs, dataset.y)
    return scores.classification(outputs, dataset.y, run.info.class_names)


def cmd_predict(opts: PredictOptions) -> int:
    """``jaxnn predict``: the model's predictions for new inputs, as CSV or JSON lines."""
    run = predict.load_run(opts.out)
    rows = predict.predict_file(run, opts.input)
    text = predict.format_rows(rows, opts.format)
    if opts.output:
        Path(opts.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_sample(opts: SampleOptions) -> int:
    """``jaxnn sample``: continue ``--prompt`` with a trained language model (a transformer, or
    the GRU of ``--model rnn``)."""
    import jax
    import jax.numpy as jnp

    from jaxnn import models

    run = predict.load_run(opts.out)
    tokenizer = run.info.tokenizer
    name = run.config["model"]
    if name not in ("transformer", "rnn") or tokenizer is None:
        raise UserError(
            f"sample: expected a language-model run (transformer or rnn on text), got model "
            f"{name!r} on {run.config['dataset']!r}"
        )
    with _user_input("--prompt"):
        prompt = jnp.asarray(tokenizer.encode(opts.prompt), jnp.int32)
    ids = models.get(name).generate(
        run.params, prompt, cfg=run.model.cfg, key=jax.random.PRNGKey(opts.seed),
        length=opts.length, temperature=opts.temperature,
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
    if args.command != "train" or not getattr(args, "out", ""):
        return ""
    out = Path(args.out)
    steps = sorted(int(p.name) for p in (out / "checkpoints").glob("[0-9]*") if p.name.isdigit())
    if not steps:
        return ""
    return (
        f"; checkpoint step {steps[-1]} in {out / 'checkpoints'} is intact: resume with "
        f"`jaxnn train --out {out} --resume`"
    )


def _error_line(name: str, err: UserError, args) -> str:
    """The one line of an expected failure; a refused write (a full disk) also says what is
    intact and how to resume."""
    hint = _resume_hint(args) if isinstance(err, WriteFailed) else ""
    return f"{name}: error: {err}{hint}"


COMMANDS: dict[str, Callable[[Any], int]] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "sample": cmd_sample,
    "doctor": lambda opts: doctor.run(opts),
    "export": export.run,
    "pack": pack.run,
    "book": checkout.run,
    "bench": checkout.run,
}


def _options(args):
    """What a command runs with: the dataclass of its options, checked; ``train`` resolves its
    settings itself, and ``book`` and ``bench`` forward theirs."""
    options = OPTIONS.get(args.command)
    return args if options is None else flags.options_from(options, args)


def main(argv=None) -> int:
    """Entry point of the ``jaxnn`` console script and ``python -m jaxnn``."""
    args = build_parser().parse_args(argv)
    name = f"jaxnn {args.command}"
    # orbax's notes, and the tracebacks its writer threads log before a failed save raises (a
    # full disk: the save's own error says it in one line), are not the user's business
    logging.getLogger("absl").setLevel(logging.CRITICAL)
    reuse_freed_memory()  # before the first big allocation (jaxnn.host_memory)
    previous = {s: signal.signal(s, _end_now(name)) for s in interrupts.SIGNALS}
    try:
        return COMMANDS[args.command](_options(args))
    except UserError as err:
        print(_error_line(name, err, args), file=sys.stderr)
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
