"""One settings pattern for the long-running commands (``kvscale-exporter``, ``kvscale-adapter``).

A command's settings are a frozen dataclass whose fields are declared with :func:`setting`
(what it does, its metavar, whether it repeats or is secret). From that one declaration
come the argparse flag (``--some-name``), the environment twin (``<PREFIX>SOME_NAME``), the
YAML key of ``--config FILE`` (``some_name`` or ``some-name``), and the help text.
Precedence: built-in default < ``--config`` file < environment < flag. Every command also
takes the policy (``--policy FILE`` / ``KVSCALE_POLICY``; ``exporter.contract.policy``).

Errors are :class:`SettingsError` naming the field and where the value came from; the
dataclass's own validation raises it with ``field=`` set and the loader adds the origin.
A secret (:class:`Secret`) is never printed: no default in ``--help``, no value in an
error, ``***`` in repr and str (so in logs); code that needs it calls ``reveal()``.
A ``<PREFIX>*`` environment variable that names no setting is a startup error: a
misspelled twin would otherwise be silently ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from exporter.contract.policy import ENV_NAME as POLICY_ENV
from exporter.contract.policy import FLAG_HELP as POLICY_HELP
from exporter.contract.policy import Policy, PolicyError, locate, read, read_yaml

T = TypeVar("T")

# KVSCALE_* names that other commands (or the test suite) read: not misspellings of this command's.
_OTHER_PREFIXES = ("KVSCALE_ADAPTER_", "KVSCALE_ALERTS_", "KVSCALE_DASHBOARDS_", "KVSCALE_DEMO_")
_OTHER_NAMES = frozenset({POLICY_ENV, "KVSCALE_PROMETHEUS_URL", "KVSCALE_TEST", "KVSCALE_UPDATE_GOLDEN"})
# What Kubernetes injects for each Service of the namespace (enableServiceLinks): a Service named
# kvscale-adapter gives KVSCALE_ADAPTER_SERVICE_HOST, KVSCALE_ADAPTER_PORT_443_TCP and so on.
# (A misspelled twin of that shape, ending in _PORT, is let through: the price of not refusing them.)
_SERVICE_LINK = re.compile(r"^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?"
                           r"|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


class SettingsError(ValueError):
    """Invalid configuration; the message says which setting, from where, and why (never a secret)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class Secret:
    """A value that must never be printed; ``reveal()`` is the one way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


def setting(default: Any, doc: str, *, metavar: str = "", repeat: bool = False, separator: str = r"\s*,\s*",
            secret: bool = False) -> Any:
    """A documented setting; lists come from a repeated flag, or one string split on ``separator``."""
    meta = {"doc": doc, "metavar": metavar, "repeat": repeat, "separator": separator, "secret": secret}
    if isinstance(default, list):
        items = list(default)
        return field(default_factory=lambda: list(items), metadata=meta)
    return field(default=default, metadata=meta)


def policy_field() -> Any:
    """The command's policy; filled from ``--policy`` / KVSCALE_POLICY, not a flag of its own."""
    return field(default_factory=Policy, metadata={"policy": True})


@dataclass(frozen=True)
class Command(Generic[T]):
    """How one command's settings are read."""

    prog: str
    description: str
    env_prefix: str
    settings: type[T]
    env_aliases: Mapping[str, str] = field(default_factory=dict)  # another env name -> field, below the twin
    deprecated_policy: tuple[str, str] | None = None  # (flag, env) of an older spelling of --policy
    policy_keys: tuple[str, ...] = ("policy",)  # --config keys holding a policy mapping

    def env_name(self, name: str) -> str:
        return self.env_prefix + name.upper()

    def fields(self) -> dict[str, dataclasses.Field[Any]]:
        fields = dataclasses.fields(self.settings)  # type: ignore[arg-type]
        return {f.name: f for f in fields if "doc" in f.metadata}


def _default(f: dataclasses.Field[Any]) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "none"
    return "none" if value is None or value == "" else str(value)


def parser(cmd: Command[Any]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=cmd.prog, description=f"{cmd.description} Every flag has an environment twin ({cmd.env_prefix}<FLAG>, "
                                   "dashes as underscores) and a --config key; precedence: flag > environment > "
                                   "--config file > default.")
    p.add_argument("--config", metavar="FILE", help=f"YAML file of settings (keys as the flags). "
                                                     f"env: {cmd.env_prefix}CONFIG")
    p.add_argument("--policy", metavar="FILE", help=POLICY_HELP)
    if cmd.deprecated_policy:
        flag, env = cmd.deprecated_policy
        p.add_argument(flag, dest="deprecated_policy", metavar="FILE",
                       help=f"Deprecated spelling of --policy (env {env}: of {POLICY_ENV}).")
    hints = typing.get_type_hints(cmd.settings)
    for name, f in cmd.fields().items():
        shown = "" if f.metadata["secret"] else f"default: {_shown(_default(f))}; "
        help_ = f"{f.metadata['doc']} ({shown}env: {cmd.env_name(name)})".replace("%", "%%")
        flag = "--" + name.replace("_", "-")
        choices = typing.get_args(hints[name]) if typing.get_origin(hints[name]) is Literal else None
        if hints[name] is bool:
            p.add_argument(flag, action="store_true", default=None, help=help_)
        elif f.metadata["repeat"]:
            p.add_argument(flag, metavar=f.metadata["metavar"] or None, action="append", default=None, help=help_)
        else:
            p.add_argument(flag, metavar=f.metadata["metavar"] or None, choices=choices, default=None, help=help_)
    return p


def convert(hint: Any, raw: Any, separator: str = r"\s*,\s*") -> Any:
    """A raw value (YAML scalar or list, env string, flag string) as the field's type; ValueError if not."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        return None if raw is None or raw == "" else convert(inner, raw, separator)
    if origin in (list, tuple):
        items = raw if isinstance(raw, (list, tuple)) else re.split(separator, str(raw).strip())
        converted = [convert(args[0], item, separator) for item in items if item != ""]
        return converted if origin is list else tuple(converted)
    if origin is Literal:
        if raw not in args:
            raise ValueError(f"not one of {', '.join(map(str, args))}")
        return raw
    if isinstance(raw, (dict, list)) or raw is None:
        raise ValueError(f"expected a single {getattr(hint, '__name__', hint)}")
    if hint is bool:
        text = str(raw).strip().lower()
        if text not in _TRUE + _FALSE:
            raise ValueError("expected true or false")
        return text in _TRUE
    if isinstance(raw, bool):
        if hint is str:  # YAML 1.1 turns unquoted on/off/yes/no into booleans
            raise ValueError(f"YAML reads an unquoted on/off/yes/no as {str(raw).lower()}: quote it ('off')")
        raise ValueError(f"expected a {hint.__name__}, not true/false")
    if hint is int:
        number = float(raw)
        if not number.is_integer():
            raise ValueError("expected a whole number")
        return int(number)
    if hint is float:
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    return hint(str(raw))  # str, Path, Secret


def _yaml_mapping(path: Path, origin: str) -> dict[str, Any]:
    try:
        data = read_yaml(path)
    except ValueError as exc:
        raise SettingsError(f"{origin}: cannot read: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{origin}: the top level must be a mapping of settings")
    return data


def _check_environment(cmd: Command[Any], environ: Mapping[str, str]) -> None:
    known = {cmd.env_name(n) for n in cmd.fields()} | {cmd.env_prefix + "CONFIG"}
    if cmd.deprecated_policy:
        known.add(cmd.deprecated_policy[1])
    others = tuple(p for p in _OTHER_PREFIXES if p != cmd.env_prefix)
    for name in sorted(environ):
        if name in known | _OTHER_NAMES or name.startswith(others) or _SERVICE_LINK.match(name):
            continue
        if name.startswith(cmd.env_prefix):
            close = difflib.get_close_matches(name, sorted(known), 1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(f"environment variable {name} is not a {cmd.prog} setting{hint}")


def _policy(cmd: Command[Any], args: argparse.Namespace, environ: Mapping[str, str],
            embedded: list[tuple[str, Any]]) -> Policy:
    """Defaults, then the --config file's policy mapping, then the policy file's keys on top."""
    old_flag, old_env = cmd.deprecated_policy or ("", "")
    found = locate(args.policy, environ, prog=cmd.prog, old_flag=(old_flag, getattr(args, "deprecated_policy", None)),
                   old_env=old_env)
    policy = Policy()
    try:
        for origin, data in embedded:
            if not isinstance(data, dict):
                raise PolicyError(f"{origin}: expected a mapping of policy keys")
            policy = policy.replace(data, origin)
        if found:
            path, origin = found
            policy = policy.replace(read(path, origin), origin)
    except PolicyError as exc:
        raise SettingsError(str(exc)) from exc
    return policy


def load(cmd: Command[T], argv: Sequence[str] | None, environ: Mapping[str, str]) -> T:
    """The command's settings from argv, environment and files; SettingsError if anything is wrong."""
    args = parser(cmd).parse_args(argv)
    _check_environment(cmd, environ)
    fields = cmd.fields()
    layers: list[tuple[str, str, Any]] = []  # (origin, key, raw), later wins
    embedded: list[tuple[str, Any]] = []
    config = args.config or environ.get(cmd.env_prefix + "CONFIG")
    if config:
        for key, raw in _yaml_mapping(Path(config), f"config file {config}").items():
            if key in cmd.policy_keys:
                embedded.append((f"config file {config}, key {key}", raw))
            else:
                layers.append((f"config file {config}", str(key), raw))
    layers += [(f"environment variable {env}", name, environ[env]) for env, name in cmd.env_aliases.items()
               if env in environ]
    layers += [(f"environment variable {cmd.env_name(n)}", n, environ[cmd.env_name(n)]) for n in fields
               if cmd.env_name(n) in environ]
    layers += [("flag --" + n.replace("_", "-"), n, getattr(args, n)) for n in fields if getattr(args, n) is not None]
    hints = typing.get_type_hints(cmd.settings)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for origin, key, raw in layers:
        name = key.replace("-", "_")
        if name not in fields:
            close = difflib.get_close_matches(name, sorted(fields), 1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(fields))})"
            raise SettingsError(f"unknown setting {key!r} in {origin}{hint}")
        f = fields[name]
        try:
            values[name] = convert(hints[name], raw, f.metadata["separator"])
        except (TypeError, ValueError) as exc:
            shown = "" if f.metadata["secret"] else f" {raw!r}"
            raise SettingsError(f"{name} ({origin}): invalid value{shown}: {exc}", field=name) from exc
        origins[name] = origin
    policy = _policy(cmd, args, environ, embedded)
    try:
        return cmd.settings(**values, policy=policy)  # type: ignore[call-arg]  # T is a settings dataclass
    except SettingsError as exc:
        where = f" (from {origins[exc.field]})" if exc.field in origins else ""
        raise SettingsError(f"{exc}{where}", field=exc.field) from exc
