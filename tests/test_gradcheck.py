"""Tests of jaxnn.gradcheck, and the gradient-check registry over every test module.

The registry: each ``tests/test_*.py`` may define ``GRAD_CASES = {"<module>.<name>": make_case}``
(``make_case()`` runs under ``jax.enable_x64(True)`` and returns ``(f, args)`` with float64 args)
and ``NOT_DIFFERENTIABLE = {"<module>.<name>": reason}``. Every public function of
``jaxnn.activations``, ``jaxnn.losses``, ``jaxnn.layers`` (and its submodules) and the ``apply``
of every existing ``jaxnn.models.<name>`` must have a case or a declared reason, and every case
must pass ``check_grads(f, args, order=2, modes=("fwd", "rev"))``.
"""

import importlib
import importlib.util
import inspect
import pathlib
import pkgutil
import sys
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn.activations
import jaxnn.layers
import jaxnn.losses
import jaxnn.models
from jaxnn.gradcheck import check_grads, numerical_grad

TESTS_DIR = pathlib.Path(__file__).parent


# ---------------------------------------------------------------------------------------------
# The registry


def _load_test_module(path: pathlib.Path):
    """Import ``tests/<stem>.py`` as top-level module ``<stem>``, as pytest's prepend mode does."""
    if path.stem == __name__.rpartition(".")[2]:
        return sys.modules[__name__]
    existing = sys.modules.get(path.stem)
    if existing is not None and pathlib.Path(getattr(existing, "__file__", "")) == path:
        return existing
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[path.stem]
        raise
    return module


def _collect_registry():
    cases, not_differentiable, import_errors = [], {}, {}
    for path in sorted(TESTS_DIR.glob("test_*.py")):
        try:
            module = _load_test_module(path)
        except Exception:  # reported by test_every_test_module_imports_for_the_registry
            import_errors[path.name] = traceback.format_exc(limit=3)
            continue
        for key, make_case in getattr(module, "GRAD_CASES", {}).items():
            cases.append((key, path.stem, make_case))
        not_differentiable.update(getattr(module, "NOT_DIFFERENTIABLE", {}))
    return cases, not_differentiable, import_errors


def _qualified_name(module, name: str, obj) -> str:
    if hasattr(obj, "__module__") and hasattr(obj, "__name__"):
        return f"{obj.__module__}.{obj.__name__}"
    return f"{module.__name__}.{name}"


def _public_functions(module) -> dict[str, object]:
    found = {}
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if name.startswith("init") or inspect.isclass(obj) or not callable(obj):
            continue
        found[_qualified_name(module, name, obj)] = obj
    return found


def _required_functions():
    """Public functions that need a gradient case, and modules that failed to import."""
    modules, errors = [jaxnn.activations, jaxnn.losses, jaxnn.layers], {}
    for info in pkgutil.iter_modules(jaxnn.layers.__path__, prefix="jaxnn.layers."):
        try:
            modules.append(importlib.import_module(info.name))
        except Exception:
            errors[info.name] = traceback.format_exc(limit=3)
    required = {}
    for module in modules:
        required.update(_public_functions(module))
    for name in jaxnn.models.NAMES:
        module_name = f"jaxnn.models.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:  # not written yet
                continue
            errors[module_name] = traceback.format_exc(limit=3)
            continue
        except Exception:
            errors[module_name] = traceback.format_exc(limit=3)
            continue
        required[_qualified_name(module, "apply", module.apply)] = module.apply
    return required, errors


def _resolve(qualified: str):
    module_name, _, attr = qualified.rpartition(".")
    return getattr(importlib.import_module(module_name), attr, None)


CASES, NOT_DIFFERENTIABLE_ALL, IMPORT_ERRORS = _collect_registry()


def test_every_test_module_imports_for_the_registry():
    assert not IMPORT_ERRORS, "\n".join(f"{k}:\n{v}" for k, v in IMPORT_ERRORS.items())


def test_every_differentiable_public_function_has_a_grad_case():
    required, errors = _required_functions()
    assert not errors, "\n".join(f"{k}:\n{v}" for k, v in errors.items())
    covered = {key for key, _, _ in CASES} | set(NOT_DIFFERENTIABLE_ALL)
    missing = sorted(set(required) - covered)
    assert not missing, (
        "public functions without a GRAD_CASES entry or a NOT_DIFFERENTIABLE reason: "
        + ", ".join(missing)
    )


def test_registry_requires_activations_losses_dense_and_mlp_apply():
    required, _ = _required_functions()
    for name in [
        "jaxnn.activations.softmax",
        "jaxnn.losses.cross_entropy",
        "jaxnn.layers.dense.dense",
        "jaxnn.models.mlp.apply",
    ]:
        assert name in required
    assert "jaxnn.layers.dense.init_dense" not in required


def test_every_registry_entry_names_an_existing_function():
    names = [key for key, _, _ in CASES] + list(NOT_DIFFERENTIABLE_ALL)
    unresolved = sorted(n for n in names if not callable(_resolve(n)))
    assert not unresolved, f"registry names that are not functions: {unresolved}"


@pytest.mark.parametrize(
    "key,origin,make_case", CASES, ids=[f"{key}@{origin}" for key, origin, _ in CASES]
)
def test_registered_function_gradient_matches_finite_differences(key, origin, make_case):
    with jax.enable_x64(True):
        f, args = make_case()
        check_grads(f, args, order=2, modes=("fwd", "rev"))


# ---------------------------------------------------------------------------------------------
# numerical_grad and check_grads themselves


def _tree(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "a": jnp.asarray(rng.standard_normal((2, 3)), jnp.float64),
        "b": [jnp.asarray(rng.standard_normal((4,)), jnp.float64)],
    }


def _smooth(params):
    return jnp.sum(jnp.sin(params["a"]) ** 2) + jnp.sum(params["b"][0] ** 3)


def _smooth_grad(params):
    return {
        "a": 2 * jnp.sin(params["a"]) * jnp.cos(params["a"]),
        "b": [3 * params["b"][0] ** 2],
    }


def test_numerical_grad_matches_analytic_gradient_of_a_pytree(x64):
    params = _tree()
    fd = numerical_grad(_smooth, params)
    want = _smooth_grad(params)
    assert jax.tree_util.tree_structure(fd) == jax.tree_util.tree_structure(params)
    leaves = zip(jax.tree_util.tree_leaves(fd), jax.tree_util.tree_leaves(want), strict=True)
    for got, exact in leaves:
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, exact, rtol=1e-8, atol=1e-9)


def test_numerical_grad_raises_without_x64_saying_to_enable_it():
    with jax.enable_x64(False):
        x = jnp.ones((3,))
        with pytest.raises(ValueError, match=r"expected float64.*jax\.enable_x64\(True\)"):
            numerical_grad(jnp.sum, x)


def test_numerical_grad_raises_on_float32_leaf_naming_its_path(x64):
    params = {"w": jnp.ones((2,), jnp.float64), "b": jnp.ones((2,), jnp.float32)}
    with pytest.raises(ValueError, match=r"expected float64 arrays, got dtype float32 at \['b'\]"):
        numerical_grad(lambda p: jnp.sum(p["w"]) + jnp.sum(p["b"]), params)


def test_numerical_grad_raises_on_non_scalar_function(x64):
    with pytest.raises(ValueError, match=r"expected f to return a scalar, got shape \(3,\)"):
        numerical_grad(jnp.sin, jnp.ones((3,), jnp.float64))


def test_check_grads_passes_for_correct_derivatives_up_to_order_2(x64):
    x = _tree()
    check_grads(lambda p, y: jnp.tanh(p["a"]) * jnp.sum(p["b"][0] * y), (x, x["b"][0]), order=2)


@jax.custom_jvp
def _sin_one_percent_off(x):
    return jnp.sin(x)


@_sin_one_percent_off.defjvp
def _sin_one_percent_off_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.sin(x), 1.01 * jnp.cos(x) * t


@pytest.mark.parametrize("modes", [("fwd",), ("rev",)])
def test_check_grads_catches_custom_jvp_off_by_one_percent(modes, x64):
    params = _tree()
    f = lambda p: jnp.sum(p["a"] ** 2) + _sin_one_percent_off(p["b"][0])
    with pytest.raises(AssertionError) as info:
        check_grads(f, (params,), order=1, modes=modes)
    msg = str(info.value)
    assert f"{modes[0]}-mode derivative of f" in msg
    assert "args[0]['b'][0] flat index" in msg
    assert "AD " in msg and "FD " in msg
    assert "relative error 0.0099" in msg  # |1.01 - 1| / 1.01


@jax.custom_jvp
def _cube_wrong_second_derivative(x):
    return x**3


@_cube_wrong_second_derivative.defjvp
def _cube_wrong_second_derivative_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    # Zero in value, so the first derivative is exact; its own derivative is 0.01, not 0.
    drift = 0.01 * (x - jax.lax.stop_gradient(x))
    return x**3, (3 * x**2 + drift) * t


def test_check_grads_catches_wrong_second_derivative_only_at_order_2(x64):
    x = jnp.array([0.5, -1.2, 2.0], jnp.float64)
    check_grads(_cube_wrong_second_derivative, (x,), order=1)
    with pytest.raises(AssertionError, match=r"derivative of (jvp|vjp) of f"):
        check_grads(_cube_wrong_second_derivative, (x,), order=2)


@jax.custom_vjp
def _square_wrong_vjp(x):
    return x**2


_square_wrong_vjp.defvjp(lambda x: (x**2, x), lambda x, g: (2.1 * x * g,))


def test_check_grads_catches_wrong_custom_vjp_in_reverse_mode(x64):
    x = jnp.array([0.3, 1.0, -2.0], jnp.float64)
    with pytest.raises(AssertionError, match=r"rev-mode derivative of f.*args\[0\] flat index"):
        check_grads(_square_wrong_vjp, (x,), order=1, modes=("rev",))


def test_check_grads_rejects_float32_args_saying_to_enable_x64(x64):
    with pytest.raises(ValueError, match=r"got dtype float32.*jax\.enable_x64\(True\)"):
        check_grads(jnp.sin, (jnp.ones((2,), jnp.float32),))


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"order": 0}, r"expected order to be an integer >= 1, got 0"),
        ({"modes": ("bwd",)}, r"expected modes from \('fwd', 'rev'\), got \('bwd',\)"),
    ],
)
def test_check_grads_rejects_bad_order_and_modes(kwargs, pattern, x64):
    with pytest.raises(ValueError, match=pattern):
        check_grads(jnp.sin, (jnp.ones((2,), jnp.float64),), **kwargs)
