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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a coordinator)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(cmd: list, *, devices: int = 2, timeout: int = 300) -> None:
    """Run ``cmd`` as the two processes of one cluster on localhost (the coordinator flags
    appended, ``devices`` fake CPU devices each) and assert that both exit with 0."""
    import subprocess

    cluster = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2"]
    procs = [
        subprocess.Popen(
            [*cmd, *cluster, "--process-id", str(i)],
            env=cpu_env(devices),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
