"""The PyTorch layout of every built-in model: a map that covers every array once, a round trip
that keeps the bits, refusals that name the tensor, and (with PyTorch installed) a twin that
loads the exported file with ``load_state_dict`` and computes the same outputs, both ways."""

import jax
import numpy as np
import pytest
from _tiny_models import VARIANTS, make

from jaxnn import models, weights

TOLERANCE = 1e-5  # float32, eval mode


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_map_names_every_array_of_the_model_once(variant):
    model, params, state, _ = make(variant)
    entries = weights.torch_names(model)
    names = [e.jaxnn for e in entries if e.jaxnn]
    assert sorted(set(names)) == sorted(weights.flatten({"params": params, "state": state}))
    tied = getattr(model.cfg, "tie_embeddings", False)  # the table is also head.weight
    assert [n for n in set(names) if names.count(n) > 1] == (["params.embed.table"] if tied else [])
    assert len({e.torch for e in entries}) == len(entries)
    assert {e.layout for e in entries} <= set(weights.LAYOUTS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_jaxnn_to_torch_and_back_returns_the_same_bits(variant):
    model, params, state, _ = make(variant)
    back_params, back_state = weights.from_torch(model, weights.to_torch(model, params, state))
    assert jax.tree.structure((params, state)) == jax.tree.structure((back_params, back_state))
    leaves = zip(
        jax.tree.leaves((params, state)), jax.tree.leaves((back_params, back_state)), strict=True
    )
    assert all(_same_bits(a, b) for a, b in leaves)


def test_both_ways_give_new_arrays_that_share_no_memory_with_the_input():
    model, params, state, _ = make("cnn_2d_batch_norm")
    tensors = weights.to_torch(model, params, state)
    assert all(a.flags.writeable and a.flags.c_contiguous for a in tensors.values())
    back_params, _ = weights.from_torch(model, tensors)
    tensors["fc.0.bias"][0] += 1.0  # a PyTorch module training in place, say
    assert back_params["dense_0"]["b"][0] == params["dense_0"]["b"][0]


def test_layouts_are_torchs_linear_conv_and_recurrent_ones():
    model, params, state, _ = make("cnn_2d_batch_norm")
    tensors = weights.to_torch(model, params, state)
    w = params["conv_1"]["w"]  # (KH, KW, I, O)
    assert tensors["features.4.weight"].shape == (4, 3, 3, 3)  # conv_1 after Conv, BN, ReLU, Pool
    assert tensors["features.4.weight"][2, 1, 0, 2] == w[0, 2, 1, 2]  # OIHW[o, i, h, w]
    assert _same_bits(tensors["fc.1.weight"], params["dense_1"]["w"].T)  # (out, in)
    assert _same_bits(tensors["features.1.running_var"], state["bn_0"]["var"])
    assert tensors["features.1.num_batches_tracked"].dtype == np.int64
    model, params, _, _ = make("rnn_lstm")
    tensors = weights.to_torch(model, params)
    assert _same_bits(tensors["lstm.weight_hh_l1"], params["cell_1"]["hidden"]["w"].T)  # (4H, H)
    assert _same_bits(tensors["lstm.bias_ih_l0"], params["cell_0"]["input"]["b"])


def _tensors(variant="transformer_lm"):
    model, params, state, _ = make(variant)
    return model, weights.to_torch(model, params, state)


@pytest.mark.parametrize(
    "change, expect",
    [
        (lambda t: t.pop("head.bias"), "expected a tensor 'head.bias' of shape (11,), got no such"),
        (lambda t: t.update(extra=np.zeros(1)), "expected only the target's 38 names, got also"),
        (
            lambda t: t.update({"embed.weight": np.zeros((12, 8), np.float32)}),
            "expected 'embed.weight' of shape (11, 8), got shape (12, 8)",
        ),
        (
            lambda t: t.update(pos_table=t["pos_table"][:, ::-1].copy()),
            "expected 'pos_table' to be the sinusoidal table",
        ),
    ],
    ids=["missing", "unexpected", "shape", "positions"],
)
def test_from_torch_refuses_a_state_dict_of_another_model_naming_the_key(change, expect):
    model, tensors = _tensors()
    change(tensors)
    with pytest.raises(ValueError, match=expect.replace("(", r"\(").replace(")", r"\)")):
        weights.from_torch(model, tensors)


def test_from_torch_refuses_a_batch_counter_that_is_not_an_integer():
    model, tensors = _tensors("cnn_1d_batch_norm_no_hidden")
    tensors["features.1.num_batches_tracked"] = np.zeros((), np.float32)
    with pytest.raises(ValueError, match="num_batches_tracked' as an integer count"):
        weights.from_torch(model, tensors)


def test_to_torch_refuses_params_of_another_model_and_a_state_it_needs():
    model, params, state, _ = make("mlp")
    other = models.build("mlp", model.cfg, hidden=(8,))
    with pytest.raises(
        ValueError, match=r"to_torch: mlp: expected 'params.dense_1.b' of shape \(3,\)"
    ):
        weights.to_torch(other, params)
    model, params, state, _ = make("cnn_1d_batch_norm_no_hidden")
    with pytest.raises(ValueError, match="expected a tensor 'state.bn_0.mean'"):
        weights.to_torch(model, params)


def test_a_recurrent_model_of_two_widths_has_no_single_torch_module():
    model = models.build("rnn", input_shape=(4, 3), hidden=(5, 6))
    with pytest.raises(ValueError, match=r"one width .*nn.GRU.*hidden=\(5, 6\)"):
        weights.torch_names(model)


# ---------------------------------------------------------------------------------------------
# With PyTorch: the twins of benchmarks/twins_torch.py.


def _torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors.torch")
    torch.set_num_threads(1)
    from benchmarks import twins_torch

    return torch, twins_torch


def _jaxnn_outputs(model, params, state, x):
    return np.asarray(jax.jit(model.apply)(params, x, state=state)[0])  # one compile per model


def _torch_outputs(torch, twin, x):
    with torch.no_grad():
        return twin(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_exported_file_loads_into_the_torch_twin_with_the_same_outputs(variant, tmp_path):
    torch, twins_torch = _torch()
    import safetensors.torch

    model, params, state, x = make(variant)
    path = weights.save_tensors(tmp_path / "t.safetensors", weights.to_torch(model, params, state))
    twin = twins_torch.build_torch_twin(model).eval()
    twin.load_state_dict(safetensors.torch.load_file(path))  # strict: every key, no other
    got = _torch_outputs(torch, twin, x)
    np.testing.assert_allclose(got, _jaxnn_outputs(model, params, state, x), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_torch_state_dict_imports_with_the_same_outputs_and_bits_back(variant):
    torch, twins_torch = _torch()
    model, _, _, x = make(variant)
    torch.manual_seed(0)
    twin = twins_torch.build_torch_twin(model).eval()
    for name, buffer in twin.named_buffers():  # batch-norm statistics off their defaults
        if name.endswith("running_mean"):
            buffer.normal_()
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 2.0)
    tensors = {k: v.numpy() for k, v in twin.state_dict().items()}
    params, state = weights.from_torch(model, tensors)
    want = _torch_outputs(torch, twin, x)
    np.testing.assert_allclose(
        _jaxnn_outputs(model, params, state, x), want, rtol=0, atol=TOLERANCE
    )
    back = weights.to_torch(model, params, state)
    assert list(back) == list(tensors)  # the module's order
    assert all(_same_bits(back[k], tensors[k]) for k in tensors)


def test_a_tied_state_dict_whose_two_names_differ_is_refused_naming_both():
    model, params, state, _ = make("transformer_lm_nanogpt")
    tensors = weights.to_torch(model, params, state)
    assert sorted(k for k in tensors if k.startswith("head")) == ["head.weight"]  # no bias
    assert not any(k.endswith(".bias") for k in tensors)
    tensors["head.weight"] = tensors["head.weight"] + 1.0
    with pytest.raises(ValueError, match=r"expected 'head.weight' to equal 'embed.weight'"):
        weights.from_torch(model, tensors)


def test_a_bfloat16_export_loads_as_bfloat16_torch_tensors(tmp_path):
    torch, twins_torch = _torch()
    import safetensors.torch

    model, params, _, x = make("mlp")
    half = jax.tree.map(lambda a: a.astype(jax.numpy.bfloat16), params)
    path = weights.save_tensors(tmp_path / "h.safetensors", weights.to_torch(model, half))
    loaded = safetensors.torch.load_file(path)
    assert {t.dtype for t in loaded.values()} == {torch.bfloat16}
    twin = twins_torch.build_torch_twin(model).to(torch.bfloat16).eval()
    twin.load_state_dict(loaded)
    assert torch.equal(twin.net[1].weight, loaded["net.1.weight"])
