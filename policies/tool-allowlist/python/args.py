"""Argument checks (args.rs): every string in a call's arguments (nested objects and
arrays included) is checked for path traversal, sensitive paths, shell
metacharacters and URLs to hosts outside the allowlist."""

import re

import portcullis_policy as p

import wildcard
from config import SENSITIVE_PATHS
from rusttext import WHITESPACE_CLASS, trim
from schema import child_path

#: Words in a property name that make its value a command, path or file name
#: (`command`, `shell_cmd`, `filePath`, `target_dir`, `argv`, ...).
COMMAND_WORDS = frozenset((
    "cmd", "cmdline", "command", "commands", "shell", "script", "exec", "execute",
    "path", "paths", "filepath", "file", "files", "filename", "filenames", "dir", "dirs",
    "directory", "folder", "cwd", "program", "binary", "argv", "args",
))

#: Shell metacharacters (command separators, pipes, substitution, redirection).
SHELL_META = (
    (";", "command separator ;"),
    ("&&", "command chaining &&"),
    ("|", "pipe |"),
    ("`", "backtick substitution"),
    ("$(", "command substitution $("),
    (">", "output redirection >"),
    ("\n", "newline"),
    ("\r", "carriage return"),
)

#: Overlong UTF-8 encodings of `.` and `/`, percent-encoded (lower case).
OVERLONG = ("%c0%ae", "%c0%af", "%e0%80%ae")

# Runs of ASCII letters and digits, and the camelCase humps within them.
_KEY_RUN = re.compile(r"[A-Za-z0-9]+")
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# `%XX`, as Rust's `u8::from_str_radix(XX, 16)` reads it (which allows `+X`).
_PERCENT_ESCAPE = re.compile(rb"%(\+[0-9A-Fa-f]|[0-9A-Fa-f]{2})")
# A `..` segment between separators (or the ends of the text).
_SEPARATORS = re.escape("/\\=?&;,")
_DOTDOT = re.compile(rf"(?<![^{_SEPARATORS}])\.\.(?![^{_SEPARATORS}])")
_DOTDOT_IN_COMMAND = re.compile(
    rf"(?<![^{_SEPARATORS}{WHITESPACE_CLASS}])\.\.(?![^{_SEPARATORS}{WHITESPACE_CLASS}])")
# What separates the words of a command-like value.
_WORD_BREAK = re.compile("[" + WHITESPACE_CLASS + re.escape("=;|&<>()\"'`,") + "]")
# A `scheme://` (the longest run of scheme characters before `://`).
_URL_START = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z0-9+.\-]*)://")
# What ends a URL's authority.
_AUTHORITY_END = re.compile("[" + WHITESPACE_CLASS + re.escape("/\\?#\"'<>`") + "]")


class _Rules:
    """The configuration's argument rules, with the globs compiled."""

    def __init__(self, config):
        self.sensitive = SensitivePaths(config.sensitive_paths)
        self.strict_shell = config.strict_shell
        hosts = config.allowed_hosts
        self.allowed_hosts = None if hosts is None else wildcard.compile_globs(tuple(hosts))


def check(arguments, config):
    """What the argument checks find in one call, in order (messages name the JSON
    path only). A generator: the caller stops once it has seen enough."""
    return _walk(arguments, False, "$", _Rules(config))


def _walk(value, command_like, path, rules):
    if isinstance(value, str):
        yield from _check_string(value, command_like, path, rules)
    elif isinstance(value, list):
        # Array items inherit their property's name.
        for i, item in enumerate(value):
            yield from _walk(item, command_like, f"{path}[{i}]", rules)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, is_command_key(key), child_path(path, key), rules)


def _check_string(s, command_like, path, rules):
    if has_traversal(s, command_like):
        yield f"path traversal in argument {path}"
    if reaches_sensitive_path(s, command_like, rules.sensitive):
        yield f"sensitive path in argument {path}"
    if command_like or rules.strict_shell:
        what = shell_metacharacter(s)
        if what:
            yield f"shell metacharacter ({what}) in argument {path}"
    allowed = rules.allowed_hosts
    if allowed is not None and any(not allowed.matches(host) for host in urls_hosts(s)):
        yield f"URL to a host outside allowed_hosts in argument {path}"


def is_command_key(key):
    """Split a property name into lower-case words at anything but ASCII letters and
    digits and at camelCase humps, and look for a command/path word."""
    return any(word.lower() in COMMAND_WORDS
               for run in _KEY_RUN.findall(key)
               for word in _CAMEL_HUMP.split(run))


def percent_decode(s):
    """Decode `%XX` escapes (invalid ones are kept as they are); bytes that do not
    make UTF-8 become U+FFFD, as Rust's `String::from_utf8_lossy`."""
    raw = _PERCENT_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), s.encode("utf-8"))
    return raw.decode("utf-8", "replace")


def decodings(s):
    """The string as given, once and twice percent-decoded (`%2e%2e`, `%252e%252e`)."""
    found = [s]
    while len(found) < 3 and "%" in found[-1]:
        decoded = percent_decode(found[-1])
        if decoded in found:
            break
        found.append(decoded)
    return found


def has_traversal(s, command_like):
    """A `..` path segment next to a separator (`../x`, `a\\..\\b`, `x/..`, `?f=../x`),
    in the string or its percent-decodings, or an overlong-UTF-8 dot. In command-like
    values words are segments too (`cat ../x`); elsewhere prose such as "see ../docs",
    where `..` is glued to a word, is not traversal. `file..txt` and `...` never are."""
    lower = p.ascii_lower(s)
    if any(o in lower for o in OVERLONG):
        return True
    segment = _DOTDOT_IN_COMMAND if command_like else _DOTDOT
    return any(trim(d) == ".." or (("/" in d or "\\" in d) and segment.search(d))
               for d in decodings(s))


def normalize_path(path):
    """Normalize a path for the sensitive-path globs: lower case, `/` separators, no
    `file://` prefix, `~` and `$HOME` as `/~`, no empty or `.` segments."""
    s = p.ascii_lower(trim(path).strip("\"'")).replace("\\", "/")
    if s.startswith("file://"):
        s = s[len("file://"):]
        if s.startswith("localhost"):
            s = s[len("localhost"):]
    for home in ("~", "$home", "${home}"):
        if s == home or s.startswith(home + "/"):
            s = "/~" + s[len(home):]
    # A drive letter (`c:`) only when the second UTF-8 byte is the colon.
    absolute = s.startswith("/") or (len(s) > 1 and s[0].isascii() and s[1] == ":")
    joined = "/".join(seg for seg in s.split("/") if seg and seg != ".")
    return "/" + joined if absolute and ":" not in joined else joined


class SensitivePaths:
    """The `sensitive_paths` globs (normalized, lower case)."""

    def __init__(self, globs):
        self._all = wildcard.compile_globs(tuple(globs))
        self._starred = wildcard.compile_globs(tuple(g for g in globs if g.startswith("*")))

    def contains(self, path):
        """Whether `path` (normalized) matches a sensitive glob; relative paths are also
        tried with a leading `/` against globs that start with `*` (so `.ssh/id_rsa` is
        caught but `docs/etc/x` is not taken for `/etc/x`)."""
        return self._all.matches(path) or (
            not path.startswith("/") and self._starred.matches("/" + path))


# Compile the built-in list while the component is built (componentize-py snapshots
# the imported modules), so evaluations with the default configuration reuse it.
SensitivePaths(SENSITIVE_PATHS)


def reaches_sensitive_path(s, command_like, sensitive):
    """The whole value is a sensitive path; for command/path-like properties, also any
    word of it (`cat /etc/shadow`, `--key=~/.ssh/id_rsa`)."""
    if any(sensitive.contains(normalize_path(d)) for d in decodings(s)):
        return True
    return command_like and any(
        sensitive.contains(normalize_path(w))
        for w in _WORD_BREAK.split(s)
        if "/" in w or "\\" in w or w.startswith("~"))


def shell_metacharacter(s):
    """The first shell metacharacter in `s`, described, or None."""
    return next((what for meta, what in SHELL_META if meta in s), None)


def urls_hosts(s):
    """Hosts of the `scheme://` URLs in `s` (lower case, without user info or port);
    `file://` URLs have no host and are left to the path checks."""
    for start in _URL_START.finditer(s):
        scheme = start.group(1)
        if not scheme or not scheme[0].isalpha() or p.ascii_lower(scheme) == "file":
            continue
        end = _AUTHORITY_END.search(s, start.end())
        yield host_of(s[start.end():end.start() if end else len(s)])


def host_of(authority):
    """The host of a URL authority: after the last `@`, without the port, brackets or
    a trailing dot."""
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    else:
        host = host.partition(":")[0]
    return p.ascii_lower(host.rstrip("."))
