"""A tiny glob matcher (glob.rs): `*` matches any run of characters (including none),
`?` exactly one character; everything else matches itself. Characters are code
points, as Rust's `chars()`.

Globs are translated to regular expressions that cannot backtrack badly: between two
stars, a piece is matched at its leftmost place after the previous one and never
reconsidered (an atomic group), and the last piece must end the text. That gives
the same answers as the Rust matcher's star backtracking, in time linear in the text
for each piece, and lets a list of globs be tried in one call (`GlobSet`).
"""

import re
from functools import lru_cache


def _piece(text):
    return "".join("." if c == "?" else re.escape(c) for c in text)


def translate(pattern):
    """The regular expression (for `fullmatch`, with `re.S`) of a glob."""
    pieces = pattern.split("*")
    if len(pieces) == 1:
        return _piece(pattern)
    first, middle, last = pieces[0], pieces[1:-1], pieces[-1]
    between = "".join(f"(?>.*?{_piece(p)})" for p in middle if p)
    return f"{_piece(first)}{between}.*{_piece(last)}"


class GlobSet:
    """A list of globs, tried at once: `matches(text)` when any matches all of it.
    Make one with `compile_globs`, which reuses the sets already compiled."""

    def __init__(self, patterns):
        alternatives = "|".join(f"(?:{translate(p)})" for p in patterns)
        self._regex = re.compile(alternatives, re.S) if patterns else None

    def matches(self, text):
        return self._regex is not None and self._regex.fullmatch(text) is not None


@lru_cache(maxsize=64)
def compile_globs(patterns):
    """The GlobSet of a tuple of globs."""
    return GlobSet(patterns)


def matches(pattern, text):
    """True when `text` matches the whole of `pattern`."""
    return compile_globs((pattern,)).matches(text)
