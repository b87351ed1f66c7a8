"""The helpers shared by the model modules."""

import numpy as np
import pytest

from jaxnn.models import _common


def test_widths_takes_an_int_or_a_sequence_and_refuses_strings_and_zero():
    assert _common.widths("m", 8) == (8,)
    assert _common.widths("m", [8, 4]) == (8, 4)
    assert _common.widths("m", ()) == ()
    with pytest.raises(ValueError, match="m: expected hidden as a tuple"):
        _common.widths("m", "8")
    with pytest.raises(ValueError, match="every hidden width"):
        _common.widths("m", (8, 0))


def test_check_state_takes_none_for_empty_and_refuses_other_shapes():
    assert _common.check_state("m", None, {}) == {}
    want = {"bn": {"mean": np.zeros(3)}}
    assert _common.check_state("m", want, want) is want
    with pytest.raises(ValueError, match=r"m: expected state= of shapes"):
        _common.check_state("m", None, want)
    with pytest.raises(ValueError, match=r"m: expected state= of shapes"):
        _common.check_state("m", {"bn": {"mean": np.zeros(4)}}, want)


def test_check_cfg_names_the_expected_config():
    class Config:
        pass

    Config.__module__ = "jaxnn.models.mlp"
    with pytest.raises(ValueError, match=r"m: expected cfg=mlp.Config\(...\).*got NoneType"):
        _common.check_cfg("m", None, Config)


def test_dropout_active_needs_a_key_only_in_training_with_a_rate():
    assert not _common.dropout_active("m", 0.5, False, None)
    assert not _common.dropout_active("m", 0.0, True, None)
    with pytest.raises(ValueError, match="expected a PRNG key"):
        _common.dropout_active("m", 0.5, True, None)
