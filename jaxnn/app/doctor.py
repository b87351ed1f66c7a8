"""``jaxnn doctor`` — Chapter 14's debugging checklist, run as one command.

The checks, their ranking and budgets are the library's (:mod:`jaxnn.diagnostics.doctor`); the
command adds what only it needs:

- :func:`run` (``jaxnn doctor``) examines a model and dataset before training (``--model M
  --dataset D``, :func:`~jaxnn.diagnostics.doctor.examine`) or a finished or failed run
  directory (``--out RUN``, :func:`examine_run`), prints the ranked report and exits 1 when
  something is flagged;
- :func:`write_report` writes ``doctor.json`` and the figures ``doctor_lr.png``,
  ``doctor_grads.png`` and ``doctor_activations.png``.

The engine's names (:func:`diagnose`, :func:`examine`, :func:`preflight`, :data:`CHECKS`,
:data:`PREFLIGHT`, ...) are importable from here too.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

from jaxnn.app.flags import add_flags, reuse
from jaxnn.app.options import RunConfig
from jaxnn.diagnostics.doctor import (
    BUDGETS,
    CHECKS,
    PREFLIGHT,
    RUN_CHECKS,
    Budget,
    DoctorReport,
    Finding,
    diagnose,
    examine,
    load_splits,  # noqa: F401  (the engine's names are offered here too)
    preflight,
    rank,
)
from jaxnn.errors import UserError
from jaxnn.train.config import FitConfig, check_field_choices, check_field_types, setting

__all__ = [
    "CHECKS",
    "RUN_CHECKS",
    "PREFLIGHT",
    "Finding",
    "Budget",
    "BUDGETS",
    "DoctorReport",
    "diagnose",
    "examine",
    "examine_run",
    "preflight",
    "rank",
    "write_report",
    "DoctorOptions",
    "add_parser",
    "run",
]


# ---------------------------------------------------------------------------------------------
# A finished or failed run


def _restore(out: Path, config: dict):
    """``(model, splits, params, model_state, restored)``: the best-validation checkpoint, or
    the initialization for a run that failed before writing one (``restored`` says which)."""
    from jaxnn.app.predict import load_run, model_from_config
    from jaxnn.app.rundata import run_splits
    from jaxnn.data import pipeline

    fit = config["fit"]
    data = found if isinstance(found := config.get("data"), dict) else {}
    splits = run_splits(out, config, command="doctor")  # the snapshot, if the file moved
    if data.get("normalize", True):
        splits = pipeline.standardize(splits)[0]
    try:
        run = load_run(out)
        return run.model, splits, run.params, run.model_state, "best-validation checkpoint"
    except UserError as err:  # a failed run may have no complete checkpoint
        reason = f"initialization (no checkpoint restored: {err})"
    model = model_from_config(config, out / "config.json")
    return (model, splits, *model.init(jax.random.key(fit["seed"])), reason)


def examine_run(out_dir, *, report_dir=None, checks=None, progress: bool = True) -> DoctorReport:
    """Check a finished or failed run directory (``jaxnn doctor --out RUN``).

    Chapter 14: the whole checklist after training, the fit verdict from the curves included.

    Reads ``config.json`` (model, data, optimizer, learning rate), ``metrics.jsonl`` (the
    curves) and ``summary.json``, restores the best-validation parameters (or, for a run that
    failed before its first checkpoint, the initialization), and runs every check of
    :func:`diagnose`. Writes ``doctor.json`` and the figures into ``report_dir`` (default: the
    run directory).

    Raises:
      UserError: if ``out_dir`` has no ``config.json``.
    """
    from jaxnn import optim
    from jaxnn.train.logger import read_metrics

    out = Path(out_dir)
    if not (out / "config.json").is_file():
        raise UserError(
            f"doctor: expected a run directory with config.json, got {out}; "
            "pass the --out of a `jaxnn train` run"
        )
    config = json.loads((out / "config.json").read_text())
    fit = config["fit"]
    model, splits, params, model_state, restored = _restore(out, config)
    metrics = out / "metrics.jsonl"
    history = read_metrics(metrics) if metrics.is_file() else []
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    tx, _ = optim.make_optimizer(
        fit["optimizer"],
        fit["lr"],
        weight_decay=fit.get("weight_decay", 0.0),
        clip_norm=fit.get("clip_norm") or None,
    )
    report = diagnose(
        model,
        splits,
        tx=tx,
        lr=fit["lr"],
        optimizer=fit["optimizer"],
        params=params,
        model_state=model_state,
        history=history,
        checks=checks,
        seed=fit["seed"],
        progress=progress,
        summary=summary,
        monitor=fit.get("monitor", "val_accuracy"),
        min_delta=fit.get("min_delta", 0.0),
    )
    context = {**report.context, "run": str(out), "params": restored}
    if summary is not None:
        context["summary"] = summary
    report = dataclasses.replace(report, context=context)
    write_report(report, out if report_dir is None else report_dir)
    return report


# ---------------------------------------------------------------------------------------------
# doctor.json and the figures


def _figure():
    from matplotlib.figure import Figure  # the object API: no pyplot state, no display

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    return fig, fig.add_subplot()


def _save(fig, path: Path) -> None:
    """Write a figure through a fresh temporary file, so a link at ``path`` is replaced, not
    followed (a run directory is untrusted input)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fig.savefig(tmp, dpi=100, format="png")
    tmp.replace(path)


def _plot_lr(details: dict, path: Path) -> bool:
    if not details.get("lrs"):
        return False
    fig, ax = _figure()
    ax.plot(details["lrs"], details["losses"], alpha=0.3, label="loss")
    ax.plot(details["lrs"], details["smoothed"], label="smoothed loss")
    marks = (("lr", "the run's lr", "C3"), ("suggested_lr", "suggested", "C2"))
    for key, label, color in marks:
        if details.get(key):
            ax.axvline(
                details[key], color=color, linestyle="--", label=f"{label} {details[key]:.2g}"
            )
    if details.get("divergence_lr"):
        ax.axvline(details["divergence_lr"], color="k", linestyle=":", label="diverges")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="LR range test")
    ax.legend(fontsize="small")
    _save(fig, path)
    return True


def _plot_grads(details: dict, path: Path) -> bool:
    norms = details.get("norms")
    if not norms:
        return False
    fig, ax = _figure()
    values = [max(v, 1e-30) if v is not None else np.nan for v in norms.values()]
    ax.bar(range(len(values)), values)
    ax.set_xticks(range(len(values)), list(norms), rotation=45, ha="right", fontsize="small")
    ax.set(yscale="log", ylabel="gradient norm", title="per-layer gradient norms, input to output")
    _save(fig, path)
    return True


def _plot_activations(details: dict, path: Path) -> bool:
    layers = [a for a in details.get("layers", []) if a["kind"] != "layer"]
    layers = layers or details.get("layers", [])
    if not layers:
        return False
    fig, ax = _figure()
    for a in layers:
        edges = np.asarray(a["hist_edges"])
        ax.stairs(a["hist_counts"], edges, label=a["name"])
    ax.set(yscale="log", xlabel="activation", ylabel="count", title="activation histograms")
    ax.legend(fontsize="x-small")
    _save(fig, path)
    return True


def write_report(report: DoctorReport, report_dir) -> list[Path]:
    """Write ``doctor.json`` and the figures (those whose check ran) into ``report_dir``.

    Chapter 14: the evidence of each check, and its LR range test, per-layer gradient norms and
    activation histograms drawn.

    Returns:
      The paths written.
    """
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = report.to_json()
    path = out / "doctor.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    written = [path]
    plots = (
        ("lr_range", _plot_lr, "doctor_lr.png"),
        ("gradients", _plot_grads, "doctor_grads.png"),
        ("activations", _plot_activations, "doctor_activations.png"),
    )
    for check, plot, name in plots:
        if plot(data["details"].get(check) or {}, out / name):
            written.append(out / name)
    return written


# ---------------------------------------------------------------------------------------------
# The command line


def _pairs(items, flag: str) -> dict:
    out = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"doctor: expected {flag} KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


@dataclasses.dataclass(frozen=True)
class DoctorOptions:
    """``jaxnn doctor``: the chapter-14 checklist on a run (``out``) or on a model and dataset."""

    out: str | None = reuse(RunConfig, "out", default=None, help="a run directory to examine.")
    model: str | None = reuse(
        RunConfig,
        "model",
        default=None,
        help="a model to examine before training (with --dataset).",
    )
    dataset: str | None = reuse(
        RunConfig, "dataset", default=None, help="the dataset to examine it on (with --model)."
    )
    model_config: tuple[str, ...] = reuse(RunConfig, "model_config")
    data_option: tuple[str, ...] = reuse(RunConfig, "data_option")
    normalize: bool = reuse(RunConfig, "normalize")
    lr: float = reuse(FitConfig, "lr", help="the learning rate to judge.")
    optimizer: str = reuse(FitConfig, "optimizer", help="the optimizer to judge.")
    seed: int = reuse(FitConfig, "seed")
    checks: str | None = setting(
        None, f"a comma-separated subset of the checks {', '.join(CHECKS)} (default: all)."
    )
    report_dir: str | None = setting(
        None, "where doctor.json and the figures go (default: the run directory)."
    )
    progress: bool = reuse(FitConfig, "progress", help="say how each check went as it ends.")

    def __post_init__(self):
        check_field_types(self)
        check_field_choices(self)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``jaxnn doctor`` to an ``argparse`` subparsers object; returns its parser. Its flags
    are the fields of :class:`DoctorOptions`."""
    p = subparsers.add_parser(
        "doctor",
        help="run the chapter-14 debugging checklist on a run (--out) or a model and dataset",
    )
    add_flags(p, DoctorOptions)
    return p


def _examine_model(args, checks) -> DoctorReport:
    """``--model M --dataset D``: the checklist before training; the report goes to
    ``--report-dir`` when one is given."""
    report = examine(
        args.model,
        args.dataset,
        model_config=_pairs(args.model_config, "--model-config"),
        data_options=_pairs(args.data_option, "--data-option"),
        normalize=args.normalize,
        lr=args.lr,
        optimizer=args.optimizer,
        seed=args.seed,
        checks=checks,
        progress=args.progress,
    )
    if args.report_dir is not None:
        write_report(report, args.report_dir)
    return report


def run(args) -> int:
    """``jaxnn doctor``: print the ranked report; exit 0 if nothing was flagged, 1 otherwise.

    Chapter 14: the debugging checklist as one command.
    """
    checks = [c.strip() for c in args.checks.split(",")] if args.checks else None
    if args.out and (args.model or args.dataset):
        raise UserError("doctor: expected either --out RUN or --model M --dataset D, got both")
    if args.out:
        report = examine_run(
            args.out, report_dir=args.report_dir, checks=checks, progress=args.progress
        )
    elif args.model and args.dataset:
        report = _examine_model(args, checks)
    else:
        raise UserError("doctor: expected --out RUN, or --model M and --dataset D")
    print(report.text(), flush=True)
    return 0 if report.ok else 1
