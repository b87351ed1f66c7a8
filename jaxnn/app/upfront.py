"""Checks of ``jaxnn train``'s settings that need the devices, the data or the model, made
before any training — Chapter 15: fail in a second with one line, not after an hour.

- :func:`check_devices`: ``--devices`` no more than there are;
- :func:`check_augment`: ``--augment`` applies to the data's kind;
- :func:`check_memory`: the parameters, their best-validation copy and the optimizer state fit in
  the memory there is (the accelerator's own, or the host's), estimated from
  ``jax.eval_shape`` of the model's ``init`` and the optimizer's ``init`` (nothing allocated).
"""

from __future__ import annotations

import dataclasses
import os

from jaxnn.errors import UserError

__all__ = ["check_devices", "check_augment", "check_memory", "training_bytes", "available_bytes"]


def check_devices(devices: int) -> None:
    """Raise ``UserError`` if ``--devices`` asks for more devices than there are."""
    import jax

    have = jax.device_count()
    if devices > have:
        hint = (
            "; on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N"
            if jax.default_backend() == "cpu"
            else ""
        )
        raise UserError(
            f"--devices: expected at most {have} ({jax.default_backend()}), got {devices}{hint}"
        )


def check_augment(augment: str, info) -> None:
    """Raise ``UserError`` if ``--augment`` does not apply to the data (the message lists those
    that do)."""
    from jaxnn.data import augment as augment_lib

    if augment == "none":
        return
    try:
        augment_lib.get(augment, info)
    except ValueError as err:
        raise UserError(f"--augment: {str(err).removeprefix('get: ')}") from None


def _nbytes(tree) -> int:
    import jax

    return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def training_bytes(model, optimization) -> dict:
    """Bytes a run holds at least: ``params`` (and as many again for the best-validation copy),
    ``optimizer`` state and ``model_state``, from shapes alone (``jax.eval_shape``)."""
    import jax

    from jaxnn.train.loop import make_optimizer

    params, model_state = jax.eval_shape(model.init, jax.random.key(0))
    shape_only = dataclasses.replace(
        optimization, schedule="constant", warmup_steps=0, min_lr=0.0, decay_steps=0
    )  # the state's shapes do not depend on the schedule
    tx, _ = make_optimizer(shape_only, total_steps=1)
    opt_state = jax.eval_shape(tx.init, params)
    sizes = {"params": _nbytes(params), "optimizer": _nbytes(opt_state)}
    sizes["model_state"] = _nbytes(model_state)
    sizes["total"] = 2 * sizes["params"] + sizes["optimizer"] + 2 * sizes["model_state"]
    return sizes


def available_bytes() -> tuple[int | None, str]:
    """``(bytes, where)``: free memory of the first accelerator, or of the host (``None`` when
    it cannot be known)."""
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return stats["bytes_limit"] - stats.get("bytes_in_use", 0), f"{device.device_kind} memory"
    return _host_available(), "host memory available"


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def check_memory(model, optimization, *, available=None) -> dict:
    """Refuse a model whose parameters, best copy and optimizer state would not fit in memory.

    Args:
      model: a :class:`jaxnn.models.Model`.
      optimization: the run's :attr:`jaxnn.train.FitConfig.optimization`.
      available: ``(bytes, where)`` to compare with; default :func:`available_bytes`.

    Returns:
      The estimate of :func:`training_bytes`.

    Raises:
      UserError: naming the estimate and the memory there is.
    """
    sizes = training_bytes(model, optimization)
    have, where = available if available is not None else available_bytes()
    if have is not None and sizes["total"] > have:
        raise UserError(
            f"--model-config: {model.name}'s parameters ({_gb(sizes['params'])}, twice: the "
            f"best-validation copy) and {optimization.optimizer} state "
            f"({_gb(sizes['optimizer'])}) need at least {_gb(sizes['total'])}, more than the "
            f"{_gb(have)} of {where}; choose a smaller model"
        )
    return sizes
