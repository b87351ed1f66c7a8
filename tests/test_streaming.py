import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _cpu_env import cpu_env, run_two_processes

from jaxnn import data, models
from jaxnn.app import cli
from jaxnn.data import pipeline, streaming
from jaxnn.data.containers import DatasetInfo
from jaxnn.errors import UserError
from jaxnn.train import FitConfig, fit

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_fit_worker.py")


def _sharded(rng, sizes, row=(3, 2)):
    parts = [rng.normal(size=(n, *row)).astype(np.float32) for n in sizes]
    return streaming.ShardedArray(parts), np.concatenate(parts)


@pytest.mark.parametrize(
    "key",
    [0, 5, -1, -17, slice(None), slice(3, 11), slice(2, 30, 3), slice(None, None, -1),
     slice(40, 50), np.array([16, 0, 7, 7, 22, 3]), np.array([[1, 2], [15, -3]]), [4, 9]],
)  # fmt: skip
def test_a_sharded_array_indexes_like_the_concatenated_array(key):
    lazy, full = _sharded(np.random.default_rng(0), [7, 1, 9, 6])
    np.testing.assert_array_equal(lazy[key], full[key])


def test_a_sharded_array_takes_a_mask_and_refuses_out_of_range_indices():
    lazy, full = _sharded(np.random.default_rng(1), [5, 5])
    mask = np.arange(10) % 3 == 0
    np.testing.assert_array_equal(lazy[mask], full[mask])
    for bad in (10, -11, np.array([0, 10]), np.array([-11])):
        with pytest.raises(IndexError):
            lazy[bad]
    with pytest.raises(IndexError, match="integer indices"):
        lazy[np.array([0.5])]


def test_take_and_map_are_views_read_on_demand():
    lazy, full = _sharded(np.random.default_rng(2), [4, 8])
    picked = lazy.take(np.array([11, 0, 5]))
    assert picked.shape == (3, 3, 2)
    np.testing.assert_array_equal(picked[[2, 0]], full[[5, 11]])
    doubled = picked.map(lambda r: r * 2, np.float32)
    np.testing.assert_array_equal(np.asarray(doubled), full[[11, 0, 5]] * 2)
    with pytest.raises(ValueError, match="indices in"):
        lazy.take(np.array([12]))


@pytest.mark.parametrize("per", ["feature", "channel"])
def test_streaming_statistics_equal_the_in_memory_statistics(per):
    rng = np.random.default_rng(3)
    parts = [(rng.normal(size=(n, 4, 4, 3)) * [1, 10, 0.1] + 5).astype(np.float32)
             for n in (50, 13, 70)]  # fmt: skip
    lazy = streaming.ShardedArray(parts)
    full = np.concatenate(parts)
    got = pipeline.Standardizer.fit(lazy, per=per)
    want = pipeline.Standardizer.fit(full, per=per)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.std, want.std, rtol=1e-6)
    mean, std = _stats_in_chunks(lazy, 7, per)  # chunks that straddle the shards
    np.testing.assert_allclose(mean, want.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, want.std, rtol=1e-6)


def test_streaming_statistics_name_the_rows_that_hold_a_nan():
    parts = [np.zeros((10, 2), np.float32), np.zeros((10, 2), np.float32)]
    parts[1][4, 1] = np.nan
    lazy = streaming.ShardedArray(parts)
    with pytest.raises(ValueError, match="NaN/inf in rows 10..19"):
        _stats_in_chunks(lazy, 10)


def _stats_in_chunks(lazy, rows, per="feature"):
    return streaming.streaming_statistics(lazy, per=per, chunk_rows=rows)


@pytest.fixture(scope="module")
def digits_pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("packs") / "digits"
    streaming.pack(data.load("digits", seed=0), out, shard_bytes=40_000)
    return out


def test_a_pack_holds_the_splits_it_was_given_in_several_shards(digits_pack):
    manifest = json.loads((digits_pack / streaming.MANIFEST).read_text())
    assert len(manifest["splits"]["train"]["x"]) > 3  # 40 kB shards of 1294 x 512 B rows
    src, back = data.load("digits", seed=0), data.load(str(digits_pack), seed=0)
    assert back.info.name == f"pack:{digits_pack}"
    assert isinstance(back.train.x, streaming.ShardedArray)
    for part in ("train", "val"):
        np.testing.assert_array_equal(np.asarray(getattr(back, part).x), getattr(src, part).x)
        np.testing.assert_array_equal(getattr(back, part).y, getattr(src, part).y)
    np.testing.assert_array_equal(back.test.unseal().y, src.test.unseal().y)
    assert src.test.unseal_count == 1, "packing copied the test split without unsealing it"
    assert back.info.class_names == src.info.class_names
    assert back.info.input_shape == src.info.input_shape == (8, 8, 1)


def test_a_text_pack_keeps_its_tokenizer(tmp_path):
    text = tmp_path / "book.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    src = data.load(f"text:{text}", seed=0, seq_len=16)
    streaming.pack(src, tmp_path / "p")
    back = data.load(f"pack:{tmp_path / 'p'}", seed=0)
    assert back.info.tokenizer.decode(back.train.x[0]) == src.info.tokenizer.decode(src.train.x[0])
    np.testing.assert_array_equal(back.val.x[:], src.val.x)


def test_a_pack_of_one_part_carves_the_splits_a_file_source_would(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (np.arange(300) % 3).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    src = data.load(f"npz:{tmp_path / 'd.npz'}", seed=7)
    writer = streaming.PackWriter(tmp_path / "p", shard_bytes=1000)
    for lo in range(0, 300, 64):
        writer.add("train", x[lo : lo + 64], src.train.y[:0].dtype.type(y[lo : lo + 64]))
    writer.close(src.info)
    back = data.load(f"pack:{tmp_path / 'p'}", seed=7)
    assert (len(back.train), len(back.val), len(back.test)) == (216, 24, 60)
    np.testing.assert_array_equal(back.train.x[:], src.train.x)
    np.testing.assert_array_equal(back.val.y, src.val.y)


def _mlp(info):
    return models.build("mlp", models.get("mlp").config_for(info, hidden=(32,)))


def _cfg(**kw):
    return FitConfig(**{"epochs": 2, "batch_size": 64, "lr": 3e-3, "progress": False,
                        "eval_batch_size": 256, **kw})  # fmt: skip


def test_training_on_a_pack_gives_the_params_of_the_same_data_in_memory(digits_pack):
    memory, _ = pipeline.standardize(data.load("digits", seed=0))
    packed, _ = pipeline.standardize(data.load(str(digits_pack), seed=0))
    assert streaming.is_lazy(packed.train.x)
    a = fit(_mlp(memory.info), memory, _cfg(), verbose=False)
    b = fit(_mlp(packed.info), packed, _cfg(), verbose=False)
    assert a.summary["params_sha256"] == b.summary["params_sha256"]
    assert a.history[-1]["val_loss"] == b.history[-1]["val_loss"]


def _train(pack, out, *extra):
    cmd = [sys.executable, "-m", "jaxnn", "train", "--model", "mlp", "--dataset", str(pack),
           "--epochs", "4", "--batch-size", "64", "--lr", "0.003", "--out", str(out),
           "--no-progress", *extra]  # fmt: skip
    return subprocess.Popen(cmd, env=cpu_env(1), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_a_run_on_a_pack_resumed_from_its_checkpoint_equals_the_uninterrupted_run(
    digits_pack, tmp_path
):
    # the quick twin of the SIGKILL test below: stop after 2 of 3 epochs, resume, compare
    packed, _ = pipeline.standardize(data.load(str(digits_pack), seed=0))
    cfg = {"schedule": "constant"}  # the run length may change on resume without moving the lr
    straight = fit(_mlp(packed.info), packed, _cfg(epochs=3, **cfg), verbose=False)
    out = tmp_path / "run"
    fit(_mlp(packed.info), packed, _cfg(epochs=2, **cfg), out_dir=out, verbose=False)
    resumed = fit(_mlp(packed.info), packed, _cfg(epochs=3, **cfg), out_dir=out, resume=True,
                  verbose=False)  # fmt: skip
    assert resumed.summary["params_sha256"] == straight.summary["params_sha256"]
    assert [r["epoch"] for r in resumed.history][-1] == 3


@pytest.mark.slow
def test_a_run_on_a_pack_killed_midway_resumes_to_the_uninterrupted_run_bit_for_bit(
    digits_pack, tmp_path
):
    straight = _train(digits_pack, tmp_path / "straight")
    _, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err
    killed = _train(digits_pack, tmp_path / "killed")
    epochs = 0
    for line in killed.stdout:
        epochs += line.startswith("epoch ")
        if epochs == 2:
            killed.send_signal(signal.SIGKILL)
            break
    killed.stdout.close()
    assert killed.wait(timeout=60) == -signal.SIGKILL
    resumed = _train(digits_pack, tmp_path / "killed", "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a, b = (json.loads((tmp_path / r / "summary.json").read_text()) for r in ("straight", "killed"))
    assert a["params_sha256"] == b["params_sha256"]
    assert a["test_accuracy"] == b["test_accuracy"]


def test_scan_is_refused_for_a_pack_with_one_line(digits_pack):
    packed, _ = pipeline.standardize(data.load(str(digits_pack), seed=0))
    with pytest.raises(UserError, match="scan=True keeps the training split on the device"):
        fit(_mlp(packed.info), packed, _cfg(scan=True), verbose=False)


def _copy_pack(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _edit_manifest(pack: Path, change) -> None:
    path = pack / streaming.MANIFEST
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_a_manifest_naming_a_file_outside_the_layout_is_refused(digits_pack, tmp_path):
    pack = _copy_pack(digits_pack, tmp_path / "p")
    (tmp_path / "secret.npy").write_bytes((pack / "train-y.npy").read_bytes())
    _edit_manifest(pack, lambda m: m["splits"]["train"].update(y={"file": "../secret.npy"}))
    with pytest.raises(UserError, match="expected a shard file named like"):
        data.load(str(pack), seed=0)


def test_a_shard_that_is_a_symbolic_link_is_refused(digits_pack, tmp_path):
    pack = _copy_pack(digits_pack, tmp_path / "p")
    elsewhere = tmp_path / "elsewhere.npy"
    os.replace(pack / "train-x-00000.npy", elsewhere)
    os.symlink(elsewhere, pack / "train-x-00000.npy")
    with pytest.raises(UserError, match="symbolic link"):
        data.load(str(pack), seed=0)


def test_a_truncated_or_mismatched_shard_is_refused(digits_pack, tmp_path):
    pack = _copy_pack(digits_pack, tmp_path / "p")
    shard = pack / "train-x-00001.npy"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(UserError, match="train-x-00001.npy is truncated"):
        data.load(str(pack), seed=0)
    other = _copy_pack(digits_pack, tmp_path / "q")
    _edit_manifest(other, lambda m: m["splits"]["val"]["x"][0].update(rows=3))
    with pytest.raises(UserError, match="the manifest says 3 rows"):
        data.load(str(other), seed=0)


def test_a_pack_without_its_manifest_is_called_incomplete(digits_pack, tmp_path):
    pack = _copy_pack(digits_pack, tmp_path / "p")
    (pack / streaming.MANIFEST).unlink()
    with pytest.raises(UserError, match="incomplete: pack it again"):
        data.load(f"pack:{pack}", seed=0)


def test_the_writer_refuses_a_directory_that_holds_a_pack_and_rows_that_disagree(
    digits_pack, tmp_path
):
    with pytest.raises(UserError, match="already holds a pack"):
        streaming.PackWriter(digits_pack)
    writer = streaming.PackWriter(tmp_path / "w")
    writer.add("train", np.zeros((4, 3), np.float32), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="expected rows like"):
        writer.add("val", np.zeros((4, 5), np.float32), np.zeros(4, np.int64))
    info = DatasetInfo(name="z", task="classification", input_shape=(2,), num_classes=1)
    with pytest.raises(ValueError, match="differs from the rows"):
        writer.close(info)
    assert not streaming.is_pack(tmp_path / "w")


def test_jaxnn_pack_then_train_on_the_pack_from_the_command_line(tmp_path, capsys):
    pack = tmp_path / "moons"
    assert cli.main(["pack", "--dataset", "synthetic:moons", "--to", str(pack),
                     "--data-option", "n=400", "--shard-mb", "1"]) == 0  # fmt: skip
    assert f"jaxnn train --dataset {pack}" in capsys.readouterr().out
    assert cli.main(["pack", "--dataset", "synthetic:moons", "--to", str(pack)]) == 2
    assert "already holds a pack" in capsys.readouterr().err
    run = tmp_path / "run"
    code = cli.main(["train", "--dataset", str(pack), "--model", "mlp", "--epochs", "1",
                     "--out", str(run), "--no-progress"])  # fmt: skip
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["source"]["kind"] == "pack"
    assert config["data"]["source"]["sha256"] == streaming.pack_sha256(pack)
    assert cli.main(["train", "--dataset", f"pack:{tmp_path / 'nothing'}", "--model", "mlp"]) == 2
    assert "not found; expected a directory written by `jaxnn pack`" in capsys.readouterr().err


def test_two_processes_on_a_pack_each_read_only_their_rows(digits_pack, tmp_path):
    # digits: 1294 training rows, batch 64: 20 full batches and a last one of 14, padded to 16
    # for 4 devices; each of two processes reads half of every batch
    single = tmp_path / "single.npz"
    subprocess.run([sys.executable, str(WORKER), "--npz", str(single), "--devices", "4"],
                   env=cpu_env(4), check=True, timeout=300, capture_output=True)  # fmt: skip
    run_two_processes([sys.executable, str(WORKER), "--npz", str(tmp_path / "multi.npz"),
                       "--dataset", str(digits_pack)])  # fmt: skip
    one, multi = np.load(single), np.load(tmp_path / "multi.npz")
    assert int(multi["processes"]) == 2
    assert int(multi["train_rows_read"]) == 2 * (20 * 32 + 8)
    for k in sorted(k for k in one.files if k.startswith("arr_")):
        np.testing.assert_allclose(one[k], multi[k], rtol=1e-4, atol=1e-5)


def test_a_pack_too_large_to_map_up_front_reads_the_same_rows(digits_pack, monkeypatch):
    eager = data.load(str(digits_pack), seed=0)
    monkeypatch.setattr(streaming, "_available_bytes", lambda: 0)  # no room: pages on demand
    lazy = data.load(str(digits_pack), seed=0)
    idx = np.array([1293, 0, 640, 7])
    np.testing.assert_array_equal(lazy.train.x[idx], eager.train.x[idx])


_TRAIN = ["-m", "jaxnn", "train", "--model", "mlp", "--batch-size", "64", "--lr", "3e-3",
          "--schedule", "constant", "--patience", "0", "--no-progress",
          "--model-config", "hidden=(64,)"]  # fmt: skip


def _losses(out) -> list[float]:
    return [json.loads(x)["train_loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_pack_on_two_processes_and_a_two_axis_mesh_resumes_in_one_process(digits_pack, tmp_path):
    # the whole path: a pack, two processes of 2 devices on data=2,fsdp=2, stopped after
    # two epochs, resumed on one process and one device: the loss trajectory of one run
    train = [sys.executable, *_TRAIN, "--dataset", str(digits_pack)]
    straight = tmp_path / "straight"
    subprocess.run([*train, "--out", str(straight), "--epochs", "4", "--mesh", "data=2,fsdp=2"],
                   env=cpu_env(4), check=True, timeout=600, capture_output=True)  # fmt: skip
    run = tmp_path / "two"
    run_two_processes([*train, "--out", str(run), "--epochs", "2", "--mesh", "data=2,fsdp=2"],
                      timeout=600)  # fmt: skip
    resumed = subprocess.run(
        [*train, "--out", str(run), "--resume", "--epochs", "4", "--mesh", "",
         "--num-processes", "1"],
        env=cpu_env(1), timeout=600, capture_output=True, text=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    want = _losses(straight)
    assert len(want) == 4 and _losses(run) == pytest.approx(want, rel=1e-5)


def test_an_arrayrecord_pack_reads_the_rows_of_the_npy_pack(digits_pack, tmp_path):
    pytest.importorskip("array_record")
    src = data.load("digits", seed=0)
    streaming.pack(src, tmp_path / "ar", shard_bytes=200_000, storage="arrayrecord")
    names = sorted(p.name for p in (tmp_path / "ar").iterdir())
    assert "train-x-00000.array_record" in names and "train-x-00001.array_record" in names
    back, npy = data.load(str(tmp_path / "ar"), seed=0), data.load(str(digits_pack), seed=0)
    assert isinstance(back.train.x, streaming.SourceArray)
    idx = np.array([1293, 0, 700, 5, 700])
    np.testing.assert_array_equal(back.train.x[idx], npy.train.x[idx])
    np.testing.assert_array_equal(np.asarray(back.val.x), src.val.x)
    packed, _ = pipeline.standardize(back)
    ref, _ = pipeline.standardize(npy)
    a = fit(_mlp(packed.info), packed, _cfg(epochs=1), verbose=False)
    b = fit(_mlp(ref.info), ref, _cfg(epochs=1), verbose=False)
    assert a.summary["params_sha256"] == b.summary["params_sha256"]


def test_an_arrayrecord_shard_that_is_a_link_or_holds_other_rows_is_refused(tmp_path):
    pytest.importorskip("array_record")
    streaming.pack(data.load("synthetic:moons", seed=0, n=200), tmp_path / "p",
                   storage="arrayrecord")  # fmt: skip
    pack = _copy_pack(tmp_path / "p", tmp_path / "q")
    _edit_manifest(pack, lambda m: m["splits"]["train"]["x"][0].update(rows=5))
    with pytest.raises(UserError, match="the manifest says 5"):
        data.load(str(pack), seed=0)
    linked = _copy_pack(tmp_path / "p", tmp_path / "r")
    shard = linked / "train-x-00000.array_record"
    os.replace(shard, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", shard)
    with pytest.raises(UserError, match="symbolic link"):
        data.load(str(linked), seed=0)
