"""Substitution syntax and evaluation (ros2/launch grammar.lark semantics)."""

from __future__ import annotations

import pytest

from robot_rl.launch_runner import LaunchError
from robot_rl.launch_runner.frontend import _parse_cmdline
from robot_rl.launch_runner.substitutions import Sub, Text, evaluate, parse_substitution


class Ctx:
    def __init__(self, configs=None, env=None, current_file="/a/b/c.launch.xml"):
        self.configs = configs or {}
        self.env = env or {}
        self.current_file = current_file

    def find_pkg_share(self, package):
        return f"/share/{package}"

    def find_pkg_prefix(self, package):
        return f"/prefix/{package}"


def ev(text, **kw):
    return evaluate(parse_substitution(text), Ctx(**kw))


def test_parse_structure():
    assert parse_substitution("plain text") == (Text("plain text"),)
    assert parse_substitution("") == (Text(""),)
    assert parse_substitution("a$(var x)b") == (Text("a"), Sub("var", ((Text("x"),),)), Text("b"))
    assert parse_substitution("$(env HOME /tmp)") == (Sub("env", ((Text("HOME"),), (Text("/tmp"),))),)
    nested = parse_substitution("$(var $(var n)_x)")
    assert nested == (Sub("var", ((Sub("var", ((Text("n"),),)), Text("_x")),)),)
    quoted = parse_substitution("$(eval '$(var a) + 1')")
    assert quoted == (Sub("eval", ((Sub("var", ((Text("a"),),)), Text(" + 1")),)),)


@pytest.mark.parametrize("text,expected", [
    ("$(var robot)", "ur5"),
    ("/$(var robot)/cmd", "/ur5/cmd"),
    ("$(var missing fallback)", "fallback"),
    ("$(env LT_HOME)", "/home/x"),
    ("$(env LT_NOPE dflt)", "dflt"),
    ("$(optenv LT_NOPE)", ""),
    ("$(optenv LT_HOME nope)", "/home/x"),
    ("$(find-pkg-share robot_rl)/launch", "/share/robot_rl/launch"),
    ("$(find-pkg-prefix robot_rl)", "/prefix/robot_rl"),
    ("$(dirname)/x.yaml", "/a/b/x.yaml"),
    ("$(filename)", "/a/b/c.launch.xml"),
    ("$(eval '2 * 25')", "50"),
    ("$(eval 'sqrt(16)')", "4.0"),
    ("$(eval 'math.pi > 3')", "True"),
    ("$(eval '\\'$(var robot)\\' == \\'ur5\\'')", "True"),
    ('$(eval "\'$(var robot)\' + \'_x\'")', "ur5_x"),
    ("$(not true)", "false"),
    ("$(not 0)", "true"),
    ("$(and true 1)", "true"),
    ("$(or false 0)", "false"),
    ("$(any false true 0)", "true"),
    ("$(all true yes on)", "true"),
    ("$(equals $(var robot) ur5)", "true"),
    ("$(equals 1.0 1)", "true"),
    ("$(equals True 1)", "true"),
    ("$(notequals a b)", "true"),
    ("cost \\$5 \\(x\\)", "cost $5 (x)"),
    ("it's \"quoted\"", "it's \"quoted\""),
])
def test_evaluate(text, expected):
    assert ev(text, configs={"robot": "ur5"}, env={"LT_HOME": "/home/x"}) == expected


@pytest.mark.parametrize("text,needle", [
    ("$(var robot", "unterminated substitution"),
    ("$(var  robot)", "empty substitution argument"),
    ("$(unknown x)", "unknown substitution '$(unknown ...)'"),
    ("$(command ls)", "not supported by robot-rl launch"),
    ("$(var)", "takes 1 to 2 argument(s), got 0"),
    ("$(dirname x)", "takes 0 argument(s), got 1"),
    ("price: $5", "'$' must start a substitution"),
    ("$(eval 'unterminated)", "unterminated quoted string"),
    ("$(var a(b)", "unescaped '('"),
])
def test_syntax_errors(text, needle):
    with pytest.raises(LaunchError) as e:
        parse_substitution(text, where="f.xml:3 <node>")
    assert needle in str(e.value)
    assert str(e.value).startswith("f.xml:3 <node>: ")


@pytest.mark.parametrize("text,needle", [
    ("$(var nope)", "launch configuration 'nope' does not exist"),
    ("$(env LT_DEFINITELY_UNSET)", "environment variable 'LT_DEFINITELY_UNSET' does not exist"),
    ("$(not maybe)", "must be a boolean"),
    ("$(eval '1/0')", "ZeroDivisionError"),
])
def test_evaluation_errors(text, needle):
    with pytest.raises(LaunchError) as e:
        ev(text)
    assert needle in str(e.value)


@pytest.mark.parametrize("cmdline,configs,expected", [
    ("--a 1 --b", {}, ["--a", "1", "--b"]),
    ("--name 'two words' x", {}, ["--name", "two words", "x"]),
    ("--path $(var p)/file --n $(var n)", {"p": "/with space", "n": "3"}, ["--path", "/with space/file", "--n", "3"]),
    ("$(var a) $(var b)", {"a": "1", "b": "2"}, ["1", "2"]),
    ("$(var a)$(var b)", {"a": "1", "b": "2"}, ["12"]),
    ("pre$(var a) mid post$(var b)suf", {"a": "A", "b": "B"}, ["preA", "mid", "postBsuf"]),
    ("$(var a)", {"a": "x y"}, ["x y"]),  # a substitution result is never split
])
def test_args_splitting(cmdline, configs, expected):
    args = _parse_cmdline(cmdline, "w")
    assert [evaluate(a, Ctx(configs=configs)) for a in args] == expected
