import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from _cpu_env import cpu_env, free_port, run_two_processes

from jaxnn import parallel

WORKER = Path(__file__).with_name("_fit_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def _run(npz, devices_flag, host_devices, *extra):
    cmd = [sys.executable, str(WORKER), "--npz", str(npz), "--devices", str(devices_flag), *extra]
    subprocess.run(cmd, env=cpu_env(host_devices), check=True, timeout=300, capture_output=True)
    return np.load(npz)


def _params(npz):
    return [npz[k] for k in sorted(npz.files, key=str) if k.startswith("arr_")]


def test_make_mesh_refuses_more_devices_than_exist():
    with pytest.raises(ValueError, match="expected at most"):
        parallel.make_mesh(len(jax.devices()) + 1)


def test_make_mesh_refuses_a_non_positive_count():
    with pytest.raises(ValueError, match="positive device count"):
        parallel.make_mesh(0)


def test_process_slice_is_the_whole_batch_with_one_process():
    assert parallel.process_slice(64) == slice(0, 64)


def test_shard_batch_keeps_values_and_shape_on_a_one_device_mesh():
    mesh = parallel.make_mesh(1)
    x = np.arange(12.0).reshape(6, 2)
    out = parallel.shard_batch({"x": x}, mesh)
    np.testing.assert_array_equal(parallel.to_host(out)["x"], x)


def test_replicate_places_every_leaf_on_the_mesh():
    mesh = parallel.make_mesh(1)
    tree = parallel.replicate({"a": np.ones(3), "b": np.zeros(())}, mesh)
    assert all(leaf.sharding.mesh == mesh for leaf in jax.tree.leaves(tree))


def test_initialize_distributed_rejects_a_bad_process_id():
    with pytest.raises(ValueError, match="process_id"):
        parallel.initialize_distributed("127.0.0.1:1234", 2, 2)


def test_four_devices_give_the_one_device_result(tmp_path):
    one = _run(tmp_path / "one.npz", 0, 4)
    four = _run(tmp_path / "four.npz", 4, 4)
    assert int(four["devices"]) == 4
    for a, b in zip(_params(one), _params(four), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_four_devices_with_scan_and_a_padded_last_batch_give_the_one_device_result(tmp_path):
    # digits: 1294 training examples, batch 64: a last batch of 14 each epoch, which four devices
    # cannot split, padded to 16 with two rows of weight 0 that add nothing to the update
    one = _run(tmp_path / "one.npz", 0, 4)
    four = _run(tmp_path / "four.npz", 4, 4, "--scan")
    assert int(four["devices"]) == 4
    for a, b in zip(_params(one), _params(four), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_two_processes_on_localhost_give_the_one_process_result(tmp_path):
    single = _run(tmp_path / "single.npz", 4, 4)
    run_two_processes([sys.executable, str(WORKER), "--npz", str(tmp_path / "multi.npz")])
    multi = np.load(tmp_path / "multi.npz")
    assert int(multi["processes"]) == 2 and int(multi["devices"]) == 4
    for a, b in zip(_params(single), _params(multi), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _two_process_train(out, port, epochs):
    argv = ["-m", "jaxnn", "train", "--model", "mlp", "--dataset", "synthetic:moons",
            "--batch-size", "64", "--epochs", str(epochs), "--out", str(out), "--no-progress",
            "--num-processes", "2", "--coordinator", f"127.0.0.1:{port}"]  # fmt: skip
    return [
        subprocess.Popen(
            [sys.executable, *argv, "--process-id", str(i)],
            env=cpu_env(1),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for i in range(2)
    ]


@pytest.mark.slow
def test_a_two_process_run_killed_in_one_process_resumes_to_the_uninterrupted_result(tmp_path):
    straight = _two_process_train(tmp_path / "straight", free_port(), 4)
    for p in straight:
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-3000:]
    run = tmp_path / "killed"
    procs = _two_process_train(run, free_port(), 4)
    deadline = time.time() + 600
    while time.time() < deadline and not any(
        p.name.isdigit() for p in (run / "checkpoints").glob("[0-9]*")
    ):
        time.sleep(0.1)
    procs[1].send_signal(signal.SIGKILL)  # one process dies; its peer cannot go on alone
    procs[1].wait(timeout=60)
    try:
        procs[0].wait(timeout=60)
    except subprocess.TimeoutExpired:
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=60)
    assert procs[1].returncode == -signal.SIGKILL
    port = free_port()
    resumed = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jaxnn",
                "train",
                "--out",
                str(run),
                "--resume",
                "--num-processes",
                "2",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--process-id",
                str(i),
            ],
            env=cpu_env(1),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for i in range(2)
    ]
    for p in resumed:
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-3000:]
    summaries = [json.loads((d / "summary.json").read_text()) for d in (tmp_path / "straight", run)]
    assert summaries[1]["epochs_run"] == 4
    assert summaries[0]["params_sha256"] == summaries[1]["params_sha256"]
