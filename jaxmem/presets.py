"""Choosing a preset, overriding its seed count or any of its fields (``--set FIELD=VALUE``),
and rebuilding a config from its ``summary.json`` record, with errors that name the bad value."""
from __future__ import annotations

import ast
import dataclasses
import types
import typing


def pick(presets: dict, name: str):
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(presets)}")
    return presets[name]


def with_seeds(config, seeds: int | None, field: str = "data_seeds"):
    """``config`` with ``field`` set to ``seeds`` (``--seeds``), unchanged when None."""
    if seeds is None:
        return config
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds!r}")
    head, dot, rest = field.partition(".")
    if dot:  # a field of a nested config: "model.seeds"
        return dataclasses.replace(config, **{head: with_seeds(getattr(config, head), seeds, rest)})
    return dataclasses.replace(config, **{field: int(seeds)})


# ---------------------------------------------------------------- --set FIELD=VALUE


def parse_assignments(items) -> dict[str, str]:
    """``["steps=100", "T=3,10"]`` (``--set``, repeated) -> ``{"steps": "100", "T": "3,10"}``."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE")
        name = name.strip()
        if name in out:
            raise ValueError(f"--set {name}: given twice")
        out[name] = value.strip()
    return out


def override(config, assignments: dict[str, str] | None, names: dict[int, str] | None = None):
    """``config`` with each ``FIELD: "VALUE"`` of ``assignments`` parsed to the field's
    type and set (``dataclasses.replace``, so the dataclass's own checks run).

    ``config`` is a frozen dataclass or a tuple of them (``(TrainConfig, Sweep)``): a name
    is looked up in every member, and one that is in several is an error. ``names`` gives
    a name to members that are not dataclasses (``{2: "hidden_sizes"}``), set as a whole.
    ``a.b`` sets field ``b`` of a dataclass-valued field ``a``. Values: ``int``, ``float``,
    ``bool`` (``true``/``false``), ``str``, ``none``, and tuples as ``3,10,30`` or
    ``(3,10,30)`` (nested tuples as Python literals). Unknown names, values that do not
    parse, and values the dataclass rejects are ``ValueError``s naming them."""
    if not assignments:
        return config
    if not isinstance(config, tuple) or dataclasses.is_dataclass(config):
        return _override_one(config, dict(assignments))
    names = names or {}
    members = list(config)
    owner: dict[str, list[int]] = {}
    for key in assignments:
        head = key.split(".", 1)[0]
        hits = [i for i, m in enumerate(members)
                if (dataclasses.is_dataclass(m) and head in _field_names(m)) or names.get(i) == head]
        if not hits:
            raise ValueError(f"unknown field {key!r} for --set; known: {', '.join(known_fields(config, names))}")
        if len(hits) > 1:
            raise ValueError(f"--set {key}: ambiguous, a field of " +
                             " and ".join(type(members[i]).__name__ for i in hits))
        owner.setdefault(hits[0], []).append(key)
    for i, keys in owner.items():
        if names.get(i) is not None and not dataclasses.is_dataclass(members[i]):
            (key,) = keys
            members[i] = _parse(key, assignments[key], members[i], None)
        else:
            members[i] = _override_one(members[i], {k: assignments[k] for k in keys})
    return type(config)(members)


def known_fields(config, names: dict[int, str] | None = None) -> list[str]:
    """Every name ``override`` accepts for ``config`` (nested dataclasses as ``a.b``)."""
    members = list(config) if isinstance(config, tuple) and not dataclasses.is_dataclass(config) else [config]
    out = []
    for i, m in enumerate(members):
        if dataclasses.is_dataclass(m):
            for f in dataclasses.fields(m):
                value = getattr(m, f.name)
                out += ([f"{f.name}.{sub}" for sub in known_fields(value)] if dataclasses.is_dataclass(value)
                        else [f.name])
        elif (names or {}).get(i):
            out.append(names[i])
    return out


def _field_names(obj) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


def _override_one(obj, assignments: dict[str, str], prefix: str = ""):
    changes, nested = {}, {}
    for key, text in assignments.items():
        head, dot, rest = key.partition(".")
        if head not in _field_names(obj):
            raise ValueError(f"unknown field {prefix + key!r} for --set; known: "
                             f"{', '.join(prefix + k for k in known_fields(obj))}")
        current = getattr(obj, head)
        if dot:
            if not dataclasses.is_dataclass(current):
                raise ValueError(f"--set {prefix + key}: {prefix + head} is not a config with fields")
            nested.setdefault(head, {})[rest] = text
        elif dataclasses.is_dataclass(current):
            raise ValueError(f"--set {prefix + key}: {prefix + head} is a config; set its fields as "
                             f"{prefix + head}.FIELD (known: {', '.join(known_fields(current))})")
        else:
            changes[head] = _parse(prefix + key, text, current, _hints(type(obj)).get(head))
    for head, sub in nested.items():
        changes[head] = _override_one(getattr(obj, head), sub, prefix=f"{prefix}{head}.")
    try:
        return dataclasses.replace(obj, **changes)
    except (ValueError, TypeError) as err:
        given = ", ".join(f"{prefix}{k}={v}" for k, v in assignments.items() if "." not in k) or \
            ", ".join(f"{prefix}{k}={v}" for k, v in assignments.items())
        raise ValueError(f"--set {given}: {err}") from None


def _hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: fall back on the current values
        return {}


def _union_args(tp) -> tuple:
    if typing.get_origin(tp) in (typing.Union, getattr(types, "UnionType", typing.Union)):
        return typing.get_args(tp)
    return (tp,) if tp is not None else ()


def _parse(key: str, text: str, current, hint):
    """``text`` as a value of the field's type: from its annotation ``hint`` where it
    resolves, else from its ``current`` value."""
    options = [t for t in _union_args(hint) if t is not type(None)]
    allows_none = current is None or type(None) in _union_args(hint)
    if text.lower() in ("none", "null"):
        if allows_none:
            return None
        raise ValueError(f"--set {key}={text}: {key} cannot be None")
    if not options:
        options = [type(current)] if current is not None else []
    elif current is not None and type(current) in options:  # the current value's type first
        options = [type(current)] + [t for t in options if t is not type(current)]
    errors = []
    for tp in options:
        try:
            return _parse_as(text, tp, current)
        except (ValueError, TypeError, SyntaxError) as err:
            errors.append(str(err))
    if not options:
        try:
            return _literal(text)
        except (ValueError, SyntaxError) as err:
            errors.append(str(err))
    names = " or ".join(getattr(t, "__name__", str(t)) for t in options) or "a Python literal"
    raise ValueError(f"--set {key}={text}: cannot read {text!r} as {names}")


def _parse_as(text: str, tp, current):
    origin = typing.get_origin(tp) or tp
    if origin is bool:
        low = text.lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"not a bool: {text!r}")
    if origin is int:
        try:
            return int(text)
        except ValueError:
            value = float(text)  # 1e4
            if not value.is_integer():
                raise
            return int(value)
    if origin is float:
        return float(text)
    if origin is str:
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1]
        return text
    if origin is tuple:
        return _parse_tuple(text, tp, current)
    if origin in (list, dict, set):
        value = _literal(text)
        if not isinstance(value, origin):
            raise ValueError(f"not a {origin.__name__}: {text!r}")
        return value
    raise TypeError(f"no parser for {tp!r}")


def _parse_tuple(text: str, tp, current):
    args = typing.get_args(tp) if typing.get_origin(tp) is tuple else ()
    fixed = None
    if args and args[-1] is Ellipsis:
        element = lambda i: args[0]
    elif args:
        fixed = len(args)
        element = lambda i: args[i] if i < len(args) else None
    else:
        first = type(current[0]) if current else None
        element = lambda i: first
    body = text.strip()
    nested = (any(a is tuple or typing.get_origin(a) is tuple for a in args if a is not Ellipsis)
              or any(isinstance(v, tuple) for v in current or ()))
    if nested:  # a Python literal: "(('adam', 0.0), ('sgd', 0.1))"
        value = _literal(body)
        if not isinstance(value, (tuple, list)):
            raise ValueError(f"not a tuple: {text!r}")
        if value and not isinstance(value[0], (tuple, list)):
            value = (value,)  # "('adam', 0.0)": one element
        return _tuples(value)
    if body[:1] in "([" and body[-1:] in ")]":
        body = body[1:-1]
    parts = [p.strip() for p in body.split(",")]
    if parts[-1] == "":
        parts = parts[:-1]  # "3," and "()"
    if any(p == "" for p in parts):
        raise ValueError(f"empty element in {text!r}")
    if fixed is not None and len(parts) != fixed:
        raise ValueError(f"{text!r} needs {fixed} elements")
    return tuple(_parse_as(p, element(i), None) if element(i) not in (None, typing.Any) else _literal(p)
                 for i, p in enumerate(parts))


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"not a Python literal: {text!r}") from None


def _tuples(value):
    """Lists (from JSON or a literal) as tuples, all the way down."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


# ---------------------------------------------------------------- back from summary.json


def from_record(cls, record: dict):
    """A ``cls`` dataclass rebuilt from its ``dataclasses.asdict`` record as read back from
    JSON (lists as tuples, nested dataclass fields rebuilt); keys that are not fields
    (``overrides``, constants recorded beside them) are left out."""
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in record:
            continue
        value, hint = record[f.name], hints.get(f.name)
        sub = [t for t in _union_args(hint) if dataclasses.is_dataclass(t)]
        if sub and isinstance(value, dict):
            value = from_record(sub[0], value)
        elif isinstance(value, list):
            args = typing.get_args(hint) if typing.get_origin(hint) is tuple else ()
            inner = args[0] if args else None
            if inner is not None and dataclasses.is_dataclass(inner):
                value = tuple(from_record(inner, v) if isinstance(v, dict) else v for v in value)
            else:
                value = _tuples(value)
        kwargs[f.name] = value
    return cls(**kwargs)
