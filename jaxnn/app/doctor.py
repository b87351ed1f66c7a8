"""``jaxnn doctor`` — Chapter 14's debugging checklist, run as one command.

"Inspect the data and labels, then verify that loss decreases on a tiny subset of examples."
The doctor runs the checks of :mod:`jaxnn.diagnostics` in the book's order,

1. data and labels (:func:`~jaxnn.diagnostics.label_signal`,
   :func:`~jaxnn.diagnostics.class_balance`);
2. leakage across the splits (:func:`~jaxnn.diagnostics.leakage_check`);
3. the tiny-subset overfit (:func:`~jaxnn.diagnostics.overfit_tiny_batch`);
4. the learning-rate range (:func:`~jaxnn.diagnostics.lr_range_test`);
5. gradients: the first NaN (:func:`~jaxnn.diagnostics.find_nonfinite`) and per-layer norms
   (:func:`~jaxnn.diagnostics.gradient_health`);
6. activations (:func:`~jaxnn.diagnostics.activation_report`);
7. the fit verdict from the curves (:func:`~jaxnn.diagnostics.fit_diagnosis`) and the classes
   the model ignores (:func:`~jaxnn.diagnostics.class_report`), for a finished run;

and ranks what it finds, the most likely cause first. Causes come before their symptoms: a
non-finite op, leaked or meaningless labels and skewed classes are faults of the code and data;
a bad learning rate is a setting; dead or saturated units explain vanishing gradients; bad
gradients explain a model that cannot memorize a tiny subset; and all of them end in an
underfitting or overfitting curve. Each finding carries its evidence and the book's usual fix.

- :func:`examine` checks a model and dataset before training (``jaxnn doctor --model M
  --dataset D``); :func:`examine_run` a finished or failed run directory (``jaxnn doctor --out
  RUN``); :func:`preflight` runs the cheap checks (data, leakage, tiny subset) before a run.
- :func:`diagnose` is the engine behind them, for any model and splits in memory.
- :func:`write_report` writes ``doctor.json`` and the figures ``doctor_lr.png``,
  ``doctor_grads.png`` and ``doctor_activations.png``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from jaxnn import diagnostics as D
from jaxnn.app.flags import add_flags, reuse
from jaxnn.app.options import RunConfig
from jaxnn.errors import UserError
from jaxnn.train.config import FitConfig, check_field_choices, check_field_types, setting

__all__ = [
    "CHECKS",
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

# the book's order; a finished run adds "fit" and "classes"
CHECKS = (
    "labels",
    "class_balance",
    "leakage",
    "tiny_overfit",
    "lr_range",
    "nonfinite",
    "gradients",
    "activations",
    "fit",
    "classes",
)
PREFLIGHT = ("labels", "class_balance", "leakage", "tiny_overfit")
# most likely cause first: faults of code and data, then settings, then symptoms
_CAUSE_ORDER = (
    "nonfinite",
    "leakage",
    "labels",
    "class_balance",
    "lr_range",
    "activations",
    "gradients",
    "tiny_overfit",
    "classes",
    "fit",
)
_FIXES = {
    "labels": "inspect the labels: check that inputs and labels are joined and shuffled "
    "together; relabel or drop the examples a trained model finds hardest",
    "class_balance": "reweight the loss or resample the minority classes; report per-class "
    "recall, not accuracy alone",
    "leakage": "deduplicate before splitting (keep near-duplicates in one split) and re-split",
    "nonfinite": "use the stable form (log_softmax / log-sum-exp instead of log(softmax), "
    "where-safe sqrt and division); then lower the learning rate or clip gradients",
    "too_high": "lower the learning rate (about {suggested:.2g}); add warm-up and gradient "
    "clipping",
    "too_low": "raise the learning rate (about {suggested:.2g})",
    "tiny_overfit": "debug the pipeline on the tiny subset first (inputs and labels aligned, "
    "loss on the right outputs); then raise capacity or the learning rate",
    "vanishing": "use ReLU-family activations with He initialization, normalization (batch or "
    "layer norm) and residual connections",
    "exploding": "clip gradients by global norm, lower the learning rate, add normalization",
    "dead_relu": "lower the learning rate; use leaky ReLU or He initialization; add normalization",
    "saturated": "normalize the inputs, shrink the initialization, prefer ReLU-family "
    "activations or add normalization",
    "underfitting": "more capacity, a better learning rate or more steps, less regularization",
    "overfitting": "more data or augmentation, regularization (weight decay, dropout), early "
    "stopping",
    "ignored_classes": "reweight or resample the ignored classes; check their labels",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One check's outcome: ``flagged`` findings are ranked into the report.

    Attributes:
      check: a name from :data:`CHECKS`.
      verdict: the check's verdict (``healthy``, ``too_high``, ``leakage``, ...).
      flagged: whether the verdict names a problem.
      evidence: one line with the numbers behind the verdict.
      fix: the book's usual fix (empty when not flagged).
      seconds: how long the check took.
    """

    check: str
    verdict: str
    flagged: bool
    evidence: str
    fix: str = ""
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much work the checks do; sized so the checklist takes well under a minute per model.

    Attributes:
      tiny_examples: examples of the tiny-subset overfit.
      tiny_steps: its training steps.
      sweep_steps: steps of the learning-rate sweep.
      sweep_batch: examples per sweep step, and the batch of the non-finite check.
      sample: examples for the gradient and activation checks.
    """

    tiny_examples: int = 16
    tiny_steps: int = 200
    sweep_steps: int = 150
    sweep_batch: int = 64
    sample: int = 256


# per model: convolutions, recurrences and attention cost more per example on a CPU
BUDGETS = {
    "mlp": Budget(tiny_steps=500),  # 500 steps of 16 examples cost milliseconds
    "cnn": Budget(tiny_steps=150, sweep_steps=100, sweep_batch=32, sample=128),
    "rnn": Budget(sweep_steps=100, sweep_batch=32, sample=128),
    "transformer": Budget(
        tiny_examples=8, tiny_steps=100, sweep_steps=100, sweep_batch=8, sample=8
    ),
}


@dataclasses.dataclass(frozen=True)
class DoctorReport:
    """All findings in the order run, the flagged ones ranked, and each check's full report."""

    findings: tuple
    ranked: tuple
    details: dict
    context: dict

    @property
    def ok(self) -> bool:
        """No check flagged a problem."""
        return not self.ranked

    @property
    def top(self) -> Finding | None:
        """The most likely problem, or None."""
        return self.ranked[0] if self.ranked else None

    def to_dict(self) -> dict:
        """JSON-ready: ``ok``, ``ranked``, ``findings``, ``details`` and ``context``."""
        return {
            "ok": self.ok,
            "ranked": [dataclasses.asdict(f) for f in self.ranked],
            "findings": [dataclasses.asdict(f) for f in self.findings],
            "details": D.jsonable(self.details),
            "context": D.jsonable(self.context),
        }

    def text(self) -> str:
        """The short ranked report a person reads."""
        lines = [f"{f.check:<14} {f.verdict:<16} {f.evidence}" for f in self.findings]
        if self.ok:
            return "\n".join([*lines, "", "no problem found"])
        out = [*lines, "", "most likely problem first:"]
        for i, f in enumerate(self.ranked, 1):
            out += [f"{i}. {f.check}: {f.verdict} - {f.evidence}", f"   fix: {f.fix}"]
        return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# The checks: each returns (finding verdict, evidence, fix key, details)


@dataclasses.dataclass
class _Case:
    """What the checks look at."""

    model: object
    splits: object
    tx: object
    lr: float
    optimizer: str
    params: object
    model_state: object
    history: list | None
    loss_fn: Callable | None
    seed: int
    budget: Budget

    @property
    def task(self) -> str:
        return self.splits.info.task

    def sample(self, n: int):
        n = min(n, len(self.splits.train))
        return self.splits.train.x[:n], self.splits.train.y[:n]


def _from_report(report, fix_key=None):
    return report.verdict, report.explanation, fix_key or report.verdict, report.to_dict()


def _check_labels(case):
    if case.task != "classification":
        return "skipped", f"task {case.task}: no class labels", None, {}
    s = case.splits
    report = D.label_signal(s.train, s.val, num_classes=s.info.num_classes)
    return _from_report(report, "labels")


def _check_class_balance(case):
    if case.task != "classification":
        return "skipped", f"task {case.task}: no class labels", None, {}
    out = D.class_balance(case.splits.train.y, case.splits.info.num_classes)
    verdict = "imbalanced" if out["imbalanced"] else "healthy"
    why = f"class counts {out['counts']}, largest/smallest {out['imbalance_ratio']:.2g}"
    if out["flagged"]:
        why += f"; under-represented: {out['flagged']}"
    return verdict, why, "class_balance", out


def _check_leakage(case):
    return _from_report(D.leakage_check(case.splits), "leakage")


def _check_tiny_overfit(case):
    from jaxnn.models import param_count

    b = case.budget
    report = D.overfit_tiny_batch(
        case.model,
        case.tx,
        case.sample(b.tiny_examples),
        steps=b.tiny_steps,
        task=case.task,
        seed=case.seed,
    )
    verdict, why, key, details = _from_report(report, "tiny_overfit")
    return verdict, f"{why} ({param_count(case.params)} parameters)", key, details


def _check_lr_range(case):
    report = D.lr_range_test(
        case.model,
        case.splits.train,
        lr=case.lr,
        optimizer=case.optimizer,
        steps=case.budget.sweep_steps,
        batch_size=case.budget.sweep_batch,
        task=case.task,
        seed=case.seed,
    )
    return _from_report(report)


def _check_nonfinite(case):
    report = D.find_nonfinite(
        case.model,
        case.params,
        case.sample(case.budget.sweep_batch),
        model_state=case.model_state,
        loss_fn=case.loss_fn,
        task=case.task,
    )
    return _from_report(report, "nonfinite")


def _check_gradients(case):
    from jaxnn.train.step import per_example_metrics

    x, y = case.sample(case.budget.sample)
    loss_fn = case.loss_fn or (lambda out, yb: per_example_metrics(case.task, out, yb)[0])

    def loss(p):
        out, _ = case.model.apply(p, x, state=case.model_state, train=False)
        return loss_fn(out, y).mean()

    out = D.gradient_health(jax.jit(jax.grad(loss))(case.params))
    verdict = "exploding" if out["exploding"] else "vanishing" if out["vanishing"] else "healthy"
    why = f"first/last layer gradient norm {out['ratio']:.2g}, norms in "
    why += f"[{out['min_norm']:.2g}, {out['max_norm']:.2g}] over {len(out['norms'])} layers"
    return verdict, why, verdict, out


def _check_activations(case):
    report = D.activation_report(
        case.model, case.params, case.sample(case.budget.sample)[0], model_state=case.model_state
    )
    return _from_report(report)


def _check_fit(case):
    history = [
        r
        for r in case.history or []
        if r.get("train_loss") is not None and r.get("val_loss") is not None
    ]
    if len(history) < 2:
        n = len(history)
        return "skipped", f"{n} epoch(s) of history: the curves need at least 2", None, {}
    out = D.fit_diagnosis(history)
    why = "; ".join(out["reasons"]) or (
        f"train loss fell by {out['loss_drop']:.0%}, best val epoch {out['best_val_epoch']} "
        f"of {out['epochs']}"
    )
    return out["verdict"], why, out["verdict"], out


def _check_classes(case):
    if case.task != "classification":
        return "skipped", f"task {case.task}: no classes", None, {}
    val = case.splits.val
    logits, _ = case.model.apply(case.params, val.x[:2000], state=case.model_state, train=False)
    report = D.class_report(logits, val.y[:2000], case.splits.info.num_classes)
    return _from_report(report)


_RUNNERS = {
    "labels": _check_labels,
    "class_balance": _check_class_balance,
    "leakage": _check_leakage,
    "tiny_overfit": _check_tiny_overfit,
    "lr_range": _check_lr_range,
    "nonfinite": _check_nonfinite,
    "gradients": _check_gradients,
    "activations": _check_activations,
    "fit": _check_fit,
    "classes": _check_classes,
}
_QUIET = ("healthy", "clean", "signal", "overfits", "ok", "finite", "skipped", "inconclusive")


# ---------------------------------------------------------------------------------------------
# Running the checks


class _Progress:
    """A tqdm bar on a terminal, one line per check otherwise (or nothing)."""

    def __init__(self, names, enabled: bool):
        self.names, self.enabled, self.bar = names, enabled, None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(names), desc="doctor", leave=False, file=sys.stderr)

    def start(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name)

    def done(self, i: int, finding: Finding) -> None:
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            print(
                f"doctor [{i + 1}/{len(self.names)}] {finding.check}: {finding.verdict} "
                f"({finding.seconds:.1f}s)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_check(name: str, case: _Case) -> tuple[Finding, dict]:
    t0 = time.perf_counter()
    try:
        verdict, evidence, fix_key, details = _RUNNERS[name](case)
    except Exception as err:  # a check that cannot run says so and the others go on
        verdict, evidence, fix_key, details = "error", f"{type(err).__name__}: {err}", None, {}
    flagged = verdict not in _QUIET and verdict != "error"
    fix = ""
    if flagged:
        suggested = details.get("suggested_lr") or case.lr
        fix = _FIXES.get(fix_key, _FIXES.get(name, "")).format(suggested=suggested)
    finding = Finding(name, verdict, flagged, evidence, fix, time.perf_counter() - t0)
    return finding, details


def rank(findings) -> tuple:
    """The flagged findings, most likely cause first (see the module docstring)."""
    flagged = [f for f in findings if f.flagged]
    return tuple(sorted(flagged, key=lambda f: _CAUSE_ORDER.index(f.check)))


def diagnose(
    model,
    splits,
    *,
    tx=None,
    lr: float = 1e-3,
    optimizer: str = "adam",
    params=None,
    model_state=None,
    history=None,
    loss_fn=None,
    checks=None,
    seed: int = 0,
    budget: Budget | None = None,
    progress: bool = True,
) -> DoctorReport:
    """Run the checklist on a model and its data; rank what it finds.

    Args:
      model: a :class:`jaxnn.models.Model`.
      splits: normalized :class:`jaxnn.data.Splits` (the test split's inputs are compared for
        leakage; nothing is scored on it).
      tx: the optax optimizer of the run (default ``make_optimizer(optimizer, lr)``).
      lr, optimizer: the learning rate and optimizer name the LR range test judges.
      params, model_state: the parameters to examine (default: ``model.init``, before training).
      history: per-epoch records of a run (adds the ``fit`` and ``classes`` checks).
      loss_fn: ``(outputs, y) -> per-example loss`` if the run uses its own.
      checks: names from :data:`CHECKS` to run (default: all that apply).
      seed: initialization and sampling seed.
      budget: how much work each check does (default: :data:`BUDGETS` for the model).
      progress: show progress on stderr.

    Returns:
      A :class:`DoctorReport`.
    """
    from jaxnn import optim

    if params is None:
        params, model_state = model.init(jax.random.key(seed))
    if model_state is None:
        model_state = model.init(jax.random.key(seed))[1]
    tx = tx if tx is not None else optim.make_optimizer(optimizer, lr)[0]
    default = CHECKS if history is not None else CHECKS[:-2]
    names = tuple(checks) if checks is not None else default
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise UserError(f"doctor: expected checks from {', '.join(CHECKS)}, got {unknown}")
    budget = budget or BUDGETS.get(model.name, Budget())
    case = _Case(
        model, splits, tx, lr, optimizer, params, model_state, history, loss_fn, seed, budget
    )
    bar, findings, details = _Progress(names, progress), [], {}
    try:
        for i, name in enumerate(names):
            bar.start(name)
            finding, details[name] = _run_check(name, case)
            findings.append(finding)
            bar.done(i, finding)
    finally:
        bar.close()
    context = {"model": model.name, "dataset": splits.info.name, "lr": lr, "optimizer": optimizer}
    return DoctorReport(tuple(findings), rank(findings), details, context)


def preflight(model, splits, tx, *, seed: int = 0, progress: bool = False) -> DoctorReport:
    """The cheap checks before a run: data and labels, leakage, the tiny-subset overfit.

    For ``jaxnn train --doctor``: stop with ``report.text()`` when ``not report.ok``.
    """
    return diagnose(model, splits, tx=tx, checks=PREFLIGHT, seed=seed, progress=progress)


# ---------------------------------------------------------------------------------------------
# Before training, and after


def _load(dataset: str, *, seed: int, options: dict, normalize: bool):
    from jaxnn import data
    from jaxnn.data import pipeline

    splits = data.load(dataset, seed=seed, **options)
    return pipeline.standardize(splits)[0] if normalize else splits


def _build(name: str, info, overrides: dict):
    from jaxnn import models

    return models.build(name, info, **overrides)


def examine(
    model_name: str,
    dataset: str,
    *,
    model_config: dict | None = None,
    data_options: dict | None = None,
    normalize: bool = True,
    lr: float = 1e-3,
    optimizer: str = "adam",
    seed: int = 0,
    checks=None,
    report_dir=None,
    progress: bool = True,
) -> DoctorReport:
    """Check a model and a dataset before training (``jaxnn doctor --model M --dataset D``).

    Loads ``dataset`` as ``jaxnn train`` does (standardized with training statistics), builds
    ``model_name`` sized for it, and runs :func:`diagnose` at initialization with the learning
    rate and optimizer the run would use. With ``report_dir``, writes the report there.
    """
    splits = _load(dataset, seed=seed, options=dict(data_options or {}), normalize=normalize)
    model = _build(model_name, splits.info, dict(model_config or {}))
    report = diagnose(
        model, splits, lr=lr, optimizer=optimizer, seed=seed, checks=checks, progress=progress
    )
    if report_dir is not None:
        write_report(report, report_dir)
    return report


def _restore(out: Path, config: dict):
    """``(model, splits, params, model_state, restored)``: the best-validation checkpoint, or
    the initialization for a run that failed before writing one (``restored`` says which)."""
    from jaxnn.app.predict import load_run, model_from_config

    fit = config["fit"]
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    splits = _load(
        config["dataset"],
        seed=fit["seed"],
        options=data.get("options", {}),
        normalize=data.get("normalize", True),
    )
    try:
        run = load_run(out)
        return run.model, splits, run.params, run.model_state, "best-validation checkpoint"
    except UserError as err:  # a failed run may have no complete checkpoint
        reason = f"initialization (no checkpoint restored: {err})"
    model = model_from_config(config, out / "config.json")
    return (model, splits, *model.init(jax.random.key(fit["seed"])), reason)


def examine_run(out_dir, *, report_dir=None, checks=None, progress: bool = True) -> DoctorReport:
    """Check a finished or failed run directory (``jaxnn doctor --out RUN``).

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
    )
    context = {**report.context, "run": str(out), "params": restored}
    summary = out / "summary.json"
    if summary.is_file():
        context["summary"] = json.loads(summary.read_text())
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

    Returns:
      The paths written.
    """
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
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


def run(args) -> int:
    """``jaxnn doctor``: print the ranked report; exit 0 if nothing was flagged, 1 otherwise."""
    checks = [c.strip() for c in args.checks.split(",")] if args.checks else None
    if args.out and (args.model or args.dataset):
        raise UserError("doctor: expected either --out RUN or --model M --dataset D, got both")
    if args.out:
        report = examine_run(
            args.out, report_dir=args.report_dir, checks=checks, progress=args.progress
        )
    elif args.model and args.dataset:
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
            report_dir=args.report_dir,
            progress=args.progress,
        )
    else:
        raise UserError("doctor: expected --out RUN, or --model M and --dataset D")
    print(report.text(), flush=True)
    return 0 if report.ok else 1
