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
    return close[0] if close else None


def hint_for(wrong: str, candidates: Iterable[str]) -> str | None:
    """``names are case-sensitive — did you mean 'User'?`` style hint text."""
    match = did_you_mean(wrong, candidates)
    if match is None:
        return None
    if match.casefold() == wrong.casefold():
        return f"names are case-sensitive; did you mean {match!r}?"
    return f"did you mean {match!r}?"
