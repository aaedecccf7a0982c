"""The one loop that reads ``--flag VALUE`` and ``--flag=VALUE`` out of argv words. Pure.

The slice contract (the client's ``-n/-p/-m/--filter``), ``bitfusion-sim`` (``--wait``) and the
magic (its own options among the slice's words) each pick some options out of a command line and
leave the rest; they share this reading and keep their own error wording.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["OptionWord", "option_words"]


@dataclass(frozen=True)
class OptionWord:
    """One step through argv: an option (``flag``, its ``value`` when it takes one: ``None`` when
    the value is missing at the end) or, with ``flag`` None, a word that is no option. ``words``
    are the argv words it took, as written."""

    flag: str | None
    value: str | None
    words: tuple[str, ...]


def option_words(words: Sequence[str], options: Mapping[str, bool]) -> Iterator[OptionWord]:
    """Walk ``words``: a word whose part before ``=`` is in ``options`` is an option; it takes a
    value (``options[flag]`` true) after ``=`` or from the next word. Every other word is yielded
    alone with ``flag`` None."""
    i = 0
    while i < len(words):
        flag, eq, inline = words[i].partition("=")
        if flag not in options:
            yield OptionWord(None, None, (words[i],))
        elif not options[flag]:
            yield OptionWord(flag, None, (words[i],))
        elif eq:
            yield OptionWord(flag, inline, (words[i],))
        elif i + 1 < len(words):
            yield OptionWord(flag, words[i + 1], (words[i], words[i + 1]))
            i += 1
        else:
            yield OptionWord(flag, None, (words[i],))
        i += 1
