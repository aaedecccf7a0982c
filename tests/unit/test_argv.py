"""The one reading of --flag VALUE / --flag=VALUE that the slice, the simulator and the magic share."""

from __future__ import annotations

from bf_jupyter.argv import OptionWord, option_words


def test_options_take_their_value_inline_or_from_the_next_word() -> None:
    words = ["-n", "2", "--filter=a=b", "cmd"]
    assert list(option_words(words, {"-n": True, "--filter": True})) == [
        OptionWord("-n", "2", ("-n", "2")),
        OptionWord("--filter", "a=b", ("--filter=a=b",)),
        OptionWord(None, None, ("cmd",)),
    ]


def test_a_flag_without_value_and_a_missing_value_at_the_end() -> None:
    words = ["--json", "x", "--wait"]
    assert list(option_words(words, {"--json": False, "--wait": True})) == [
        OptionWord("--json", None, ("--json",)),
        OptionWord(None, None, ("x",)),
        OptionWord("--wait", None, ("--wait",)),
    ]
