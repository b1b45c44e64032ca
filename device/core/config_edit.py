"""Set keys in a config file's text and keep everything else as it was:
the builder's comments, order, blank lines and other keys.

`rearguard calibrate` writes the measured camera height and pitch this way,
and `config show --set` (the installer's recording defaults) too. The
config is a flat TOML file (`[section]` tables of `key = value` lines, plus
`[[ranging.sensors]]`, which nothing here edits), so a line editor does the
job; tomlkit would too, at the price of a dependency for the few lines here.
Every result is parsed back and validated before it is returned.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from device.core.config import ConfigError, _toml_value, from_dict

_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?$")
_ARRAY_TABLE = re.compile(r"^\s*\[\[")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_-]+)(\s*=\s*)(.*)$")


def _split_comment(rest: str) -> tuple[str, str]:
    """`1.1  # metres` -> ("1.1", "  # metres"): the value is the longest
    prefix TOML reads as one value (a '#' inside a string is no comment)."""
    cuts = [i for i, c in enumerate(rest) if c == "#"] + [len(rest)]
    for i in cuts:
        value = rest[:i].rstrip()
        try:
            tomllib.loads(f"x = {value}")
        except tomllib.TOMLDecodeError:
            continue
        return value, rest[len(value):]
    raise ConfigError(f"cannot edit the value {rest.strip()!r}: write it on one line")


def set_values(text: str, values: dict[str, Any], origin: str = "config") -> str:
    """`text` with each "section.key" in `values` set: the value replaced on
    its line (its comment kept), or a line added at the end of its section,
    or the section added at the end. Raises ConfigError if the result is
    not a valid config."""
    lines = text.splitlines()
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        if not key or "." in key:
            raise ConfigError(f"{dotted!r}: give a key as section.key, e.g. camera.pitch_deg")
        new = _toml_value(value)
        current: str | None = None
        start = end = None  # the section's header line and the line after its last key
        done = False
        for i, line in enumerate(lines):
            if _ARRAY_TABLE.match(line):
                current = None
                continue
            m = _TABLE.match(line)
            if m:
                current = m.group(1)
                if current == section:
                    start = end = i + 1
                continue
            if current != section:
                continue
            k = _KEY.match(line)
            if k and k.group(2) == key:
                _, comment = _split_comment(k.group(4))
                lines[i] = f"{k.group(1)}{key}{k.group(3)}{new}{comment}"
                done = True
                break
            if line.strip():
                end = i + 1
        if done:
            continue
        if start is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines += [f"[{section}]", f"{key} = {new}"]
        else:
            lines.insert(end if end is not None else start, f"{key} = {new}")
    out = "\n".join(lines) + "\n"
    try:
        data = tomllib.loads(out)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{origin}: the edited config is not valid TOML: {err}") from None
    from_dict(data, origin)
    return out


def parse_assignment(spec: str) -> tuple[str, Any]:
    """`camera.pitch_deg=7.5` -> ("camera.pitch_deg", 7.5): the value as TOML
    reads it, or, if it is not a TOML value, as a string (`recording.directory=/x`)."""
    key, sep, raw = spec.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {spec!r}: write KEY=VALUE, e.g. camera.pitch_deg=7.5")
    try:
        value = tomllib.loads(f"x = {raw.strip()}")["x"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value
