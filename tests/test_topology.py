"""Checkpoints across topologies: saved on one mesh, restored onto another, the run goes on."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _cpu_env import cpu_env

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_topology_worker.py")


def test_a_sharded_checkpoint_restores_onto_another_mesh_with_the_targets_shardings(tmp_path):
    done = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path)],
        env=cpu_env(4), timeout=300, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [(r["saved_on"], r["restored_on"]) for r in rows] == [
        ("data=2,fsdp=2", "one"), ("data=2,fsdp=2", "data=4"), ("one", "data=2,fsdp=2"),
    ]  # fmt: skip
    for r in rows:
        assert r["same_values"] and r["target_sharding"] and r["extra"] == {"epoch": 1}, r
    # Restored onto data=2,fsdp=2, a device holds about half of what it holds replicated.
    assert rows[2]["max_device_bytes"] < 0.6 * rows[1]["max_device_bytes"]


_TRAIN = ["-m", "jaxnn", "train", "--model", "mlp", "--dataset", "digits", "--batch-size", "64",
          "--lr", "3e-3", "--schedule", "constant", "--optimizer", "adam", "--patience", "0",
          "--no-progress", "--model-config", "hidden=(64,)"]  # fmt: skip


def _train(out, devices: int, *flags):
    cmd = [sys.executable, *_TRAIN, "--out", str(out), *flags]
    done = subprocess.run(cmd, env=cpu_env(devices), timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def _losses(out) -> list[float]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["train_loss"] for line in lines]


@pytest.mark.slow
def test_a_run_resumed_on_another_mesh_continues_the_loss_trajectory(tmp_path):
    straight = tmp_path / "straight"
    _train(straight, 4, "--epochs", "4", "--mesh", "data=2,fsdp=2")
    four_to_one = tmp_path / "four_to_one"
    _train(four_to_one, 4, "--epochs", "2", "--mesh", "data=2,fsdp=2")
    _train(four_to_one, 1, "--resume", "--epochs", "4", "--mesh", "")
    one_to_four = tmp_path / "one_to_four"
    _train(one_to_four, 1, "--epochs", "2")
    _train(one_to_four, 4, "--resume", "--epochs", "4", "--mesh", "data=2,fsdp=2")
    want = _losses(straight)
    assert len(want) == 4
    for run in (four_to_one, one_to_four):
        got = _losses(run)
        assert got == pytest.approx(want, rel=1e-5), run.name
        history = json.loads((run / "config.json").read_text())["history"]
        assert any("mesh" in h.get("resume_changed", {}) for h in history)


def _two_processes(out, *flags):
    """``jaxnn train`` on two local processes (gloo), each with 2 fake devices."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = ["--num-processes", "2", "--coordinator", f"127.0.0.1:{port}"]
    cmd = [sys.executable, *_TRAIN, "--out", str(out), *flags, *cluster, "--process-id"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen([*cmd, str(i)], env=cpu_env(2), **pipes) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]


@pytest.mark.slow
def test_a_two_process_run_resumed_in_one_process_continues_the_loss_trajectory(tmp_path):
    straight = tmp_path / "straight"
    _train(straight, 4, "--epochs", "4", "--mesh", "data=2,fsdp=2")
    run = tmp_path / "two_to_one"
    _two_processes(run, "--epochs", "2", "--mesh", "data=2,fsdp=2")
    assert len(_losses(run)) == 2
    _train(run, 1, "--resume", "--epochs", "4", "--mesh", "", "--num-processes", "1")
    got, want = _losses(run), _losses(straight)
    assert len(want) == 4 and got == pytest.approx(want, rel=1e-5)
    history = json.loads((run / "config.json").read_text())["history"]
    assert any("mesh" in h.get("resume_changed", {}) for h in history)
