"""Node plumbing: one joint-name mapping, typed parameters parsed like `-p`, rate-limited logs."""

import logging

import numpy as np
import pytest

from robot_rl.joint_map import JointMap, JointMapError
from robot_rl.nodes._common import NodeStartError, RateLimitedLog, floats, param


def test_joint_map_orders_ignores_extras_and_names_every_problem():
    jm = JointMap(["a", "b", "c"], what="joint state")
    np.testing.assert_array_equal(jm.take(["gripper", "c", "a", "b"], [9.0, 3.0, 1.0, 2.0]), [1.0, 2.0, 3.0])
    assert jm.permutation(["gripper", "c", "a", "b"]) is jm.permutation(("gripper", "c", "a", "b"))  # cached
    assert jm.extras(["gripper", "c", "a", "b"]) == ["gripper"]
    cases = [
        (jm, ["a", "b"], [1, 2], "missing_joint", ["c"], "lacks joints ['c']"),
        (jm, ["a", "a", "b", "c"], [1, 1, 2, 3], "duplicate_joint", [], "names ['a'] more than once"),
        (jm, ["a", "b", "c"], [1, 2], "wrong_length", [], "3 names but 2 values"),
        (jm, "abc", [1, 2, 3], "wrong_length", [], "a string"),
        (JointMap(["a", "b", "c"], extra="refuse", what="command"), ["a", "b", "x"], [1, 2, 3], "unknown_joint", ["c"],
         "names unknown joints ['x'], lacks joints ['c']"),
    ]
    for m, names, values, reason, missing, text in cases:
        with pytest.raises(JointMapError) as e:
            m.take(names, values)
        assert e.value.reason == reason and e.value.missing == missing and text in str(e.value), str(e.value)
        assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    with pytest.raises(ValueError, match="distinct"):
        JointMap(["a", "a"])


class _Node:
    def __init__(self, **overrides):
        self.overrides = overrides

    def declare_parameter(self, name, default):
        return self.overrides.get(name, default)


@pytest.mark.parametrize("value,kind,expected", [
    ("[0.1, 0.2]", floats, [0.1, 0.2]), (2, floats, 2.0), ([1, 2.5], floats, [1.0, 2.5]), ("1e3", float, 1000.0),
    ("true", bool, True), ("off", bool, False), ("7", int, 7), (3, float, 3.0), ("[a, b]", list, ["a", "b"]),
    ("'123'", str, "'123'"), (123, str, "123"), (None, float, None),
])
def test_param_types_strings_like_the_command_line(value, kind, expected):
    got = param(_Node(x=value), "x", None, kind)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value,kind,match", [
    ("yes please", bool, "not a valid bool"), (1, bool, "not a valid bool"), ("[1, a]", floats, "mixes types"),
    (2.5, int, "not a valid integer"), ("fast", float, "not a valid number"), ("a, b", list, "not a valid list"),
    ([1, 2], str, "not a valid string"),
])
def test_param_errors_name_the_parameter(value, kind, match):
    with pytest.raises(NodeStartError, match=match) as e:
        param(_Node(x=value), "x", None, kind)
    assert str(e.value).startswith("parameter x=")


def test_rate_limited_log_bounds_lines_and_counts_the_rest(caplog):
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("test.reject"), period_s=1.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.reject"):
        for k in range(1000):  # 1000 bad inputs of two kinds over 2 s
            now[0] = k * 0.002
            log("non_finite" if k % 2 else "unknown_joint", "rejected %d", k)
        log.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 * 2 + 2  # two per reason (t = 0 and 1 s), then the flush
    assert all(ln.startswith(("[non_finite]", "[unknown_joint]")) for ln in lines)
    assert "(+249 more 'unknown_joint' in the last 1.0 s, not logged)" in lines[2] + lines[3]
    assert log.counts == {"unknown_joint": 500, "non_finite": 500}
    assert all("249 more not logged (500 in all)" in ln for ln in lines[-2:])
