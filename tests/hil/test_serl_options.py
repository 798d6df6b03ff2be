"""Command-line overrides of HIL-SERL's SAC settings and of the simulated operator."""

import pytest

from robot_rl.hil.serl import SerlOptions, operator_args, sac_options


def test_sac_overrides_replace_only_the_named_fields_as_numbers():
    sac = sac_options(["init_alpha=0.002", "hidden=128"])
    default = SerlOptions().sac
    assert sac.init_alpha == 0.002 and isinstance(sac.init_alpha, float)
    assert sac.hidden == 128 and isinstance(sac.hidden, int)
    assert (sac.utd, sac.residual_scale, sac.batch_size) == (default.utd, default.residual_scale, default.batch_size)


@pytest.mark.parametrize("pair, words", [("alpha=0.1", "KEY one of"), ("init_alpha", "KEY=VALUE"),
                                         ("init_alpha=small", "not a number")])
def test_a_bad_sac_override_is_one_clear_error(pair, words):
    with pytest.raises(ValueError, match=words):
        sac_options([pair])


def test_operator_overrides_are_checked_and_converted():
    assert operator_args({"reaction_delay_s": "0.5", "max_takeovers": "2"}) == {"reaction_delay_s": 0.5,
                                                                               "max_takeovers": 2}
    with pytest.raises(ValueError, match="unknown operator setting"):
        operator_args({"patience": "1"})
