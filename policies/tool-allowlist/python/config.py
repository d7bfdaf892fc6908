"""The policy configuration (config.rs), read with the rules of the Rust version's
serde derive: unknown and repeated fields are errors, every field has a default except
a pin's `tool` and `sha256`, types are strict (no `1` for `true`), `null` is only
accepted for `allowed_hosts`, and, as serde allows, a struct may also be written as an
array of its fields in order and `default` as `{"allow": null}`."""

from dataclasses import dataclass, field

import portcullis_policy as p

#: Paths an argument must not point at (globs over the normalized, lower-cased path).
SENSITIVE_PATHS = (
    "/etc", "/etc/*", "/root", "/root/*", "/proc/*", "/sys/*", "/dev/*", "/boot/*",
    "/var/run/secrets/*", "/run/secrets/*", "*/.ssh", "*/.ssh/*", "*/.aws/*",
    "*/.gnupg/*", "*/.kube/*", "*/.docker/config.json", "*/.config/gcloud/*",
    "*/.netrc", "*/.git-credentials", "*/.pgpass", "*/.bash_history", "*/id_rsa*",
    "*/id_ecdsa*", "*/id_ed25519*", "c:/windows/*", "*/system32/*",
)

_HEX_DIGITS = frozenset("0123456789abcdef")


class ConfigError(Exception):
    """The configuration does not have the expected shape."""


@dataclass(frozen=True)
class ToolRule:
    """A tool selector: globs over the MCP server and the tool name."""

    server: str = "*"
    tool: str = "*"


@dataclass(frozen=True)
class Pin:
    """A pinned tool description: its lowercase hex SHA-256."""

    server: str
    tool: str
    sha256: str


@dataclass
class Config:
    """The configuration; `{}` is fail-closed: every tool is denied until allowed."""

    default_allow: bool = False
    allow: list = field(default_factory=list)
    deny: list = field(default_factory=list)
    pins: list = field(default_factory=list)
    require_pins: bool = False
    check_schema: bool = True
    argument_checks: bool = True
    strict_shell: bool = False
    allowed_hosts: list = None
    sensitive_paths: list = field(default_factory=lambda: list(SENSITIVE_PATHS))


_CONFIG_FIELDS = ("default", "allow", "deny", "pins", "require_pins", "check_schema",
                  "argument_checks", "strict_shell", "allowed_hosts", "sensitive_paths")


def load():
    """The operator's configuration, normalized (lower-case hashes, hosts and paths);
    an invalid one ends the evaluation as an error naming the problem."""
    try:
        value = p.parse_json(p.raw_config(), duplicate_keys="error")
        config = _config(value)
    except (p.JSONError, ConfigError) as e:
        p.fail(f"invalid policy configuration: {e}")
    for i, pin in enumerate(config.pins):
        if len(pin.sha256) != 64 or not set(pin.sha256) <= _HEX_DIGITS:
            p.fail(f"pins[{i}].sha256 must be 64 hex digits "
                   "(the SHA-256 of the tool description)")
    return config


def _config(value):
    fields = _struct(value, "Config", _CONFIG_FIELDS, required=())
    config = Config()
    if "default" in fields:
        config.default_allow = _default_action(fields["default"]) == "allow"
    for name in ("allow", "deny"):
        if name in fields:
            setattr(config, name, [_rule(v) for v in _sequence(fields[name])])
    if "pins" in fields:
        config.pins = [_pin(v) for v in _sequence(fields["pins"])]
    for name in ("require_pins", "check_schema", "argument_checks", "strict_shell"):
        if name in fields:
            setattr(config, name, _boolean(fields[name]))
    if fields.get("allowed_hosts") is not None:
        config.allowed_hosts = [p.ascii_lower(_string(h))
                                for h in _sequence(fields["allowed_hosts"])]
    if "sensitive_paths" in fields:
        config.sensitive_paths = [p.ascii_lower(_string(s))
                                  for s in _sequence(fields["sensitive_paths"])]
    return config


def _rule(value):
    fields = _struct(value, "ToolRule", ("server", "tool"), required=())
    return ToolRule(**{name: _string(v) for name, v in fields.items()})


def _pin(value):
    fields = _struct(value, "Pin", ("server", "tool", "sha256"), required=("tool", "sha256"))
    return Pin(server=_string(fields.get("server", "*")), tool=_string(fields["tool"]),
               sha256=p.ascii_lower(_string(fields["sha256"])))


def _struct(value, name, names, required):
    """The fields of a struct written as an object, or as an array of its fields in
    order (which may leave out the optional fields after the last required one)."""
    if isinstance(value, list):
        shortest = max((names.index(r) + 1 for r in required), default=0)
        if not shortest <= len(value) <= len(names):
            raise ConfigError(f"invalid length {len(value)}, expected struct {name} "
                              f"with {len(names)} elements")
        return dict(zip(names, value))
    if not isinstance(value, dict):
        raise ConfigError(f"invalid type: {_kind(value)}, expected struct {name}")
    for key in value:
        if key not in names:
            expected = ", ".join(f"`{n}`" for n in names)
            raise ConfigError(f"unknown field `{key}`, expected one of {expected}")
    for key in required:
        if key not in value:
            raise ConfigError(f"missing field `{key}`")
    return value


def _default_action(value):
    """`"deny"` or `"allow"`, also in serde's `{"allow": null}` form."""
    if isinstance(value, dict) and len(value) == 1:
        (value, unit), = value.items()
        if unit is not None:
            raise ConfigError(f"invalid type: {_kind(unit)}, expected unit")
    if not isinstance(value, str):
        raise ConfigError(f"invalid type: {_kind(value)}, expected enum DefaultAction")
    if value not in ("deny", "allow"):
        raise ConfigError(f"unknown variant `{value}`, expected `deny` or `allow`")
    return value


def _sequence(value):
    if not isinstance(value, list):
        raise ConfigError(f"invalid type: {_kind(value)}, expected a sequence")
    return value


def _string(value):
    if not isinstance(value, str):
        raise ConfigError(f"invalid type: {_kind(value)}, expected a string")
    return value


def _boolean(value):
    if not isinstance(value, bool):
        raise ConfigError(f"invalid type: {_kind(value)}, expected a boolean")
    return value


def _kind(value):
    """serde's name for the JSON type of `value`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "sequence" if isinstance(value, list) else "map"
