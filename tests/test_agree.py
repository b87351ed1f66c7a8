"""Processes that agree: the same run on every process, and one stopping step after a signal."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _cpu_env import cpu_env

from jaxnn.train import agree, interrupts

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_with_one_process_a_check_acts_at_once_on_its_own_signal():
    flags = agree.Agreed(interrupts.Deferred(), every=10)
    flags.check()
    flags.check_now()  # nothing caught: nothing raised
    flags.flags.caught = signal.SIGTERM
    with pytest.raises(interrupts.Interrupted) as stop:
        flags.check()
    assert stop.value.signum == signal.SIGTERM
    with pytest.raises(interrupts.Interrupted):
        flags.check_now()


def test_one_process_needs_no_agreement_and_the_digest_tells_records_apart():
    agree.check_same_run({"lr": 1.0})
    assert agree.shared_run_id("abc") == "abc"
    assert agree.run_digest({"lr": 1.0}) == agree.run_digest({"lr": 1.0})
    assert agree.run_digest({"lr": 1.0}) != agree.run_digest({"lr": 2.0})


def _train(out, port, i, *flags):
    argv = ["-m", "jaxnn", "train", "--model", "mlp", "--dataset", "synthetic:moons",
            "--batch-size", "64", "--out", str(out), "--no-progress", "--num-processes", "2",
            "--coordinator", f"127.0.0.1:{port}", "--process-id", str(i), *flags]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, *argv], env=cpu_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _wait(procs, timeout=300):
    return [(p.wait(timeout=timeout), p.communicate()[1]) for p in procs]


def test_processes_with_another_config_refuse_to_start_with_one_line(tmp_path):
    port = _free_port()
    procs = [_train(tmp_path / "run", port, i, "--epochs", "1", "--lr", lr)
             for i, lr in enumerate(("1e-3", "2e-3"))]  # fmt: skip
    for code, err in _wait(procs):
        assert code == 2, err[-3000:]
        lines = [line for line in err.splitlines() if "error:" in line]
        assert len(lines) == 1 and "process 1 runs another config" in lines[0], err[-3000:]
    assert not (tmp_path / "run" / "config.json").exists()


def _first_checkpoint(run, procs, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(p.name.isdigit() for p in (run / "checkpoints").glob("[0-9]*")):
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    raise AssertionError([p.communicate()[1][-2000:] for p in procs])


def _sigterm_one_of_two(run, epochs: int):
    """Train on two processes, SIGTERM process 1 after the first checkpoint; both must stop."""
    port = _free_port()
    procs = [_train(run, port, i, "--epochs", str(epochs)) for i in range(2)]
    _first_checkpoint(run, procs)
    procs[1].send_signal(signal.SIGTERM)  # one host is preempted; process 0 gets no signal
    results = _wait(procs)
    for code, err in results:
        assert code == interrupts.exit_code(signal.SIGTERM), err[-3000:]
        assert "terminated (SIGTERM)" in err
    steps = {err.split("checkpoint step ")[1].split()[0] for _, err in results}
    assert len(steps) == 1  # both name the same intact step to resume from
    return int(steps.pop())


def test_a_sigterm_on_one_process_stops_both_at_the_same_checkpoint(tmp_path):
    step = _sigterm_one_of_two(tmp_path / "run", epochs=400)
    summary = tmp_path / "run" / "summary.json"
    assert step > 0 and not summary.exists()  # stopped long before the 400 epochs


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_on_one_process_resumes_to_the_uninterrupted_result(tmp_path):
    epochs = 60
    port = _free_port()
    straight = [_train(tmp_path / "straight", port, i, "--epochs", str(epochs)) for i in range(2)]
    for code, err in _wait(straight, 900):
        assert code == 0, err[-3000:]
    run = tmp_path / "stopped"
    _sigterm_one_of_two(run, epochs)
    port = _free_port()
    resumed = [_train(run, port, i, "--resume") for i in range(2)]
    for code, err in _wait(resumed, 900):
        assert code == 0, err[-3000:]
    a, b = (json.loads((d / "summary.json").read_text()) for d in (tmp_path / "straight", run))
    assert b["epochs_run"] == epochs
    assert a["params_sha256"] == b["params_sha256"]
