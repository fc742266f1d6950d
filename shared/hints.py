"""Near-miss hints: names are case-sensitive, so the likeliest mistake is case; then typos."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(wrong: str, candidates: Iterable[str]) -> str | None:
    """The candidate the user most likely meant, or None."""
    options = list(candidates)
    folded = [c for c in options if c.casefold() == wrong.casefold()]
    if folded:
        return folded[0]
    close = difflib.get_close_matches(wrong, options, n=1, cutoff=0.75)
    if close:
        return close[0]
    return _longest_prefix(wrong, options)


def _longest_prefix(wrong: str, options: list[str], shortest: int = 4) -> str | None:
    """A candidate the wrong name starts with (``Static IP Adress`` → ``Static IP``): an extra word
    or a mangled suffix, which the similarity ratio misses when the tail is long."""
    folded = wrong.casefold()
    prefixes = [c for c in options if len(c) >= shortest and folded.startswith(c.casefold())]
    return max(prefixes, key=len) if prefixes else None


def hint_for(wrong: str, candidates: Iterable[str]) -> str | None:
    """``names are case-sensitive — did you mean 'User'?`` style hint text."""
    match = did_you_mean(wrong, candidates)
    if match is None:
        return None
    if match.casefold() == wrong.casefold():
        return f"names are case-sensitive; did you mean {match!r}?"
    return f"did you mean {match!r}?"
