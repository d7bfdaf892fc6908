"""Text rules of the Rust version that Python spells differently: Unicode whitespace
(`char::is_whitespace`, which `str.isspace` does not match), the `{:?}` quoting of
strings and the `{}` display of floats used in finding messages."""

import re
import unicodedata

#: Rust's `char::is_whitespace` (the Unicode White_Space property). Python's
#: `str.isspace` also counts U+001C..U+001F, which Rust does not.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

#: A character class (for `re`) of the same whitespace.
WHITESPACE_CLASS = re.escape(WHITESPACE)


def trim(text):
    """Rust's `str::trim`."""
    return text.strip(WHITESPACE)


# Other_Grapheme_Extend (Unicode 16): with the Mn and Me categories it makes the
# Grapheme_Extend property, which Rust's `{:?}` escapes.
_OTHER_GRAPHEME_EXTEND = (
    (0x09BE, 0x09BE), (0x09D7, 0x09D7), (0x0B3E, 0x0B3E), (0x0B57, 0x0B57),
    (0x0BBE, 0x0BBE), (0x0BD7, 0x0BD7), (0x0CC0, 0x0CC0), (0x0CC2, 0x0CC2),
    (0x0CC7, 0x0CC8), (0x0CCA, 0x0CCB), (0x0CD5, 0x0CD6), (0x0D3E, 0x0D3E),
    (0x0D57, 0x0D57), (0x0DCF, 0x0DCF), (0x0DDF, 0x0DDF), (0x1715, 0x1715),
    (0x1734, 0x1734), (0x1B35, 0x1B35), (0x1B3B, 0x1B3B), (0x1B3D, 0x1B3D),
    (0x1B43, 0x1B44), (0x1BAA, 0x1BAA), (0x1BF2, 0x1BF3), (0x200C, 0x200C),
    (0x302E, 0x302F), (0xA953, 0xA953), (0xA9C0, 0xA9C0), (0xFF9E, 0xFF9F),
    (0x111C0, 0x111C0), (0x11235, 0x11235), (0x1133E, 0x1133E), (0x1134D, 0x1134D),
    (0x11357, 0x11357), (0x113B8, 0x113B8), (0x113C2, 0x113C2), (0x113C5, 0x113C5),
    (0x113C7, 0x113C9), (0x113CF, 0x113CF), (0x114B0, 0x114B0), (0x114BD, 0x114BD),
    (0x115AF, 0x115AF), (0x116B6, 0x116B6), (0x11930, 0x11930), (0x1193D, 0x1193D),
    (0x11F41, 0x11F41), (0x16FF0, 0x16FF1), (0x1D165, 0x1D166), (0x1D16D, 0x1D172),
    (0xE0020, 0xE007F),
)

# Categories Rust does not print as they are (`core::unicode::printable`); a space is
# printed.
_UNPRINTABLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))

_ESCAPES = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"'}


def _escaped(char):
    """How Rust's `{:?}` of a string writes `char`."""
    if char in _ESCAPES:
        return _ESCAPES[char]
    if " " <= char <= "~":
        return char
    code = ord(char)
    category = unicodedata.category(char)
    grapheme_extend = category in ("Mn", "Me") or any(
        low <= code <= high for low, high in _OTHER_GRAPHEME_EXTEND)
    if grapheme_extend or (category in _UNPRINTABLE and char != " "):
        return f"\\u{{{code:x}}}"
    return char


def debug_quote(text):
    """`format!("{text:?}")`: double-quoted, with Rust's escapes."""
    return '"' + "".join(map(_escaped, text)) + '"'


def display_float(value):
    """`format!("{value}")` of an `f64`: the shortest digits that read back as
    `value`, in plain decimal notation (`1`, `0.5`, `1000000000000000000000`)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    sign = "-" if str(value).startswith("-") else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # Where the decimal point falls in `digits` (negative: zeros come first).
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    if not digits:
        return sign + "0"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"
