"""A JSON Schema subset for tool-call arguments (schema.rs).

Supported keywords: `type` (a name or an array of names: `object`, `array`, `string`,
`number`, `integer`, `boolean`, `null`), `properties`, `required`,
`additionalProperties` (boolean or schema), `enum`, `const`, `minLength`, `maxLength`
(in characters), `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`
(numbers, or draft-4 booleans), `items` (one schema, or an array of schemas for
tuples), `minItems`, `maxItems`, `pattern` (Rust `regex` dialect, unanchored,
evaluated by the host), `allOf`, `anyOf`, `oneOf`, and the boolean schemas `true` /
`false`. Every other keyword is ignored, which accepts what it would have constrained.

Values are those of `portcullis_policy.parse_json`: numbers compare as 64-bit floats
(as `serde_json`'s `as_f64`), and an integral float such as `3.0` is an integer.
"""

import re

import portcullis_policy as p

from rusttext import debug_quote, display_float

#: Violations reported per call, at most.
MAX_ERRORS = 8


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Patterns:
    """The `pattern` keywords of one schema, compiled on first use as one host pattern
    list (so a tool's patterns always make the same, cached list)."""

    def __init__(self, schema):
        """Collect every `pattern` the validator can reach in `schema`."""
        self._list = []
        self._matcher = None
        self._error = None
        _collect_patterns(schema, self._list)

    def is_match(self, pattern, text):
        """Whether `pattern` matches somewhere in `text`; raises `p.PatternError` when
        the host cannot compile the schema's patterns (unsupported syntax or limits)."""
        if pattern not in self._list:
            raise p.PatternError("pattern not collected")
        if self._matcher is None and self._error is None:
            try:
                self._matcher = p.Matcher.compile(self._list)
            except p.PatternError as e:
                self._error = e
        if self._error is not None:
            raise self._error
        index = self._list.index(pattern)
        return any(hit == index for hit, _, _ in self._matcher.find_all(text))


def _collect_patterns(schema, out):
    if not isinstance(schema, dict):
        return
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern not in out:
        out.append(pattern)
    for sub in _subschemas(schema):
        _collect_patterns(sub, out)


def _subschemas(schema):
    """The subschemas the validator descends into."""
    properties = schema.get("properties")
    if isinstance(properties, dict):
        yield from properties.values()
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        yield additional
    if "items" in schema:
        items = schema["items"]
        yield from items if isinstance(items, list) else (items,)
    for keyword in ("allOf", "anyOf", "oneOf"):
        options = schema.get(keyword)
        if isinstance(options, list):
            yield from options


def validate(schema, value, patterns):
    """Validate `value` against `schema`; returns at most MAX_ERRORS violations, each
    naming the JSON path and the keyword, never the offending value."""
    validator = _Validator(patterns)
    validator.check(schema, value, "$")
    return validator.errors


def _number(schema, key):
    """A numeric keyword as a float, or None when absent or not a number."""
    value = schema.get(key)
    return float(value) if _is_number(value) else None


class _Validator:
    def __init__(self, patterns):
        self.patterns = patterns
        self.errors = []

    def fail(self, path, problem):
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{path}: {problem}")

    def full(self):
        return len(self.errors) >= MAX_ERRORS

    def check(self, schema, value, path):
        if schema is False:
            self.fail(path, "not allowed by the schema")
            return
        if not isinstance(schema, dict):
            return
        if "type" in schema and not _type_allows(schema["type"], value):
            self.fail(path, f"expected {_type_list(schema['type'])}, got {type_name(value)}")
            return
        options = schema.get("enum")
        if isinstance(options, list) and not any(json_equal(o, value) for o in options):
            self.fail(path, "value is not one of the allowed values (enum)")
        if "const" in schema and not json_equal(schema["const"], value):
            self.fail(path, "value differs from the required constant (const)")
        if isinstance(value, str):
            self.check_string(schema, value, path)
        elif _is_number(value):
            self.check_number(schema, float(value), path)
        elif isinstance(value, list):
            self.check_array(schema, value, path)
        elif isinstance(value, dict):
            self.check_object(schema, value, path)
        self.check_combinators(schema, value, path)

    def check_string(self, schema, text, path):
        length = float(len(text))
        minimum = _number(schema, "minLength")
        if minimum is not None and length < minimum:
            self.fail(path, f"shorter than minLength {display_float(minimum)}")
        maximum = _number(schema, "maxLength")
        if maximum is not None and length > maximum:
            self.fail(path, f"longer than maxLength {display_float(maximum)}")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                if not self.patterns.is_match(pattern, text):
                    self.fail(path, "does not match the schema pattern")
            except p.PatternError:
                self.fail(path, "schema pattern cannot be evaluated (unsupported syntax or limits)")

    def check_number(self, schema, n, path):
        # Draft 4 spells exclusive bounds as booleans next to minimum/maximum.
        def draft4_exclusive(key):
            return schema.get(key) is True

        minimum = _number(schema, "minimum")
        if minimum is not None and (n < minimum or (draft4_exclusive("exclusiveMinimum")
                                                    and n <= minimum)):
            self.fail(path, f"below minimum {display_float(minimum)}")
        maximum = _number(schema, "maximum")
        if maximum is not None and (n > maximum or (draft4_exclusive("exclusiveMaximum")
                                                    and n >= maximum)):
            self.fail(path, f"above maximum {display_float(maximum)}")
        exclusive_min = _number(schema, "exclusiveMinimum")
        if exclusive_min is not None and n <= exclusive_min:
            self.fail(path, f"not above exclusiveMinimum {display_float(exclusive_min)}")
        exclusive_max = _number(schema, "exclusiveMaximum")
        if exclusive_max is not None and n >= exclusive_max:
            self.fail(path, f"not below exclusiveMaximum {display_float(exclusive_max)}")

    def check_array(self, schema, items, path):
        length = float(len(items))
        minimum = _number(schema, "minItems")
        if minimum is not None and length < minimum:
            self.fail(path, f"fewer than minItems {display_float(minimum)}")
        maximum = _number(schema, "maxItems")
        if maximum is not None and length > maximum:
            self.fail(path, f"more than maxItems {display_float(maximum)}")
        if "items" not in schema:
            return
        item_schema = schema["items"]
        if isinstance(item_schema, list):
            for i, (sub, item) in enumerate(zip(item_schema, items)):
                self.check(sub, item, f"{path}[{i}]")
            return
        for i, item in enumerate(items):
            if self.full():
                return
            self.check(item_schema, item, f"{path}[{i}]")

    def check_object(self, schema, members, path):
        required = schema.get("required")
        for name in required if isinstance(required, list) else ():
            if isinstance(name, str) and name not in members:
                self.fail(path, f"missing required property {quoted(name)}")
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            properties = {}
        has_additional = "additionalProperties" in schema
        additional = schema.get("additionalProperties")
        for key, item in members.items():
            if self.full():
                return
            if key in properties:
                self.check(properties[key], item, child_path(path, key))
            elif additional is False:
                self.fail(path, f"unexpected property {quoted(key)}")
            elif has_additional:
                self.check(additional, item, child_path(path, key))

    def check_combinators(self, schema, value, path):
        all_of = schema.get("allOf")
        for sub in all_of if isinstance(all_of, list) else ():
            self.check(sub, value, path)
        any_of = schema.get("anyOf")
        if isinstance(any_of, list) and not any(self.passes(o, value, path) for o in any_of):
            self.fail(path, "matches none of the anyOf schemas")
        one_of = schema.get("oneOf")
        if isinstance(one_of, list):
            passing = sum(1 for o in one_of if self.passes(o, value, path))
            if passing != 1:
                self.fail(path, f"matches {passing} of the oneOf schemas (exactly 1 required)")

    def passes(self, schema, value, path):
        """Whether `value` satisfies `schema`, without recording the violations."""
        trial = _Validator(self.patterns)
        trial.check(schema, value, path)
        return not trial.errors


def type_name(value):
    """The JSON Schema type of a parsed value (an integral float is an integer)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


_SIMPLE_TYPES = frozenset(("object", "array", "string", "boolean", "null"))


def _type_allows_one(name, value):
    if name == "integer":
        return type_name(value) == "integer"
    if name == "number":
        return _is_number(value)
    if name in _SIMPLE_TYPES:
        return type_name(value) == name
    return True


def _type_allows(types, value):
    """Whether `value` is of the type(s) named; unknown type names allow anything."""
    if isinstance(types, str):
        return _type_allows_one(types, value)
    if isinstance(types, list):
        return any(_type_allows_one(t, value) for t in types if isinstance(t, str))
    return True


def _type_list(types):
    if isinstance(types, list):
        return " or ".join(t for t in types if isinstance(t, str))
    if isinstance(types, str):
        return types
    return "a valid type"


def json_equal(a, b):
    """JSON equality with numbers compared by value (`1` equals `1.0`), and booleans
    never equal to numbers."""
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(k in b and json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, (bool, str)) or a is None:
        return type(a) is type(b) and a == b
    return False


def quoted(name):
    """A property name for messages: quoted as Rust's `{:?}`, cut to 64 characters."""
    return debug_quote(name[:64])


_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def child_path(path, key):
    """`$.name` for identifier-like names, `$["odd name"]` otherwise."""
    return f"{path}.{key}" if _SIMPLE_KEY.fullmatch(key) else f"{path}[{quoted(key)}]"
