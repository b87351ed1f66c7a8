"""Optimizers — Chapter 8: parameter updates and optimizers.

Four optimizers written out as ``optax.GradientTransformation(init, update)`` pairs with
``NamedTuple`` states, so each update rule reads as the math it implements: :func:`sgd`,
:func:`momentum`, :func:`adam` and :func:`adamw`. They are the readable twins of ``optax.sgd``,
``optax.sgd(momentum=..., nesterov=...)``, ``optax.adam`` and ``optax.adamw``; the tests prove each
equal to optax's over many steps, and they plug into ``optax.chain`` and ``optax.apply_updates``
like any optax transformation.

:func:`make_schedule` and :func:`make_optimizer` build what the training loop (Chapter 15) uses: a
learning-rate schedule and an optimizer chain (gradient clipping, weight decay, the update rule), by
name, from optax (the default) or from the twins here.

Every ``update`` returns the *step* to add to the parameters, ``u_t``, so that
``params = optax.apply_updates(params, u_t)`` computes ``\\theta_t = \\theta_{t-1} + u_t``. The
learning rate ``\\eta_t`` is a float or an optax schedule evaluated at the update count ``t - 1``
(0 on the first update), as optax does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn._checks import check_positive_int, check_probability

__all__ = [
    "SgdState",
    "MomentumState",
    "AdamState",
    "sgd",
    "momentum",
    "adam",
    "adamw",
    "make_schedule",
    "make_optimizer",
    "OPTIMIZERS",
    "SCHEDULES",
    "DECAY_MASKS",
]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "warmup_cosine")
#: Which parameters weight decay reaches: all of them, or the matrices only (``ndim >= 2``).
DECAY_MASKS = ("all", "matrices")
_IMPLS = ("optax", "jaxnn")
_MOMENTUM = 0.9  # the beta make_optimizer uses for "momentum" and "nesterov"

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | Schedule


class SgdState(NamedTuple):
    """State of :func:`sgd`: the number of updates taken so far (for the schedule)."""

    count: jax.Array  # type: ignore[assignment]  # () int32; tuple.count is shadowed


class MomentumState(NamedTuple):
    """State of :func:`momentum`: the update count and the velocity ``v`` (one per parameter)."""

    count: jax.Array  # type: ignore[assignment]  # () int32; tuple.count is shadowed
    velocity: Any  # pytree like params


class AdamState(NamedTuple):
    """State of :func:`adam` and :func:`adamw`: the count and the two moment estimates."""

    count: jax.Array  # type: ignore[assignment]  # () int32; tuple.count is shadowed
    mu: Any  # first moment m, pytree like params
    nu: Any  # second moment v, pytree like params


def _check_learning_rate(name: str, learning_rate) -> None:
    if callable(learning_rate) or isinstance(learning_rate, jax.core.Tracer):
        return  # a schedule, or a rate only known inside a trace
    is_scalar = np.ndim(learning_rate) == 0 and not isinstance(learning_rate, (bool, str))
    try:
        value = float(learning_rate) if is_scalar else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"{name}: expected learning_rate to be a positive finite float or an optax schedule, "
            f"got {learning_rate!r}"
        )


def _check_weight_decay(name: str, weight_decay) -> float:
    ok = isinstance(weight_decay, (int, float)) and not isinstance(weight_decay, bool)
    if not ok or not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(
            f"{name}: expected weight_decay to be a non-negative finite float, got {weight_decay!r}"
        )
    return float(weight_decay)


def _lr_at(learning_rate: ScalarOrSchedule, count: jax.Array):
    """``eta_t``: the schedule at update count ``count``, or the constant learning rate."""
    return learning_rate(count) if callable(learning_rate) else learning_rate


def _scale(step_size, tree):
    """``-eta * g`` leaf by leaf, with ``eta`` cast to each leaf's dtype."""
    return jax.tree.map(lambda g: jnp.asarray(-step_size, dtype=g.dtype) * g, tree)


def sgd(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    r"""Plain (stochastic) gradient descent.

    Chapter 8 (and Chapter 6: "why subtract the gradient"): step against the gradient,

    .. math::  u_t = -\eta_t\, g_t, \qquad \theta_t = \theta_{t-1} + u_t.

    Reference: Robbins & Monro, "A Stochastic Approximation Method", 1951. Equal to
    ``optax.sgd(learning_rate)``.

    Args:
      learning_rate: ``eta``, a positive float or an optax schedule ``count -> eta_t``.

    Returns:
      An ``optax.GradientTransformation`` whose state is :class:`SgdState`.

    Raises:
      ValueError: if a constant ``learning_rate`` is not a positive finite number.
    """
    _check_learning_rate("sgd", learning_rate)

    def init(params):
        del params
        return SgdState(count=jnp.zeros([], jnp.int32))

    def update(grads, state, params=None):
        del params
        updates = _scale(_lr_at(learning_rate, state.count), grads)
        return updates, SgdState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init, update)


def momentum(
    learning_rate: ScalarOrSchedule, beta: float = 0.9, nesterov: bool = False
) -> optax.GradientTransformation:
    r"""Gradient descent with (heavy-ball or Nesterov) momentum.

    Chapter 8: momentum accumulates the update direction to smooth optimization. The velocity
    starts at zero and

    .. math::

        v_t = \beta\, v_{t-1} + g_t, \qquad
        u_t = \begin{cases} -\eta_t\, v_t & \text{heavy ball} \\
                            -\eta_t\, (g_t + \beta\, v_t) & \text{Nesterov.} \end{cases}

    Reference: Sutskever et al., "On the importance of initialization and momentum in deep
    learning", ICML 2013. Equal to ``optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)``.

    Args:
      learning_rate: ``eta``, a positive float or an optax schedule.
      beta: momentum coefficient in ``[0, 1)``.
      nesterov: use the Nesterov look-ahead form.

    Returns:
      An ``optax.GradientTransformation`` whose state is :class:`MomentumState`.

    Raises:
      ValueError: if ``learning_rate`` or ``beta`` is out of range.
    """
    _check_learning_rate("momentum", learning_rate)
    beta = check_probability("momentum", beta, "beta")

    def init(params):
        return MomentumState(count=jnp.zeros([], jnp.int32), velocity=optax.tree.zeros_like(params))

    def update(grads, state, params=None):
        del params
        velocity = jax.tree.map(lambda g, v: g + beta * v, grads, state.velocity)
        direction = (
            jax.tree.map(lambda g, v: g + beta * v, grads, velocity) if nesterov else velocity
        )
        updates = _scale(_lr_at(learning_rate, state.count), direction)
        return updates, MomentumState(count=optax.safe_increment(state.count), velocity=velocity)

    return optax.GradientTransformation(init, update)


def _adam_direction(grads, state: AdamState, b1: float, b2: float, eps: float):
    """The Adam direction ``m_hat / (sqrt(v_hat) + eps)`` and the new :class:`AdamState`."""
    mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, grads, state.mu)
    nu = jax.tree.map(lambda g, v: (1 - b2) * (g**2) + b2 * v, grads, state.nu)
    count = optax.safe_increment(state.count)  # t
    debias1 = 1 - b1**count  # 1 - beta1^t
    debias2 = 1 - b2**count  # 1 - beta2^t
    direction = jax.tree.map(
        lambda m, v: (m / debias1.astype(m.dtype)) / (jnp.sqrt(v / debias2.astype(v.dtype)) + eps),
        mu,
        nu,
    )
    return direction, AdamState(count=count, mu=mu, nu=nu)


def adam(
    learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    r"""Adam: momentum on the gradient, scaled per parameter by its running RMS.

    Chapter 8 ("why is Adam popular?"): each parameter gets its own step size. With zero-initialised
    moments and ``t`` the update number (1 on the first update),

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2, \\
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \qquad \hat v_t = \frac{v_t}{1-\beta_2^t}, \qquad
        u_t = -\eta_t\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.

    Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015. Equal to
    ``optax.adam(learning_rate, b1, b2, eps)``.

    Args:
      learning_rate: ``eta``, a positive float or an optax schedule.
      b1: ``beta_1`` in ``[0, 1)``, decay of the first moment.
      b2: ``beta_2`` in ``[0, 1)``, decay of the second moment.
      eps: ``epsilon > 0``, added to the denominator.

    Returns:
      An ``optax.GradientTransformation`` whose state is :class:`AdamState`.

    Raises:
      ValueError: if a hyperparameter is out of range.
    """
    _check_learning_rate("adam", learning_rate)
    b1 = check_probability("adam", b1, "b1")
    b2 = check_probability("adam", b2, "b2")
    _check_eps("adam", eps)

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return AdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros)

    def update(grads, state, params=None):
        del params
        direction, new_state = _adam_direction(grads, state, b1, b2, eps)
        return _scale(_lr_at(learning_rate, state.count), direction), new_state

    return optax.GradientTransformation(init, update)


def _check_eps(name: str, eps) -> None:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"{name}: expected eps to be a positive float, got {eps!r}")


def _full_mask(mask, params):
    """Expand ``mask`` (a bool pytree, a prefix of one, or ``params -> pytree``) to ``params``."""
    tree = mask(params) if callable(mask) else mask
    return jax.tree.map(lambda m, sub: jax.tree.map(lambda _: bool(m), sub), tree, params)


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    mask=None,
) -> optax.GradientTransformation:
    r"""AdamW: Adam with decoupled weight decay.

    Chapter 8 (weight decay "discourages large parameter values"): the decay is added to the Adam
    direction rather than to the gradient, so it is not rescaled by :math:`\sqrt{\hat v_t}`:

    .. math::

        u_t = -\eta_t \left( \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
              + \lambda\, \theta_{t-1} \right),

    with :math:`\hat m_t, \hat v_t` as in :func:`adam`, and :math:`\lambda = 0` for parameters where
    ``mask`` is False (biases and norm scales are commonly left undecayed).

    Reference: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019. Equal to
    ``optax.adamw(learning_rate, b1, b2, eps, weight_decay=weight_decay, mask=mask)``.

    Args:
      learning_rate: ``eta``, a positive float or an optax schedule.
      b1: ``beta_1`` in ``[0, 1)``.
      b2: ``beta_2`` in ``[0, 1)``.
      eps: ``epsilon > 0``.
      weight_decay: ``lambda >= 0``.
      mask: ``None`` (decay every parameter), a pytree of bools with the structure of the params
        (or a prefix of it), or a function ``params -> such a pytree``.

    Returns:
      An ``optax.GradientTransformation`` whose state is :class:`AdamState`; ``update`` needs
      ``params``.

    Raises:
      ValueError: if a hyperparameter is out of range, or ``update`` is called without params.
    """
    _check_learning_rate("adamw", learning_rate)
    b1 = check_probability("adamw", b1, "b1")
    b2 = check_probability("adamw", b2, "b2")
    _check_eps("adamw", eps)
    weight_decay = _check_weight_decay("adamw", weight_decay)

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return AdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros)

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("adamw: expected params in update(grads, state, params), got None")
        direction, new_state = _adam_direction(grads, state, b1, b2, eps)
        decay = jax.tree.map(lambda _: True, params) if mask is None else _full_mask(mask, params)
        direction = jax.tree.map(
            lambda d, p, on: d + weight_decay * p if on else d, direction, params, decay
        )
        return _scale(_lr_at(learning_rate, state.count), direction), new_state

    return optax.GradientTransformation(init, update)


def make_schedule(
    name: str,
    learning_rate: float,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    min_lr: float = 0.0,
) -> Schedule:
    r"""A learning-rate schedule ``step -> eta_step`` by name (optax's schedules).

    Chapter 8: the step size need not be constant. With peak rate :math:`\eta`, ``T = total_steps``
    and ``W = warmup_steps``:

    - ``"constant"``: :math:`\eta_t = \eta`.
    - ``"cosine"``: :math:`\eta_t = \eta_{min} + \tfrac{\eta - \eta_{min}}{2}\,(1 + \cos(\pi
      \min(t, T) / T))`, from :math:`\eta` down to ``min_lr`` at step ``T``, then flat.
    - ``"warmup_cosine"``: :math:`\eta_t = \eta\, t / W` for :math:`t < W`, then the cosine over the
      remaining ``T - W`` steps, down to ``min_lr``.

    Args:
      name: one of ``"constant"``, ``"cosine"``, ``"warmup_cosine"``.
      learning_rate: the peak learning rate (positive float).
      total_steps: ``T``, the number of updates the schedule spans (positive int).
      warmup_steps: ``W``, only for ``"warmup_cosine"``; ``0 <= W < T``.
      min_lr: :math:`\eta_{min}`, the floor the cosine schedules end at (nanoGPT's ``min_lr``);
        ``0 <= min_lr < learning_rate``, only for the cosine schedules.

    Returns:
      An optax schedule: a function of the (int) update count returning the learning rate.

    Raises:
      ValueError: for an unknown name, a non-positive rate or step count, or warmup steps out of
        range or given to a schedule without warmup.
    """
    _check_schedule_args(name, learning_rate, total_steps, warmup_steps)
    _check_min_lr(name, learning_rate, min_lr)
    learning_rate = float(learning_rate)
    if name == "constant":
        return optax.constant_schedule(learning_rate)
    if name == "cosine":
        alpha = float(min_lr) / learning_rate  # 0.0 when there is no floor: optax's own default
        return optax.cosine_decay_schedule(learning_rate, decay_steps=total_steps, alpha=alpha)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"make_schedule: expected warmup_steps < total_steps ({total_steps}), "
            f"got {warmup_steps}"
        )
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=total_steps,
        end_value=float(min_lr),
    )


def _check_min_lr(name: str, learning_rate, min_lr) -> None:
    """Raise a ``ValueError`` unless ``min_lr`` is a floor below the peak, for a cosine schedule."""
    if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) or not min_lr >= 0:
        raise ValueError(f"make_schedule: expected min_lr >= 0, got {min_lr!r}")
    if min_lr and name == "constant":
        raise ValueError(f"make_schedule: min_lr applies to the cosine schedules, got {name!r}")
    if min_lr >= learning_rate:
        raise ValueError(
            f"make_schedule: expected min_lr below the learning rate {learning_rate}, got {min_lr}"
        )


def _check_schedule_args(name, learning_rate, total_steps, warmup_steps) -> None:
    """Raise a ``ValueError`` naming the first bad argument of :func:`make_schedule`."""
    if name not in SCHEDULES:
        raise ValueError(f"make_schedule: expected name in {', '.join(SCHEDULES)}, got {name!r}")
    _check_learning_rate("make_schedule", learning_rate)
    if callable(learning_rate):
        raise ValueError("make_schedule: expected a float learning_rate, got a schedule")
    check_positive_int("make_schedule", total_steps, "total_steps")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(
            f"make_schedule: expected warmup_steps to be a non-negative int, got {warmup_steps!r}"
        )
    if name != "warmup_cosine" and warmup_steps:
        raise ValueError(
            f"make_schedule: warmup_steps applies to 'warmup_cosine' only, got warmup_steps="
            f"{warmup_steps} with schedule {name!r}"
        )


def make_optimizer(
    name: str,
    learning_rate: float,
    *,
    schedule: str = "constant",
    total_steps: int = 1,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    clip_norm: float | None = None,
    nesterov: bool = False,
    impl: str = "optax",
    beta2: float = 0.999,
    min_lr: float = 0.0,
    decay_steps: int | None = None,
    decay_mask: str = "all",
) -> tuple[optax.GradientTransformation, Schedule]:
    r"""The optimizer chain the training loop uses, and its learning-rate schedule.

    Chapter 8 and Chapter 14 (exploding gradients): the chain is, in order,

    1. ``optax.clip_by_global_norm(clip_norm)`` if ``clip_norm`` is given:
       :math:`g \leftarrow g \cdot \min(1, c / \lVert g \rVert_2)` over all parameters;
    2. for ``"sgd"``, ``"momentum"``, ``"nesterov"`` with ``weight_decay > 0``:
       ``optax.add_decayed_weights`` (:math:`g \leftarrow g + \lambda\theta`, the L2-penalty
       gradient, before momentum and the learning rate); with ``decay_mask="matrices"``, only the
       parameters of two or more dimensions decay (weight matrices, kernels and embedding tables;
       not biases or norm scales), as nanoGPT does;
    3. the update rule: ``"sgd"``; ``"momentum"`` (heavy ball, :math:`\beta = 0.9`, or Nesterov
       if ``nesterov``); ``"nesterov"``; ``"adam"``; ``"adamw"`` (decoupled decay
       ``weight_decay``; with 0 it is Adam).

    ``impl="optax"`` uses ``optax.sgd/adam/adamw``; ``impl="jaxnn"`` uses the twins in this module,
    which compute the same updates.

    Args:
      name: one of ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, ``"adamw"``.
      learning_rate: the (peak) learning rate, a positive float.
      schedule: ``"constant"``, ``"cosine"`` or ``"warmup_cosine"`` (see :func:`make_schedule`).
      total_steps: updates the schedule spans (used by the cosine schedules).
      warmup_steps: linear warmup steps (``"warmup_cosine"`` only).
      weight_decay: ``lambda >= 0``.
      clip_norm: maximum global gradient norm (positive float), or ``None`` for no clipping.
      nesterov: with ``"momentum"``, use Nesterov momentum.
      impl: ``"optax"`` or ``"jaxnn"``.
      beta2: Adam's :math:`\beta_2` in ``(0, 1)`` (``"adam"``/``"adamw"`` only; nanoGPT uses 0.99).
      min_lr: the floor of a cosine schedule (see :func:`make_schedule`).
      decay_steps: the updates the schedule decays over, if not ``total_steps`` (nanoGPT's
        ``lr_decay_iters``); past them the rate stays at ``min_lr``.
      decay_mask: ``"all"`` (every parameter decays) or ``"matrices"`` (those with ``ndim >= 2``).

    Returns:
      ``(optimizer, schedule_fn)``: an ``optax.GradientTransformation`` (its ``update`` needs
      ``params``) and the schedule ``step -> learning rate`` it applies, for logging.

    Raises:
      ValueError: for an unknown name, schedule or impl (the message lists the valid choices), a
        non-positive learning rate or clip norm, a negative weight decay, ``"adam"`` with weight
        decay (use ``"adamw"``), or ``nesterov=True`` with a name other than
        ``"momentum"``/``"nesterov"``.
    """
    weight_decay = _check_optimizer_args(name, impl, learning_rate, weight_decay, clip_norm)
    _check_recipe_args(name, nesterov=nesterov, beta2=beta2, decay_mask=decay_mask)
    schedule_fn = make_schedule(
        schedule,
        learning_rate,
        total_steps=total_steps if decay_steps is None else decay_steps,
        warmup_steps=warmup_steps,
        min_lr=min_lr,
    )
    # A constant rate is passed as a float so the optimizer state carries no schedule counter.
    lr = float(learning_rate) if schedule == "constant" else schedule_fn
    rule = _UpdateRule(weight_decay, beta2, None if decay_mask == "all" else _matrices)
    chain = [] if clip_norm is None else [optax.clip_by_global_norm(float(clip_norm))]
    chain += _update_rule(name, lr, rule, nesterov=nesterov, impl=impl)
    return optax.chain(*chain), schedule_fn


class _UpdateRule(NamedTuple):
    weight_decay: float
    beta2: float
    mask: Callable | None  # params -> bools (which decay), or None: all


def _matrices(params):
    """The decay mask of ``decay_mask="matrices"``: True for leaves of two or more dimensions."""
    return jax.tree_util.tree_map(lambda leaf: jnp.ndim(leaf) >= 2, params)


def _check_recipe_args(name: str, *, nesterov: bool, beta2, decay_mask) -> None:
    """Raise a ``ValueError`` naming the first setting that does not apply to optimizer ``name``."""
    if nesterov and name not in ("momentum", "nesterov"):
        raise ValueError(
            f"make_optimizer: nesterov=True applies to 'momentum' only, got name {name!r}"
        )
    if isinstance(beta2, bool) or not isinstance(beta2, (int, float)) or not 0 < beta2 < 1:
        raise ValueError(f"make_optimizer: expected beta2 in (0, 1), got {beta2!r}")
    if beta2 != 0.999 and name not in ("adam", "adamw"):
        raise ValueError(f"make_optimizer: beta2 applies to 'adam' and 'adamw', got {name!r}")
    if decay_mask not in DECAY_MASKS:
        raise ValueError(
            f"make_optimizer: expected decay_mask in {', '.join(DECAY_MASKS)}, got {decay_mask!r}"
        )


def _check_optimizer_args(name, impl, learning_rate, weight_decay, clip_norm) -> float:
    """Raise a ``ValueError`` naming the first bad argument of :func:`make_optimizer`; return
    the checked weight decay."""
    if name not in OPTIMIZERS:
        raise ValueError(f"make_optimizer: expected name in {', '.join(OPTIMIZERS)}, got {name!r}")
    if impl not in _IMPLS:
        raise ValueError(f"make_optimizer: expected impl in {', '.join(_IMPLS)}, got {impl!r}")
    _check_learning_rate("make_optimizer", learning_rate)
    if callable(learning_rate):
        raise ValueError("make_optimizer: expected a float learning_rate, got a schedule")
    weight_decay = _check_weight_decay("make_optimizer", weight_decay)
    _check_clip_norm(clip_norm)
    if name == "adam" and weight_decay > 0:
        raise ValueError(
            f"make_optimizer: 'adam' takes no weight decay, got weight_decay={weight_decay}; "
            "use 'adamw' for Adam with decoupled weight decay (Chapter 13)"
        )
    return weight_decay


def _update_rule(name, lr, rule: _UpdateRule, *, nesterov, impl) -> list:
    """The chain's last links: the L2 gradient for the SGD family, then the update rule."""
    if name in ("sgd", "momentum", "nesterov"):
        decay = (
            [optax.add_decayed_weights(rule.weight_decay, mask=rule.mask)]
            if rule.weight_decay > 0
            else []
        )
        return [*decay, _sgd_family(name, lr, nesterov=nesterov, impl=impl)]
    if name == "adam":
        return [optax.adam(lr, b2=rule.beta2) if impl == "optax" else adam(lr, b2=rule.beta2)]
    make = optax.adamw if impl == "optax" else adamw
    return [make(lr, b2=rule.beta2, weight_decay=rule.weight_decay, mask=rule.mask)]


def _check_clip_norm(clip_norm) -> None:
    if clip_norm is not None and (
        isinstance(clip_norm, bool)
        or not isinstance(clip_norm, (int, float))
        or not math.isfinite(clip_norm)
        or clip_norm <= 0
    ):
        raise ValueError(
            f"make_optimizer: expected clip_norm to be None or a positive float, got {clip_norm!r}"
        )


def _sgd_family(name: str, lr, *, nesterov: bool, impl: str) -> optax.GradientTransformation:
    """SGD (``"sgd"``) or heavy-ball/Nesterov momentum, from optax or from this module."""
    beta = None if name == "sgd" else _MOMENTUM
    use_nesterov = name == "nesterov" or nesterov
    if impl == "optax":
        return optax.sgd(lr, momentum=beta, nesterov=use_nesterov)
    return sgd(lr) if beta is None else momentum(lr, beta=beta, nesterov=use_nesterov)
