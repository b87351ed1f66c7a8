"""Finite-difference gradient checks — Chapters 6 and 7: is the gradient really the gradient?

Backpropagation (Chapter 7) computes every derivative of the loss in a few passes; the slow, obvious
alternative is to nudge each parameter and watch the loss move (Chapter 6's definition of the
gradient). :func:`numerical_grad` does the latter with central differences,

    dL/dtheta_i  ~  (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps),

whose error is ``O(eps^2)`` plus rounding ``O(u / eps)``; in float64 (``u ~ 1e-16``) with
``eps = 1e-6`` both are near ``1e-12``, which is why the checks insist on float64 (in float32 the
rounding term alone is ``1e-1``). :func:`check_grads` compares forward- and reverse-mode automatic
differentiation against it, recursively up to a chosen order, and reports the worst disagreeing
entry by its pytree path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = ["numerical_grad", "check_grads"]

_MODES = ("fwd", "rev")


def _require_float64(name: str, tree) -> None:
    if jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
        raise ValueError(
            f"{name}: expected float64 to be enabled, got x64 disabled (float64 silently becomes "
            "float32); wrap the call in `with jax.enable_x64(True):`"
        )
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    if not leaves:
        raise ValueError(f"{name}: expected a pytree with at least one array, got {tree!r}")
    for path, leaf in leaves:
        dtype = jnp.asarray(leaf).dtype
        if dtype != jnp.float64:
            raise ValueError(
                f"{name}: expected float64 arrays, got dtype {dtype} at "
                f"{jax.tree_util.keystr(path) or '<root>'}; create them inside "
                "`with jax.enable_x64(True):` with dtype=jnp.float64"
            )


def numerical_grad(f, params, eps: float = 1e-6):
    """Gradient of a scalar function by central differences, in float64.

    Chapter 6: the gradient is the vector of partial derivatives; each is estimated as
    ``(f(theta + eps e_i) - f(theta - eps e_i)) / (2 eps)``. All ``2 n`` perturbed evaluations
    run as one ``jax.vmap`` batch.

    Args:
      f: function of one pytree ``params`` returning a scalar.
      params: pytree of float64 arrays.
      eps: step size.

    Returns:
      A pytree with the structure, shapes and dtype of ``params``.

    Raises:
      ValueError: if x64 is not enabled, a leaf is not float64, or ``f`` is not scalar.
    """
    _require_float64("numerical_grad", params)
    flat, unravel = ravel_pytree(params)  # (n,)
    out = jax.eval_shape(lambda p: jnp.asarray(f(p)), params)
    if out.shape != ():
        raise ValueError(f"numerical_grad: expected f to return a scalar, got shape {out.shape}")
    steps = eps * jnp.eye(flat.size, dtype=flat.dtype)  # (n, n)
    points = jnp.concatenate([flat + steps, flat - steps])  # (2n, n)
    values = jax.vmap(lambda v: jnp.asarray(f(unravel(v))))(points)  # (2n,)
    plus, minus = values[: flat.size], values[flat.size :]
    return unravel((plus - minus) / (2.0 * eps))


def _fwd_grad(g):
    """Gradient of scalar ``g`` by forward mode: one ``jax.jvp`` per basis tangent (vmapped)."""

    def grad(args):
        flat, unravel = ravel_pytree(args)
        basis = jnp.eye(flat.size, dtype=flat.dtype)  # (n, n)
        jvp = lambda t: jax.jvp(lambda v: g(unravel(v)), (flat,), (t,))[1]
        return unravel(jax.vmap(jvp)(basis))

    return grad


def _rev_grad(g):
    """Gradient of scalar ``g`` by reverse mode: one ``jax.vjp`` with cotangent 1."""

    def grad(args):
        out, vjp = jax.vjp(g, args)
        return vjp(jnp.ones_like(out))[0]

    return grad


def _compare(what: str, ad, fd, rtol: float, atol: float) -> None:
    ad_leaves = jax.tree_util.tree_leaves(ad)
    fd_with_path = jax.tree_util.tree_flatten_with_path(fd)[0]
    worst: tuple | None = None  # (excess, path, index, ad, fd)
    bad = total = 0
    for (path, fd_leaf), ad_leaf in zip(fd_with_path, ad_leaves, strict=True):
        a = np.asarray(ad_leaf, np.float64).ravel()
        n = np.asarray(fd_leaf, np.float64).ravel()
        excess = np.abs(a - n) / (atol + rtol * np.abs(n))
        excess = np.where(np.isfinite(a) & np.isfinite(n), excess, np.inf)
        total += excess.size
        bad += int(np.sum(excess > 1.0))
        if excess.size:
            i = int(np.argmax(excess))
            if worst is None or excess[i] > worst[0]:
                worst = (excess[i], path, i, a[i], n[i])
    if bad and worst is not None:
        _, path, i, a, n = worst
        rel = abs(a - n) / max(abs(a), abs(n), np.finfo(np.float64).tiny)
        raise AssertionError(
            f"check_grads: {what} disagrees with finite differences at "
            f"args{jax.tree_util.keystr(path)} flat index {i}: AD {a:.10g}, FD {n:.10g}, "
            f"relative error {rel:.3g} (rtol {rtol:g}, atol {atol:g}); "
            f"{bad} of {total} entries disagree"
        )


def _derivative_pairs(f, args, order, modes, eps, label, seed):
    """Finite-difference and AD gradients of every checked function, as one traceable function.

    Returns a list of ``(what, fd, {mode: ad})``, one entry per derivative function checked.
    """
    out_flat = jax.eval_shape(lambda *a: ravel_pytree(f(*a))[0], *args)  # (m,)
    # A fixed random cotangent u turns f into the scalar g = <u, f>; checking grad g for a random
    # u checks the whole Jacobian with high probability, at the cost of one gradient.
    rng = np.random.default_rng(seed)
    u = jnp.asarray(rng.standard_normal(out_flat.shape), jnp.float64)  # (m,)

    def g(a):
        return jnp.vdot(u, ravel_pytree(f(*a))[0])

    ad_grad = {"fwd": _fwd_grad(g), "rev": _rev_grad(g)}
    pairs = [(label, numerical_grad(g, args, eps), {m: ad_grad[m](args) for m in modes})]
    if order == 1:
        return pairs
    # The next order differentiates each mode's derivative of g: for reverse mode the gradient
    # vector (one vjp), for forward mode the directional derivative along a random tangent v (one
    # jvp; the full forward gradient would cost one jvp per entry at every evaluation).
    flat, unravel = ravel_pytree(args)
    v = jnp.asarray(rng.standard_normal(flat.shape), jnp.float64)  # (n,)
    next_fns = {
        "fwd": ("jvp", lambda *a: jax.jvp(g, (a,), (unravel(v),))[1]),
        "rev": ("vjp", lambda *a: ravel_pytree(ad_grad["rev"](a))[0]),
    }
    for mode in modes:
        name, h = next_fns[mode]
        pairs += _derivative_pairs(h, args, order - 1, modes, eps, f"{name} of {label}", seed + 1)
    return pairs


def _check_grads_args(args, order, modes) -> tuple[tuple, tuple]:
    """``(args, modes)`` as tuples, once every argument of :func:`check_grads` is checked."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"check_grads: expected order to be an integer >= 1, got {order!r}")
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    if not modes or any(m not in _MODES for m in modes):
        raise ValueError(f"check_grads: expected modes from {_MODES}, got {modes!r}")
    if not isinstance(args, (tuple, list)):
        raise ValueError(f"check_grads: expected args as a tuple, got {type(args).__name__}")
    args = tuple(args)
    _require_float64("check_grads", args)
    return args, modes


def check_grads(
    f,
    args,
    *,
    order: int = 2,
    modes=("fwd", "rev"),
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> None:
    """Check ``jax.jvp``/``jax.vjp`` derivatives of ``f`` against finite differences, in float64.

    Chapter 7: backpropagation must agree with the definition of the derivative. The output of
    ``f`` is projected on a fixed random direction ``u``, ``g(args) = <u, f(*args)>``, and the
    gradient of ``g`` computed by each AD mode (forward: ``jax.jvp`` along every basis tangent;
    reverse: one ``jax.vjp``) must match :func:`numerical_grad` entrywise,
    ``|AD - FD| <= atol + rtol |FD|``. For ``order >= 2`` the same check is applied recursively to
    each mode's derivative of ``g`` (the reverse-mode gradient vector, and the forward-mode
    directional derivative along a fixed random tangent), so second derivatives (fwd-over-rev,
    rev-over-rev, fwd-over-fwd, rev-over-fwd) are checked too. Everything is traced into one
    ``jax.jit`` program.

    Args:
      f: function of ``*args`` returning an array (or pytree of arrays).
      args: tuple of pytrees of float64 arrays (small: the cost grows with their total size).
      order: highest derivative order to check (>= 1).
      modes: any of ``"fwd"`` and ``"rev"``.
      eps: finite-difference step.
      rtol: relative tolerance.
      atol: absolute tolerance.

    Raises:
      AssertionError: naming the derivative, the worst entry's pytree path (``args[i]...``), its
        flat index in that leaf, the AD and FD values and their relative error.
      ValueError: if x64 is disabled, an argument is not float64, or ``order``/``modes`` are bad.
    """
    args, modes = _check_grads_args(args, order, modes)
    # One compiled program for every order and mode: eager dispatch of the vmapped evaluations, or
    # one compilation per derivative, would dominate the cost.
    labels: list[str] = []  # filled while tracing: strings cannot be outputs of a jitted function

    def all_pairs(a):
        pairs = _derivative_pairs(f, a, order, modes, eps, "f", seed=0)
        labels[:] = [label for label, _, _ in pairs]
        return [(fd, ad) for _, fd, ad in pairs]

    pairs = jax.jit(all_pairs)(args)
    for label, (fd, ad) in zip(labels, pairs, strict=True):
        for mode in modes:
            _compare(f"{mode}-mode derivative of {label}", ad[mode], fd, rtol, atol)
