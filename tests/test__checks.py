import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import _checks as C


def test_check_rank_accepts_listed_ranks_and_names_shape_otherwise():
    C.check_rank("f", jnp.ones((2, 3)), (2, 3))
    with pytest.raises(ValueError, match=r"f: expected rank 4, got rank 3 with shape \(2, 5, 5\)"):
        C.check_rank("f", jnp.ones((2, 5, 5)), 4)


def test_check_rank_lists_alternatives():
    with pytest.raises(ValueError, match=r"expected rank 2 or 3, got rank 1"):
        C.check_rank("f", jnp.ones((4,)), (2, 3))


def test_check_min_rank_allows_higher_and_rejects_lower():
    C.check_min_rank("f", jnp.ones((1, 2, 3)), 2)
    with pytest.raises(ValueError, match=r"expected rank >= 2, got rank 1 with shape \(3,\)"):
        C.check_min_rank("f", jnp.ones((3,)), 2)


def test_check_dim_names_axis_size_and_purpose():
    C.check_dim("f", jnp.ones((2, 3)), -1, 3)
    with pytest.raises(
        ValueError, match=r"expected size 4 on axis -1 \(channels\), got 3 in shape"
    ):
        C.check_dim("f", jnp.ones((2, 3)), -1, 4, "channels")


def test_check_same_shape_names_both_shapes():
    C.check_same_shape("f", jnp.ones((2,)), np.ones((2,)))
    with pytest.raises(
        ValueError, match=r"expected p and q to have the same shape, got \(2,\) and"
    ):
        C.check_same_shape("f", jnp.ones((2,)), jnp.ones((3,)), "p", "q")


@pytest.mark.parametrize("value", [0, -2, 2.0, True, "3", None])
def test_check_positive_int_rejects_non_positive_and_non_int(value):
    with pytest.raises(ValueError, match=r"expected width to be a positive integer, got"):
        C.check_positive_int("f", value, "width")


def test_check_positive_int_returns_python_int_for_numpy_ints():
    out = C.check_positive_int("f", np.int64(5), "width")
    assert out == 5 and type(out) is int


def test_check_integer_dtype_rejects_floats_and_accepts_ints():
    C.check_integer_dtype("f", jnp.arange(3))
    C.check_integer_dtype("f", [1, 2])
    with pytest.raises(ValueError, match=r"expected integer labels, got dtype float32"):
        C.check_integer_dtype("f", jnp.ones((3,), jnp.float32))


def test_check_floating_dtype_rejects_ints():
    C.check_floating_dtype("f", jnp.ones((2,)))
    with pytest.raises(ValueError, match=r"expected floating-point input, got dtype int32"):
        C.check_floating_dtype("f", jnp.arange(2, dtype=jnp.int32))


def test_check_labels_in_range_rejects_concrete_out_of_range_values():
    C.check_labels_in_range("f", jnp.array([0, 4]), 5)
    with pytest.raises(ValueError, match=r"expected labels in \[0, 5\), got values in \[-1, 4\]"):
        C.check_labels_in_range("f", jnp.array([-1, 4]), 5)


def test_check_labels_in_range_passes_traced_labels_under_jit():
    @jax.jit
    def f(labels):
        C.check_labels_in_range("f", labels, 2)
        return labels

    assert f(jnp.array([7])).tolist() == [7]


def test_check_labels_in_range_accepts_empty_labels():
    C.check_labels_in_range("f", jnp.zeros((0,), jnp.int32), 3)


def test_check_param_shape_reports_missing_key_and_wrong_shape():
    params = {"w": jnp.ones((3, 2))}
    C.check_param_shape("f", params, "w", (3, 2))
    with pytest.raises(ValueError, match=r"expected a parameter 'b', got keys \['w'\]"):
        C.check_param_shape("f", params, "b", (2,))
    with pytest.raises(ValueError, match=r"expected parameter 'w' of shape \(2, 3\), got \(3, 2\)"):
        C.check_param_shape("f", params, "w", (2, 3))


@pytest.mark.parametrize("value", [1.0, -0.1, "0.5", None])
def test_check_probability_rejects_values_outside_unit_interval(value):
    with pytest.raises(ValueError, match=r"expected rate in \[0, 1\), got"):
        C.check_probability("f", value, "rate")


def test_check_probability_returns_float():
    assert C.check_probability("f", 0, "rate") == 0.0


@pytest.mark.parametrize("value", [0, 1, "true", None, np.array(True)])
def test_check_bool_rejects_anything_but_true_and_false(value):
    with pytest.raises(ValueError, match=r"f: expected flag to be True or False, got"):
        C.check_bool("f", value, "flag")


def test_check_bool_returns_a_python_bool():
    assert C.check_bool("f", np.bool_(True), "flag") is True
    assert C.check_bool("f", False, "flag") is False


def test_check_axis_normalizes_negative_axes():
    assert C.check_axis("f", jnp.ones((2, 3, 4)), -1) == 2
    assert C.check_axis("f", jnp.ones((2, 3, 4)), 1) == 1


@pytest.mark.parametrize("axis", [3, -4, 1.0, True])
def test_check_axis_rejects_axes_outside_rank(axis):
    with pytest.raises(
        ValueError, match=r"expected axis in \[-3, 3\) for input of rank 3, got axis"
    ):
        C.check_axis("f", jnp.ones((2, 3, 4)), axis)


def test_checks_fire_at_trace_time_under_jit():
    f = jax.jit(lambda x: (C.check_rank("f", x, 2), x)[1])
    with pytest.raises(ValueError, match=r"expected rank 2, got rank 1"):
        f(jnp.ones((3,)))
