"""benchmarks/nanogpt.py's own parts: the data it writes in nanoGPT's format, the command line it
gives nanoGPT, and a clear refusal of a folder that is not a nanoGPT checkout."""

import pickle

import numpy as np
import pytest

from benchmarks import nanogpt


def test_the_data_is_jaxnns_training_and_validation_ranges_in_nanogpts_format(tmp_path):
    from jaxnn.data.datasets import pydoc_corpus

    splits = nanogpt.write_nanogpt_data(tmp_path)["splits"]
    folder = tmp_path / "data" / "pydoc_char"
    meta = pickle.loads((folder / "meta.pkl").read_bytes())
    tok = splits.info.tokenizer
    assert meta["vocab_size"] == tok.vocab_size == splits.info.num_classes
    train = np.fromfile(folder / "train.bin", np.uint16)
    text = pydoc_corpus()
    assert len(train) == int(len(text) * 0.8)
    assert tok.decode(train[:500]) == text[:500]
    assert "".join(meta["itos"][int(i)] for i in train[:50]) == text[:50]
    val = np.fromfile(folder / "val.bin", np.uint16)
    first = np.asarray(
        splits.val.unseal().x[0] if hasattr(splits.val, "unseal") else splits.val.x[0]
    )
    np.testing.assert_array_equal(val[: nanogpt.SEQ_LEN], first)  # the windows scored


def test_nanogpt_gets_its_readmes_cpu_configuration_at_the_steps_asked():
    args = nanogpt.nanogpt_args(123, "out")
    for want in ("--device=cpu", "--compile=False", "--block_size=64", "--batch_size=12",
                 "--n_layer=4", "--n_head=4", "--n_embd=128", "--dropout=0.0",
                 "--max_iters=123", "--lr_decay_iters=123"):  # fmt: skip
        assert want in args
    assert args[0] == "config/train_shakespeare_char.py"


def test_a_folder_that_is_not_a_nanogpt_checkout_is_refused_naming_what_is_missing(tmp_path):
    (tmp_path / "train.py").write_text("")
    with pytest.raises(SystemExit, match=r"expected a nanoGPT checkout at .*missing \['model.py'"):
        nanogpt.run_nanogpt(tmp_path, tmp_path / "work", 30)
