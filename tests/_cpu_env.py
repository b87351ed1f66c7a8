"""The environment of a test's subprocess: this checkout's jaxnn on the CPU with N fake devices."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_env(devices: int = 1) -> dict:
    """``os.environ`` with ``devices`` fake CPU devices, the CPU platform and this checkout first
    on the path."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = str(ROOT)
    env["JAX_PLATFORMS"] = "cpu"
    return env
