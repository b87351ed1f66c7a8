"""jaxnn.app.flags: a command's flags are the fields of a dataclass, each declared once."""

from __future__ import annotations

import argparse
import dataclasses
import typing

import pytest

from jaxnn.app import cli, flags, options
from jaxnn.app.doctor import DoctorOptions
from jaxnn.train.config import REQUIRED, FitConfig, setting


@dataclasses.dataclass(frozen=True)
class _Options:
    run_dir: str = setting(REQUIRED, "where it goes.")
    batch_size: int = setting(128, "examples per step; 100% of them.")
    rate: float = setting(0.5, "a rate.")
    fast: bool = setting(False, "go fast.")
    mode: str = setting("a", "the mode.", choices=("a", "b"))
    note: str | None = setting(None, "an optional note.")
    prefix: str = setting("The ", "a prefix.")
    pairs: tuple[str, ...] = setting((), "KEY=VALUE, repeatable.")


def _parser(defaults=True):
    parser = argparse.ArgumentParser(prog="t")
    flags.add_flags(parser, _Options, defaults=defaults)
    return parser


def test_each_field_is_a_flag_of_its_type():
    args = _parser().parse_args(
        ["--run-dir", "r", "--batch-size", "7", "--rate", "2", "--fast", "--mode", "b",
         "--note", "hi", "--pairs", "a=1", "--pairs", "b=2"]
    )  # fmt: skip
    assert flags.options_from(_Options, args) == _Options(
        run_dir="r", batch_size=7, rate=2.0, fast=True, mode="b", note="hi", pairs=("a=1", "b=2")
    )


def test_a_flag_not_given_takes_the_fields_default():
    parsed = flags.options_from(_Options, _parser().parse_args(["--run-dir", "r", "--no-fast"]))
    assert parsed == _Options(run_dir="r")


@pytest.mark.parametrize(
    "argv", [[], ["--run-dir", "r", "--mode", "c"], ["--run-dir", "r", "--batch-size", "x"]]
)
def test_a_missing_required_flag_a_value_off_its_choices_or_of_another_type_is_refused(argv):
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(argv)
    assert exit_.value.code == 2


def test_without_defaults_the_namespace_holds_exactly_the_flags_given():
    args = _parser(defaults=False).parse_args(["--run-dir", "r", "--batch-size", "128"])
    assert vars(args) == {"run_dir": "r", "batch_size": 128}  # 128 is the default, and given


def test_help_shows_the_text_the_default_and_the_choices():
    text = " ".join(_parser().format_help().split())
    assert "examples per step; 100% of them. (default: 128)" in text
    assert "the mode. (default: a; one of a, b)" in text and "where it goes. (required)" in text
    assert "--fast, --no-fast go fast. (default: False)" in text
    assert "an optional note. " in text and "(default: None)" not in text
    assert "a prefix. (default: 'The ')" in text  # quoted: its space is seen


def test_reuse_copies_a_declaration_and_changes_only_what_it_is_told():
    field = flags.reuse(_Options, "mode")
    original = {f.name: f for f in dataclasses.fields(_Options)}["mode"]
    assert field is not original and field.default == "a"
    assert field.metadata == original.metadata
    changed = flags.reuse(_Options, "mode", default=REQUIRED, help="another text.")
    assert changed.default is REQUIRED and changed.metadata["help"] == "another text."
    assert changed.metadata["choices"] == ("a", "b")


def _commands():
    parser = cli.build_parser()
    return parser._subparsers._group_actions[0].choices


@pytest.mark.parametrize("name", sorted(cli.OPTIONS))
def test_every_option_of_every_command_is_a_flag_with_its_help(name):
    command = _commands()[name]
    by_flag = {opt: action for action in command._actions for opt in action.option_strings}
    for field in dataclasses.fields(cli.OPTIONS[name]):
        action = by_flag[flags.flag_name(field.name)]
        assert action.help.startswith(field.metadata["help"].replace("%", "%%")), field.name


@pytest.mark.parametrize("name", ["train", *sorted(cli.OPTIONS)])
def test_every_commands_help_is_plain_text(name):
    text = _commands()[name].format_help()
    assert "``" not in text and ":class:" not in text and ":func:" not in text


def _declarers():
    return {f.name: cls for cls in (options.RunConfig, FitConfig) for f in dataclasses.fields(cls)}


@pytest.mark.parametrize(
    "cls", [options.EvalOptions, options.PredictOptions, options.SampleOptions, DoctorOptions]
)
def test_a_shared_flag_has_the_type_and_choices_of_its_one_declaration(cls):
    hints, shared = typing.get_type_hints(cls), 0
    for field in dataclasses.fields(cls):
        declarer = _declarers().get(field.name)
        if declarer is None:
            continue
        shared += 1
        declared = typing.get_type_hints(declarer)[field.name]
        assert hints[field.name] in (declared, declared | None), field.name
        declaration = {f.name: f for f in dataclasses.fields(declarer)}[field.name]
        assert field.metadata["choices"] == declaration.metadata["choices"], field.name
    assert shared >= 1


def test_the_doctor_takes_the_train_commands_declarations_of_its_shared_flags():
    doctor = {f.name: f for f in dataclasses.fields(DoctorOptions)}
    train = {f.name: f for f in dataclasses.fields(options.RunConfig)}
    for name in ("model_config", "data_option", "normalize"):
        assert doctor[name].metadata == train[name].metadata
        assert doctor[name].default == train[name].default
