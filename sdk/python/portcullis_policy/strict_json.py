"""JSON parsing with the rules of the Rust SDK's `serde_json`, so that a Python port of
a Rust policy accepts and refuses exactly the same texts and sees the same values.

Python's `json` module differs from `serde_json` in ways that matter for policies:

* it accepts `NaN`, `Infinity` and `-Infinity`, and turns numbers too large for a
  float (`1e400`) into infinity; `serde_json` refuses all of them;
* it accepts lone UTF-16 surrogate escapes (`"\\ud800"`), which `serde_json` refuses
  (and which could not be passed back to the host in a string anyway);
* it nests as deep as Python's recursion limit allows, while `serde_json` refuses more
  than 127 nested arrays and objects;
* it keeps integers of any size, while `serde_json` keeps those that fit `i64`/`u64`
  and reads larger ones as floats;
* its objects keep the text's key order, while a `serde_json::Value` iterates its keys
  in sorted order (a repeated key keeps its last value in both).

`loads` follows `serde_json`: objects come back as dicts whose keys are sorted, and
`duplicate_keys="error"` refuses a repeated key, as serde's derived structs do (use it
for configuration that a Rust policy reads into a struct).
"""

import json
import math
import re
from itertools import accumulate

__all__ = ["JSONError", "MAX_DEPTH", "loads"]

#: Deepest nesting of arrays and objects `serde_json` accepts (its recursion limit).
MAX_DEPTH = 127

_I64_MIN = -(1 << 63)
_U64_MAX = (1 << 64) - 1

# A JSON string token; what it contains cannot open or close a container.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_DEPTH_CHUNK = 1024
# A `\u` escape of a UTF-16 surrogate (paired or not).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JSONError(ValueError):
    """The text is not JSON by `serde_json`'s rules."""


def loads(text, duplicate_keys="last"):
    """Parse `text` as `serde_json` would. `duplicate_keys` is `"last"` (a repeated
    key keeps its last value, like `serde_json::Value`) or `"error"`. Raises
    `JSONError` for anything `serde_json` refuses."""
    if duplicate_keys not in ("last", "error"):
        raise ValueError("duplicate_keys must be 'last' or 'error'")
    _check_depth(text)
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_int=_integer,
            parse_float=_float,
            object_pairs_hook=_sorted_object if duplicate_keys == "last" else _unique_object,
        )
    except JSONError:
        raise
    except (ValueError, RecursionError) as e:
        raise JSONError(str(e)) from None
    if _SURROGATE_ESCAPE.search(text):
        _check_no_surrogates(value)
    return value


def _check_depth(text):
    """Refuse more than MAX_DEPTH nested containers before Python recurses into them.
    Exact for valid JSON; invalid JSON is refused either way."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = 0
    # In chunks, so that a deeply nested text is refused without reading all of it.
    for start in range(0, len(brackets), _DEPTH_CHUNK):
        chunk = brackets[start:start + _DEPTH_CHUNK]
        levels = list(accumulate(map(_BRACKET_STEP.__getitem__, chunk), initial=depth))
        if max(levels) > MAX_DEPTH:
            raise JSONError("recursion limit exceeded")
        depth = levels[-1]


def _refuse_constant(name):
    raise JSONError(f"{name} is not a JSON number")


def _integer(digits):
    """An integer literal: an int within i64/u64, else a float, as in serde_json."""
    if len(digits) <= 21:
        n = int(digits)
        if _I64_MIN <= n <= _U64_MAX:
            return n
    return _float(digits)


def _float(literal):
    value = float(literal)
    if math.isinf(value):
        raise JSONError("number out of range")
    return value


def _sorted_object(pairs):
    return dict(sorted(dict(pairs).items()))


def _unique_object(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise JSONError(f"duplicate field `{key}`")
        seen[key] = value
    return dict(sorted(seen.items()))


def _check_no_surrogates(value):
    """Refuse strings holding a lone surrogate (from an unpaired `\\u` escape)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise JSONError("lone surrogate in a string escape") from None
    elif isinstance(value, list):
        for item in value:
            _check_no_surrogates(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_no_surrogates(key)
            _check_no_surrogates(item)
