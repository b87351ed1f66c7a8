"""The doctor's engine — Chapter 14's debugging checklist, run on a model and its data.

"Inspect the data and labels, then verify that loss decreases on a tiny subset of examples."
:func:`diagnose` runs the detectors of :mod:`jaxnn.diagnostics` in the book's order,

1. data and labels (:func:`~jaxnn.diagnostics.label_signal`, confirmed by the model's own
   :func:`~jaxnn.diagnostics.learning_signal`, which alone judges images;
   :func:`~jaxnn.diagnostics.class_balance`);
2. leakage across the splits (:func:`~jaxnn.diagnostics.leakage_check`);
3. the tiny-subset overfit (:func:`~jaxnn.diagnostics.overfit_tiny_batch`);
4. the learning-rate range (:func:`~jaxnn.diagnostics.lr_range_test`);
5. gradients: the first NaN (:func:`~jaxnn.diagnostics.find_nonfinite`) and per-layer norms
   (:func:`~jaxnn.diagnostics.gradient_health`);
6. activations (:func:`~jaxnn.diagnostics.activation_report`);
7. the fit verdict from the curves (:func:`~jaxnn.diagnostics.fit_diagnosis`), the classes
   the model ignores (:func:`~jaxnn.diagnostics.class_report`) and whether the run diverged
   (:func:`~jaxnn.diagnostics.divergence_report`), for a finished run;

and ranks what it finds, the most likely cause first. A divergence comes first, the run's own or
one the learning rate is found to cause in training: it is what the user saw fail, and every
other finding on a diverged run (untrained weights, classes never predicted) follows from it.
Then causes come before their symptoms: a non-finite op, leaked data, skewed classes and
meaningless labels are faults of the code and data (skewed classes first: they also weaken the
label probe); a bad learning rate is a setting; dead or saturated units explain vanishing
gradients; bad gradients explain a model that cannot memorize a tiny subset; and all of them
end in an underfitting or overfitting curve. Each finding carries its evidence and the book's
usual fix.

- :func:`diagnose` is the engine, for any model and splits in memory;
- :func:`preflight` runs the cheap checks (data, leakage, tiny subset) before a run;
- :func:`examine` checks a built-in model on a named dataset before training.

The command (``jaxnn doctor``, :mod:`jaxnn.app.doctor`) adds finished run directories, writes
``doctor.json`` and draws the figures.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import jax

from jaxnn.diagnostics._common import default_loss
from jaxnn.diagnostics.activations import activation_report
from jaxnn.diagnostics.curves import divergence_report, fit_diagnosis
from jaxnn.diagnostics.data import leakage_check
from jaxnn.diagnostics.gradients import gradient_health
from jaxnn.diagnostics.labels import class_balance, class_report, label_signal
from jaxnn.diagnostics.nonfinite import find_nonfinite
from jaxnn.diagnostics.report import Report, jsonable
from jaxnn.diagnostics.training import learning_signal, lr_range_test, overfit_tiny_batch
from jaxnn.errors import UserError

__all__ = [
    "CHECKS",
    "RUN_CHECKS",
    "PREFLIGHT",
    "Finding",
    "Budget",
    "BUDGETS",
    "budget_for",
    "DoctorReport",
    "diagnose",
    "preflight",
    "examine",
    "load_splits",
    "rank",
]

# the book's order; a finished run adds RUN_CHECKS
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
    "divergence",
)
RUN_CHECKS = ("fit", "classes", "divergence")  # need a finished run's records
PREFLIGHT = ("labels", "class_balance", "leakage", "tiny_overfit")
# most likely cause first: faults of code and data, then settings, then symptoms
_CAUSE_ORDER = (
    "divergence",
    "nonfinite",
    "leakage",
    "class_balance",  # a skewed split explains a weak label probe, not the reverse
    "labels",
    "lr_range",
    "activations",
    "gradients",
    "tiny_overfit",
    "classes",
    "fit",
)
_FIXES = {
    "labels": "inspect the labels: check that inputs and labels are joined and shuffled "
    "together; relabel or drop the examples a trained model finds hardest; if they are right, "
    "the model does not learn from these inputs (try another: the cnn for images)",
    "class_balance": "reweight the loss or resample the minority classes; report per-class "
    "recall, not accuracy alone",
    "leakage": "deduplicate before splitting (keep near-duplicates in one split) and re-split",
    "nonfinite": "use the stable form (log_softmax / log-sum-exp instead of log(softmax), "
    "where-safe sqrt and division); then lower the learning rate or clip gradients",
    "diverged": "lower the learning rate (10x or more), add warm-up and gradient clipping; "
    "then run `jaxnn doctor --model M --dataset D --lr NEW` before training again",
    "diverges": "lower the learning rate (about {suggested:.2g}); add warm-up and gradient "
    "clipping",
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
      verdict: the check's verdict (``healthy``, ``too_high``, ``leakage``, ...; ``skipped`` for
        a check that does not apply, ``error`` for one that could not run).
      flagged: whether the verdict names a problem.
      evidence: one line with the numbers behind the verdict (the report's message).
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
      signal_steps: training steps of the model's learning-signal probe (the labels check on
        images, and its confirmation elsewhere).
      probe_steps: steps of training at the judged learning rate (the divergence probe).
    """

    tiny_examples: int = 16
    tiny_steps: int = 200
    sweep_steps: int = 150
    sweep_batch: int = 64
    sample: int = 256
    signal_steps: int = 200
    probe_steps: int = 50


# per model: convolutions, recurrences and attention cost more per example on a CPU
BUDGETS = {
    "mlp": Budget(tiny_steps=500),  # 500 steps of 16 examples cost milliseconds
    "cnn": Budget(tiny_steps=150, sweep_steps=100, sweep_batch=32, sample=128, signal_steps=100),
    "rnn": Budget(sweep_steps=100, sweep_batch=32, sample=128),
    "transformer": Budget(
        tiny_examples=8, tiny_steps=100, sweep_steps=100, sweep_batch=8, sample=8
    ),
}


SMALL_DATA = 1000  #: a training split below this many examples gets :func:`budget_for`'s cut


def budget_for(model_name: str, n_train: int) -> Budget:
    """The budget of ``model_name`` (:data:`BUDGETS`), cut for a training split of fewer than
    :data:`SMALL_DATA` examples: fewer steps of the tiny-subset overfit and of the run at the
    judged rate, fewer examples for the gradient and activation checks, so that the checklist
    stays under 30 s of CPU for the CNN on 32x32 images. (The sweep keeps its steps and batch:
    a shorter or noisier sweep moves its minimum.)"""
    budget = BUDGETS.get(model_name, Budget())
    if n_train >= SMALL_DATA:
        return budget
    return dataclasses.replace(
        budget,
        tiny_steps=min(budget.tiny_steps, 100),
        sample=min(budget.sample, 64),
        probe_steps=min(budget.probe_steps, 30),
    )


@dataclasses.dataclass(frozen=True)
class DoctorReport:
    """All findings in the order run, the flagged ones ranked, and each check's full report.

    Attributes:
      findings: a :class:`Finding` per check, in the order run.
      ranked: the flagged findings, most likely cause first.
      details: ``{check: Report}``, the detector's report of each check (``None`` for a check
        skipped or in error).
      context: what was examined (model, dataset, learning rate, optimizer, ...).
    """

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

    def to_json(self) -> dict:
        """JSON-ready: ``ok``, ``ranked``, ``findings``, ``details`` (each report's ``to_json()``,
        ``{}`` for a check skipped or in error) and ``context``."""
        return {
            "ok": self.ok,
            "ranked": [dataclasses.asdict(f) for f in self.ranked],
            "findings": [dataclasses.asdict(f) for f in self.findings],
            "details": {k: r.to_json() if r is not None else {} for k, r in self.details.items()},
            "context": jsonable(self.context),
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
# The checks: each returns the detector's report


@dataclasses.dataclass
class _Case:
    """What the checks look at."""

    model: Any
    splits: Any
    tx: Any
    lr: float
    optimizer: str
    params: object
    model_state: object
    history: list | None
    loss_fn: Callable | None
    seed: int
    budget: Budget
    summary: dict | None = None
    monitor: str = "val_loss"
    min_delta: float = 0.0

    @property
    def task(self) -> str:
        return self.splits.info.task

    def sample(self, n: int):
        n = min(n, len(self.splits.train))
        return self.splits.train.x[:n], self.splits.train.y[:n]


class _Skipped(Exception):
    """A check that does not apply to the case; the message says why."""


def _needs_classes(case: _Case, what: str = "class labels") -> None:
    if case.task != "classification":
        raise _Skipped(f"task {case.task}: no {what}")


def _check_labels(case) -> Report:
    """The k-NN probe, confirmed by the model's own learning signal before it flags; on images
    the learning signal alone (distances between raw pixels are no evidence of a label)."""
    _needs_classes(case)
    s = case.splits
    image = s.info.modality == "image"
    knn = None if image else label_signal(s.train, s.val, num_classes=s.info.num_classes)
    if knn is not None and knn.ok:
        return knn
    b = case.budget
    probe = learning_signal(
        case.model, s.train, s.val, num_classes=s.info.num_classes, steps=b.signal_steps,
        batch_size=b.sweep_batch, seed=case.seed,
    )  # fmt: skip
    before = "no k-NN probe on images" if knn is None else knn.message
    return dataclasses.replace(probe, message=f"{probe.message}; {before}")


def _check_class_balance(case) -> Report:
    _needs_classes(case)
    return class_balance(case.splits.train.y, case.splits.info.num_classes)


def _check_leakage(case) -> Report:
    return leakage_check(case.splits)


def _check_tiny_overfit(case) -> Report:
    from jaxnn.models import param_count

    b = case.budget
    report = overfit_tiny_batch(
        case.model,
        case.tx,
        case.sample(b.tiny_examples),
        steps=b.tiny_steps,
        task=case.task,
        seed=case.seed,
    )
    message = f"{report.message} ({param_count(case.params)} parameters)"
    return dataclasses.replace(report, message=message)


def _check_lr_range(case) -> Report:
    return lr_range_test(
        case.model,
        case.splits.train,
        lr=case.lr,
        optimizer=case.optimizer,
        steps=case.budget.sweep_steps,
        batch_size=case.budget.sweep_batch,
        task=case.task,
        seed=case.seed,
        probe_steps=case.budget.probe_steps,
    )


def _check_nonfinite(case) -> Report:
    return find_nonfinite(
        case.model,
        case.params,
        case.sample(case.budget.sweep_batch),
        model_state=case.model_state,
        loss_fn=case.loss_fn,
        task=case.task,
    )


def _check_gradients(case) -> Report:
    x, y = case.sample(case.budget.sample)
    loss_fn = case.loss_fn or default_loss(case.task)

    def loss(p):
        out, _ = case.model.apply(p, x, state=case.model_state, train=False)
        return loss_fn(out, y).mean()

    return gradient_health(jax.jit(jax.grad(loss))(case.params))


def _check_activations(case) -> Report:
    return activation_report(
        case.model, case.params, case.sample(case.budget.sample)[0], model_state=case.model_state
    )


def _check_fit(case) -> Report:
    history = [
        r
        for r in case.history or []
        if r.get("train_loss") is not None and r.get("val_loss") is not None
    ]
    if len(history) < 2:
        raise _Skipped(f"{len(history)} epoch(s) of history: the curves need at least 2")
    return fit_diagnosis(history, monitor=case.monitor, min_delta=case.min_delta)


def _check_classes(case) -> Report:
    _needs_classes(case, "classes")
    val = case.splits.val
    logits, _ = case.model.apply(case.params, val.x[:2000], state=case.model_state, train=False)
    return class_report(logits, val.y[:2000], case.splits.info.num_classes)


def _check_divergence(case) -> Report:
    return divergence_report(case.summary, case.history or [])


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
    "divergence": _check_divergence,
}


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


def _fix(name: str, report: Report, lr: float) -> str:
    """The book's usual fix for a flagged report: by its verdict, else by its check."""
    fallback = lr / 10 if report.verdict == "diverges" else lr
    suggested = getattr(report, "suggested_lr", None) or fallback
    return _FIXES.get(report.verdict, _FIXES.get(name, "")).format(suggested=suggested)


def _run_check(name: str, case: _Case) -> tuple[Finding, Report | None]:
    t0 = time.perf_counter()
    try:
        report = _RUNNERS[name](case)
    except _Skipped as skip:
        return Finding(name, "skipped", False, str(skip), "", time.perf_counter() - t0), None
    except Exception as err:  # a check that cannot run says so and the others go on
        evidence = f"{type(err).__name__}: {err}"
        return Finding(name, "error", False, evidence, "", time.perf_counter() - t0), None
    fix = "" if report.ok else _fix(name, report, case.lr)
    seconds = time.perf_counter() - t0
    return Finding(name, report.verdict, not report.ok, report.message, fix, seconds), report


def rank(findings) -> tuple:
    """The flagged findings, most likely cause first (see the module docstring).

    Chapter 14: what failed first (a divergence, the run's own or one the learning rate causes
    in training), then causes before their symptoms.
    """
    flagged = [f for f in findings if f.flagged]
    first = ("diverged", "diverges")
    return tuple(
        sorted(flagged, key=lambda f: (f.verdict not in first, _CAUSE_ORDER.index(f.check)))
    )


def _check_names(checks, history) -> tuple:
    default = CHECKS if history is not None else tuple(c for c in CHECKS if c not in RUN_CHECKS)
    names = tuple(checks) if checks is not None else default
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise UserError(f"doctor: expected checks from {', '.join(CHECKS)}, got {unknown}")
    return names


def _run_all(names, case: _Case, progress: bool) -> tuple[list, dict]:
    bar, findings, details = _Progress(names, progress), [], {}
    try:
        for i, name in enumerate(names):
            bar.start(name)
            finding, details[name] = _run_check(name, case)
            findings.append(finding)
            bar.done(i, finding)
    finally:
        bar.close()
    return findings, details


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
    summary: dict | None = None,
    monitor: str = "val_loss",
    min_delta: float = 0.0,
) -> DoctorReport:
    """Run the checklist on a model and its data; rank what it finds.

    Chapter 14: "inspect the data and labels, then verify that loss decreases on a tiny subset
    of examples", and the rest of the book's checklist in its order.

    Args:
      model: a :class:`jaxnn.models.Model`.
      splits: normalized :class:`jaxnn.data.Splits` (the test split's inputs are compared for
        leakage; nothing is scored on it).
      tx: the optax optimizer of the run (default ``make_optimizer(optimizer, lr)``).
      lr, optimizer: the learning rate and optimizer name the LR range test judges.
      params, model_state: the parameters to examine (default: ``model.init``, before training).
      history: per-epoch records of a run (adds the :data:`RUN_CHECKS`).
      loss_fn: ``(outputs, y) -> per-example loss`` if the run uses its own.
      checks: names from :data:`CHECKS` to run (default: all that apply).
      seed: initialization and sampling seed.
      budget: how much work each check does (default: :func:`budget_for` the model and the
        training split's size).
      progress: show progress on stderr.
      summary: the run's ``summary.json`` (the ``divergence`` check reads its stop reason).
      monitor, min_delta: the run's monitored metric and smallest improvement, so that the
        ``fit`` check's best epoch is the run's.

    Returns:
      A :class:`DoctorReport`.

    Raises:
      UserError: for a check name not in :data:`CHECKS`.
    """
    from jaxnn import optim

    if params is None:
        params, model_state = model.init(jax.random.key(seed))
    if model_state is None:
        model_state = model.init(jax.random.key(seed))[1]
    tx = tx if tx is not None else optim.make_optimizer(optimizer, lr)[0]
    names = _check_names(checks, history)
    budget = budget or budget_for(model.name, len(splits.train))
    case = _Case(
        model, splits, tx, lr, optimizer, params, model_state, history, loss_fn, seed, budget,
        summary, monitor, min_delta,
    )  # fmt: skip
    findings, details = _run_all(names, case, progress)
    context = {"model": model.name, "dataset": splits.info.name, "lr": lr, "optimizer": optimizer}
    return DoctorReport(tuple(findings), rank(findings), details, context)


def preflight(model, splits, tx, *, seed: int = 0, progress: bool = False) -> DoctorReport:
    """The cheap checks before a run: data and labels, leakage, the tiny-subset overfit.

    Chapter 14: the first items of the checklist, before any long run. For ``jaxnn train
    --doctor``: stop with ``report.text()`` when ``not report.ok``.
    """
    return diagnose(model, splits, tx=tx, checks=PREFLIGHT, seed=seed, progress=progress)


# ---------------------------------------------------------------------------------------------
# Before training


def load_splits(dataset: str, *, seed: int = 0, options: dict | None = None, normalize=True):
    """``dataset`` loaded as ``jaxnn train`` loads it: standardized with training statistics.

    Chapter 13: statistics from the training split only.
    """
    from jaxnn import data
    from jaxnn.data import pipeline

    splits = data.load(dataset, seed=seed, **dict(options or {}))
    return pipeline.standardize(splits)[0] if normalize else splits


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
    progress: bool = True,
) -> DoctorReport:
    """Check a built-in model and a named dataset before training.

    Chapter 14: the checklist at initialization, with the learning rate and optimizer the run
    would use. Loads ``dataset`` as ``jaxnn train`` does (:func:`load_splits`), builds
    ``model_name`` sized for it, and runs :func:`diagnose`.
    """
    from jaxnn import models

    splits = load_splits(dataset, seed=seed, options=data_options, normalize=normalize)
    model = models.build(model_name, splits.info, **dict(model_config or {}))
    return diagnose(
        model, splits, lr=lr, optimizer=optimizer, seed=seed, checks=checks, progress=progress
    )
