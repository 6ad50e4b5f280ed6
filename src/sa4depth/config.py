"""Load, merge and validate the YAML experiment configuration.

Merge order (later wins), fixed:

    params/base.yaml  <-  params/data/<data>.yaml  <-  params/scale/<scale>.yaml
                      <-  experiment row (params/tables/<table>.yaml, key ``rows.<name>``)
                      <-  extra ``--config`` files  <-  command-line ``key=value`` overrides

``params/base.yaml`` defines every valid key; its default value fixes the key's type.
``params/constraints.yaml`` adds what a default cannot say: ranges, choices, nullability.
An unknown key, a value of the wrong type or out of range raises :class:`ConfigError`
naming the file, the dotted key and (for unknown keys) the closest valid key.

The loader is pure Python + PyYAML so that Snakemake and the report layer can use it
without importing torch.
"""
from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from sa4depth import files as _files

__all__ = [
    "Config",
    "ConfigError",
    "params_dir",
    "load_config",
    "load_yaml",
    "load_row",
    "experiments_file",
    "save_config",
    "parse_override",
    "add_config_args",
    "add_override_args",
    "add_set_alias",
    "overrides_of",
    "config_from_args",
    "apply_overrides",
]


class ConfigError(ValueError):
    """A configuration problem; the message names the file and the key."""


# ----------------------------------------------------------------------------- paths
def params_dir() -> Path:
    """Directory holding base.yaml: $SA4DEPTH_PARAMS, else ./params upwards from cwd, else repo."""
    env = os.environ.get("SA4DEPTH_PARAMS")
    if env:
        p = Path(env)
        if not (p / "base.yaml").is_file():
            raise ConfigError(f"SA4DEPTH_PARAMS={env}: no base.yaml there")
        return p
    here = Path.cwd().resolve()
    for d in [here, *here.parents]:
        if (d / "params" / "base.yaml").is_file():
            return d / "params"
    repo = Path(__file__).resolve().parents[2] / "params"
    if (repo / "base.yaml").is_file():
        return repo
    raise ConfigError("cannot find params/base.yaml (run from the repository or set SA4DEPTH_PARAMS)")


# ----------------------------------------------------------------------------- Config
class Config(dict):
    """A nested dict with attribute access: ``cfg.train.lr`` == ``cfg['train']['lr']``."""

    def __init__(self, data: Mapping | None = None, **kw):
        super().__init__()
        for k, v in dict(data or {}, **kw).items():
            self[k] = _wrap(v)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = _wrap(value)

    def __deepcopy__(self, memo):
        return Config(copy.deepcopy(self.to_dict(), memo))

    def get_path(self, dotted: str, default: Any = KeyError) -> Any:
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is KeyError:
                    raise KeyError(dotted)
                return default
            node = node[part]
        return node

    def to_dict(self) -> dict:
        return _unwrap(self)

    def dump(self) -> str:
        return _files.dump_yaml(self.to_dict(), default_flow_style=None)


def _wrap(v: Any) -> Any:
    if isinstance(v, Config):
        return v
    if isinstance(v, Mapping):
        return Config(v)
    if isinstance(v, list):
        return [_wrap(x) for x in v]
    return v


def _unwrap(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _unwrap(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unwrap(x) for x in v]
    return v


# ----------------------------------------------------------------------------- YAML
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(Exception):
    """A mapping with the same key twice (PyYAML would silently keep the last value)."""

    def __init__(self, key: Any, line: int, first: int):
        super().__init__(f"duplicate key {key!r} at line {line} (first at line {first})")
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """The safe loader (libyaml's C parser when available) that rejects duplicate mapping keys.

    Only construction is Python code, with either parser, so the check costs little. ``<<`` merge
    keys are exempt (overriding a merged key is what they are for)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: the base constructor reports it
                    continue
                if first is not None:
                    raise _DuplicateKey(key, line, first)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path) as f:
            # libyaml's C loader when available (same safe semantics, ~20x faster: the workflow
            # resolves dozens of experiment configs when it builds its DAG)
            data = yaml.load(f, Loader=_UniqueKeyLoader)
    except _DuplicateKey as e:
        raise ConfigError(f"{path}: line {e.line}: duplicate key {e.key!r} (first at line {e.first}; "
                          f"YAML would silently keep only the last one)") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text (UTF-8) file: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _flatten(d: Mapping) -> dict[str, Any]:
    """Nested mapping -> {dotted key: leaf}. Dotted keys inside the YAML are allowed too."""
    return _files.flatten(d, leaf=_is_leaf_mapping)


# Keys whose value is itself a free-form mapping (leaf), not a config section.
_LEAF_MAPPINGS: set[str] = set()


def _is_leaf_mapping(key: str) -> bool:
    return key in _LEAF_MAPPINGS


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


# ----------------------------------------------------------------------------- schema
_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list"}


class _Schema:
    def __init__(self, base: dict, constraints: dict, base_file: Path, cons_file: Path):
        self.defaults = _flatten(base)
        self.base_file = base_file
        self.cons_file = cons_file
        self.cons: dict[str, dict] = {}
        for key, spec in constraints.items():
            if key not in self.defaults:
                raise ConfigError(f"{cons_file}: constraint for unknown key {key!r}")
            if not isinstance(spec, dict):
                raise ConfigError(f"{cons_file}: constraint for {key!r} must be a mapping")
            self.cons[key] = spec
        #: dotted prefixes of the keys (``train``, ``data``...): sections, not settings
        self.sections: set[str] = {k.rsplit(".", 1)[0] for k in self.defaults if "." in k}
        for k in list(self.sections):
            while "." in k:
                k = k.rsplit(".", 1)[0]
                self.sections.add(k)
        #: free-form mappings (``type: dict``) and the entries they may hold (their default's keys)
        self.leaf_mappings: dict[str, list[str]] = {
            k: list(self.defaults[k]) if isinstance(self.defaults[k], dict) else []
            for k, spec in self.cons.items() if spec.get("type") == "dict"}

    def fold(self, key: str, value: Any) -> tuple[str, Any]:
        """``data.roots.kitti = x`` -> ``data.roots = {kitti: x}`` (one entry of a free-form mapping)."""
        if key in self.defaults:
            return key, value
        for m in self.leaf_mappings:
            if key.startswith(m + "."):
                return m, {key[len(m) + 1:]: value}
        return key, value

    def closest(self, key: str) -> str | None:
        m = difflib.get_close_matches(key, list(self.defaults), n=1, cutoff=0.6)
        if not m:  # also try on the last component only
            last = key.split(".")[-1]
            cands = {k.split(".")[-1]: k for k in self.defaults}
            m2 = difflib.get_close_matches(last, list(cands), n=1, cutoff=0.7)
            return cands[m2[0]] if m2 else None
        return m[0]

    def expected_type(self, key: str) -> str:
        spec = self.cons.get(key, {})
        if "type" in spec:
            return spec["type"]
        d = self.defaults[key]
        for t, n in _TYPE_NAMES.items():
            if type(d) is t:
                return n
        if d is None:
            return "any"
        return type(d).__name__

    def check(self, key: str, value: Any, source: str) -> Any:
        """Validate and coerce one value; return the coerced value."""
        if key not in self.defaults:
            if key in self.sections:
                raise ConfigError(f"{source}: {key!r} is a section and must be a mapping "
                                  f"(e.g. {key}: {{{self._example(key)}: ...}}), got {type(value).__name__} {value!r}")
            hint = self.closest(key)
            msg = f"{source}: unknown key {key!r}"
            if hint:
                msg += f" (did you mean {hint!r}?)"
            raise ConfigError(msg)
        spec = self.cons.get(key, {})
        if value is None:
            if self.defaults[key] is None or spec.get("nullable"):
                return None
            raise ConfigError(f"{source}: key {key!r} may not be null")
        t = self.expected_type(key)
        value = _coerce(value, t, key, source)
        if isinstance(value, dict) and self.leaf_mappings.get(key):
            known = self.leaf_mappings[key]
            for sub in value:
                if sub not in known:
                    hint = difflib.get_close_matches(str(sub), known, n=1, cutoff=0.6)
                    raise ConfigError(f"{source}: key {key!r}: unknown entry {sub!r}"
                                      + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                      + f"; known: {', '.join(known)}")
        if "choices" in spec and value not in spec["choices"]:
            raise ConfigError(f"{source}: key {key!r}: {value!r} is not one of {spec['choices']}")
        if "items" in spec and isinstance(value, list):
            for i, v in enumerate(value):
                value[i] = _coerce(v, spec["items"], f"{key}[{i}]", source)
        for bound, op, word in (("min", lambda a, b: a < b, ">="), ("max", lambda a, b: a > b, "<="),
                                ("gt", lambda a, b: a <= b, ">"), ("lt", lambda a, b: a >= b, "<")):
            if bound in spec and isinstance(value, (int, float)) and not isinstance(value, bool):
                if op(value, spec[bound]):
                    raise ConfigError(f"{source}: key {key!r}: {value!r} out of range (must be {word} {spec[bound]})")
        if "min_len" in spec and isinstance(value, list) and len(value) < spec["min_len"]:
            raise ConfigError(f"{source}: key {key!r}: needs at least {spec['min_len']} items")
        if "multiple_of" in spec and isinstance(value, int) and value % spec["multiple_of"]:
            raise ConfigError(f"{source}: key {key!r}: {value} must be a multiple of {spec['multiple_of']}")
        return value

    def _example(self, section: str) -> str:
        return next(k[len(section) + 1:].split(".")[0] for k in self.defaults if k.startswith(section + "."))


def _coerce(value: Any, t: str, key: str, source: str) -> Any:
    bad = ConfigError(f"{source}: key {key!r}: expected {t}, got {type(value).__name__} {value!r}")
    if t == "any":
        return value
    if t == "bool":
        if isinstance(value, bool):
            return value
        raise bad
    if t == "int":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if t == "float":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        raise bad
    if t in ("str", "path"):
        if isinstance(value, str):
            return value
        raise bad
    if t == "list":
        if isinstance(value, list):
            return list(value)
        raise bad
    if t == "dict":
        if isinstance(value, dict):
            return value
        raise bad
    raise ConfigError(f"constraints: key {key!r} has unknown type {t!r}")


def _schema(pdir: Path) -> _Schema:
    base_file = pdir / "base.yaml"
    cons_file = pdir / "constraints.yaml"
    cons = load_yaml(cons_file) if cons_file.is_file() else {}
    # keys whose values are free-form mappings
    _LEAF_MAPPINGS.clear()
    for k, spec in cons.items():
        if isinstance(spec, dict) and spec.get("type") == "dict":
            _LEAF_MAPPINGS.add(k)
    return _Schema(load_yaml(base_file), cons, base_file, cons_file)


# ----------------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple[str, Any]:
    """``train.lr=1e-3`` -> ('train.lr', 0.001). Values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"command line: override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"command line: override {text!r} has an empty key")
    try:
        value = yaml.load(raw, Loader=_UniqueKeyLoader) if raw.strip() != "" else ""
    except _DuplicateKey as e:
        raise ConfigError(f"command line: override {text!r}: duplicate key {e.key!r}") from None
    except yaml.YAMLError:
        value = raw
    # YAML reads 1e-3 as a string (no dot); accept it as a float
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in "e.") and not value.isalpha() else value
        except ValueError:
            pass
    return key, value


# ----------------------------------------------------------------------------- rows
#: keys a row of ``params/experiments.yaml`` may have
EXPERIMENT_ROW_KEYS = frozenset({"set", "inherit"})
#: keys a row of a table file (``params/tables/<table>.yaml``) may have; see :mod:`sa4depth.pipeline`
TABLE_ROW_KEYS = frozenset({"label", "experiment", "set", "inherit", "paper", "run", "cite", "not_implemented",
                            "requires_weights", "eval", "group", "training", "switch", "allowed", "show_config"})


def _is_experiments_file(path: Path) -> bool:
    return experiments_file(path).resolve() == path.resolve()


def _check_rows(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    """The ``rows`` mapping of a table/experiments file, every row's keys checked (naming file and row)."""
    rows = data.get("rows")
    if not isinstance(rows, dict):
        raise ConfigError(f"{path}: no 'rows' mapping")
    exp_file = _is_experiments_file(path)
    if exp_file:
        extra = sorted(map(str, set(data) - {"rows"}))
        if extra:
            raise ConfigError(f"{path}: unknown top-level key(s) {extra} (an experiments file has only 'rows')")
    known = EXPERIMENT_ROW_KEYS if exp_file else TABLE_ROW_KEYS
    for name, entry in rows.items():
        where = f"{path}: row {name!r}"
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a mapping (e.g. {{set: {{...}}}}), "
                              f"got {type(entry).__name__} {entry!r}")
        unknown = sorted(map(str, set(entry) - known))
        if unknown:
            hints = [h for u in unknown for h in difflib.get_close_matches(u, sorted(known), n=1, cutoff=0.6)]
            raise ConfigError(f"{where}: unknown key(s) {unknown}"
                              + (f" (did you mean {hints[0]!r}?)" if len(unknown) == 1 and hints else "")
                              + f" (known: {sorted(known)})")
        if entry.get("set") is not None and not isinstance(entry["set"], dict):
            raise ConfigError(f"{where}: 'set' must be a mapping of config keys, got {entry['set']!r}")
        if entry.get("inherit") is not None and not isinstance(entry["inherit"], str):
            raise ConfigError(f"{where}: 'inherit' must be a row name, got {entry['inherit']!r}")
    return rows


def load_row(table_file: str | os.PathLike, row: str) -> tuple[dict[str, Any], list[str]]:
    """Return the flattened delta of ``row`` in a table file (following ``inherit:``)
    and the chain of row names applied (base first)."""
    delta, _, chain = _row_layers(Path(table_file), row)
    return delta, chain


def _row_layers(table_file: Path, row: str, via: str | None = None
                ) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """:func:`load_row` plus, per key, the row that set it (``FILE (row NAME[, inherited by ...])``),
    so that a bad key in an inherited row's ``set:`` is blamed on that row."""
    data = load_yaml(table_file)
    rows = _check_rows(table_file, data)
    chain: list[str] = []
    name: str | None = row
    while name is not None:
        if name not in rows:
            hint = difflib.get_close_matches(name, list(rows), n=1, cutoff=0.5)
            where = f"{table_file}: " + (f"row {chain[-1]!r}: inherit: " if chain else "")
            raise ConfigError(f"{where}no row {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + (f" (named by {via})" if via and not chain else ""))
        if name in chain:
            raise ConfigError(f"{table_file}: row {name!r}: circular 'inherit'")
        chain.append(name)
        name = (rows[name] or {}).get("inherit")
    chain.reverse()
    delta: dict[str, Any] = {}
    sources: dict[str, str] = {}
    full_chain: list[str] = []
    for name in chain:
        entry = rows[name] or {}
        if "run" in entry and entry["run"] is False and name == row:
            raise ConfigError(f"{table_file}: row {row!r} is a cited row (run: false); it has no config")
        context = [f"inherited by row {row}"] if name != row else []
        if via:
            context.append(f"used by {via}")
        src = f"{table_file} (row {name}" + "".join(f", {c}" for c in context) + ")"
        exp = entry.get("experiment")
        if exp is not None:
            # a table row that names a shared experiment (params/experiments.yaml): its delta first
            exp_file = experiments_file(table_file)
            if not isinstance(exp, str):
                raise ConfigError(f"{table_file}: row {name!r}: 'experiment' must be a name, got {exp!r}")
            if exp_file.resolve() == table_file.resolve():
                raise ConfigError(f"{table_file}: row {name!r}: 'experiment' inside the experiments file")
            exp_delta, exp_sources, exp_chain = _row_layers(exp_file, exp, via=f"{table_file} row {name}")
            delta.update(exp_delta)
            sources.update(exp_sources)
            full_chain.extend(f"experiments:{c}" for c in exp_chain)
        for k, v in _flatten(entry.get("set") or {}).items():
            delta[k] = v
            sources[k] = src
        full_chain.append(name)
    return delta, sources, full_chain


def experiments_file(table_file: str | os.PathLike) -> Path:
    """The shared experiments file for a table file: ``params/experiments.yaml`` next to ``params/tables/``."""
    table_file = Path(table_file)
    parent = table_file.parent
    base = parent.parent if parent.name == "tables" else parent
    return base / "experiments.yaml"


# ----------------------------------------------------------------------------- main API
#: keys that count in a run's identity (the config hash, the trainer's resume check) only where the
#: component they configure is on (``(section, key)`` -> the ``(section, key)`` that switches it): keys
#: added after runs were recorded, which change nothing where their component is off, so that adding
#: them keeps those runs' hashes and lets them resume
ONLY_WHEN_ON = {("matcher", "orb_patch"): ("matcher", "enabled")}
#: keys that count in a run's identity only where they differ from the given value: keys added after
#: runs were recorded whose value there is what every run before them did
ONLY_WHEN_NOT = {("loss", "pose_self_detach"): True}


def without_inactive_keys(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict (sections of plain dicts) without the :data:`ONLY_WHEN_ON` keys of components
    that are off and the :data:`ONLY_WHEN_NOT` keys at their given value; the input is not changed."""
    c = dict(cfg)

    def drop(sec: str, key: str) -> None:
        c[sec] = {k: v for k, v in c[sec].items() if k != key}

    for (sec, key), (on_sec, on_key) in ONLY_WHEN_ON.items():
        section = c.get(sec)
        if isinstance(section, Mapping) and key in section and not (c.get(on_sec) or {}).get(on_key):
            drop(sec, key)
    for (sec, key), value in ONLY_WHEN_NOT.items():
        section = c.get(sec)
        if isinstance(section, Mapping) and key in section and section[key] == value:
            drop(sec, key)
    return c


def load_config(
    data: str | None = "synthetic",
    scale: str | None = "tiny",
    row: str | tuple[str, str] | None = None,
    files: Iterable[str | os.PathLike] = (),
    overrides: Iterable[str] | Mapping[str, Any] = (),
    params: str | os.PathLike | None = None,
) -> Config:
    """Build the resolved config.

    ``row`` is ``"TABLE_FILE:ROW"`` or a (file, row) tuple; a bare table name such as
    ``table_vi`` is looked up in ``params/tables/``.
    """
    pdir = Path(params) if params else params_dir()
    schema = _schema(pdir)
    merged: dict[str, Any] = {k: copy.deepcopy(v) for k, v in schema.defaults.items()}

    origin: dict[str, str] = {}  # dotted key -> the layer that last set it (for cross-field errors)

    def apply(flat: Mapping[str, Any], source: str, sources: Mapping[str, str] | None = None) -> None:
        for k, v in flat.items():
            src = (sources or {}).get(k, source)
            k, v = schema.fold(k, v)  # data.roots.kitti=x -> data.roots={kitti: x}
            v = schema.check(k, copy.deepcopy(v), src)
            if isinstance(v, dict) and isinstance(merged.get(k), dict):
                v = {**merged[k], **v}  # free-form mappings (e.g. data.roots) merge per entry
            merged[k] = v
            origin[k] = src

    # validate base itself (constraints may be violated by a bad edit of base.yaml)
    apply(dict(schema.defaults), str(schema.base_file))
    layers: list[str] = [str(schema.base_file)]
    if data:
        f = pdir / "data" / f"{data}.yaml"
        if not f.is_file():
            raise ConfigError(f"data preset {data!r}: {f} not found (have: {_names(pdir / 'data')})")
        apply(_flatten(load_yaml(f)), str(f))
        layers.append(str(f))
    if scale:
        f = pdir / "scale" / f"{scale}.yaml"
        if not f.is_file():
            raise ConfigError(f"scale preset {scale!r}: {f} not found (have: {_names(pdir / 'scale')})")
        apply(_flatten(load_yaml(f)), str(f))
        layers.append(str(f))
    row_name = None
    if row:
        if isinstance(row, str):
            if ":" not in row:
                raise ConfigError(f"row {row!r}: expected TABLE:ROW, e.g. table_vi:r06_sa4depth")
            tfile, row_name = row.rsplit(":", 1)
        else:
            tfile, row_name = row
        tpath = Path(tfile)
        if not tpath.suffix:
            # bare names: "experiments" = params/experiments.yaml, else params/tables/<name>.yaml
            tpath = pdir / "experiments.yaml" if tfile == "experiments" else pdir / "tables" / f"{tfile}.yaml"
        delta, sources, chain = _row_layers(tpath, row_name)
        apply(delta, f"{tpath} (row {row_name})", sources)
        layers.append(f"{tpath}:{'>'.join(chain)}")
    ov = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    _apply_top_layers(apply, files, dict(ov), layers)
    _check_cross(merged, origin)

    nested = _nest(merged)
    nested.setdefault("meta", {})
    nested["meta"] = {"data": data, "scale": scale, "row": row_name, "layers": layers}
    return Config(nested)


#: (lower, upper): the resolved value of ``lower`` must be < that of ``upper`` (keys absent: not checked)
_ORDERED = (("model.min_depth", "model.max_depth"), ("eval.min_depth", "eval.max_depth"),
            ("refine.damping_min", "refine.damping_max"))
#: lists that must contain 0: the target frame, the full-resolution scale
_CONTAINS_ZERO = {"data.frame_ids": "the target frame 0", "model.scales": "the full-resolution scale 0"}


def _check_cross(merged: Mapping[str, Any], origin: Mapping[str, str]) -> None:
    """Checks that involve more than one key, on the resolved values; each error names the keys
    and the layer that set them."""
    def where(k: str) -> str:
        return origin.get(k, "defaults")

    for lo, hi in _ORDERED:
        a, b = merged.get(lo), merged.get(hi)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not a < b:
            raise ConfigError(f"{lo}={a!r} (from {where(lo)}) must be < {hi}={b!r} (from {where(hi)})")
    k, lo, hi = "refine.damping_init", "refine.damping_min", "refine.damping_max"
    if all(isinstance(merged.get(x), (int, float)) for x in (k, lo, hi)) and \
            not merged[lo] <= merged[k] <= merged[hi]:
        raise ConfigError(f"{k}={merged[k]!r} (from {where(k)}) must lie in [{lo}={merged[lo]!r}, "
                          f"{hi}={merged[hi]!r}] (from {where(lo)}, {where(hi)})")
    for k, what in _CONTAINS_ZERO.items():
        v = merged.get(k)
        if isinstance(v, list) and 0 not in v:
            raise ConfigError(f"{where(k)}: key {k!r}: {v!r} must contain {what}")


def _names(d: Path) -> str:
    return ", ".join(sorted(p.stem for p in d.glob("*.yaml"))) or "none"


def save_config(cfg: Mapping, path: str | os.PathLike) -> Path:
    """Write the resolved config atomically (tmp file + rename)."""
    return _files.write_text_atomic(path, _files.dump_yaml(_unwrap(cfg), default_flow_style=None))


def load_resolved(path: str | os.PathLike) -> Config:
    """Read a config.yaml written by :func:`save_config` (no re-validation)."""
    return Config(load_yaml(path))


# ----------------------------------------------------------------------------- CLI glue
ROW_HELP = ("experiment row: TABLE:ROW (a row of params/tables/TABLE.yaml, e.g. table_vi:r06_sa4depth) or "
            "experiments:NAME (a shared experiment of params/experiments.yaml, e.g. experiments:md2_18)")


def add_config_args(parser, run_note: str = "") -> None:
    """``--data``, ``--scale``, ``--row``, ``--config FILE`` and positional ``key=value`` overrides
    (read back by :func:`config_from_args`). ``run_note`` is appended to the preset options' help."""
    g = parser.add_argument_group("configuration")
    g.add_argument("--data", default="synthetic", help=f"data preset in params/data/ (default: synthetic){run_note}")
    g.add_argument("--scale", default="smoke",
                   help=f"scale preset in params/scale/ (tiny|smoke|study|long|small|full; default: smoke){run_note}")
    g.add_argument("--row", default=None, help=ROW_HELP + run_note)
    add_override_args(parser, group=g)


def add_override_args(parser, group=None, after: str = "the row") -> None:
    """``--config FILE`` (repeatable) and positional ``key=value`` overrides, validated like every
    other layer (:func:`load_config`, :func:`apply_overrides`)."""
    g = group if group is not None else parser.add_argument_group("configuration")
    g.add_argument("--config", action="append", default=[], metavar="FILE",
                   help=f"extra YAML merged after {after}; repeatable (a run's config.yaml works too)")
    g.add_argument("overrides", nargs="*", metavar="key=value",
                   help="final overrides, e.g. train.lr=1e-3 (keys as in params/base.yaml)")


def add_set_alias(parser) -> None:
    """The old ``--set KEY=VALUE`` (repeatable), hidden from ``--help``: it still works, prints a
    one-line deprecation note, and lands before the positional overrides (:func:`overrides_of`).
    Its own ``dest`` because argparse assigns a ``nargs='*'`` positional once, possibly after
    ``--set`` was seen, which would drop what ``--set`` collected."""
    import argparse
    import sys

    class _SetAlias(argparse._AppendAction):
        def __call__(self, parser, namespace, values, option_string=None):
            if not getattr(namespace, "_set_noted", False):
                print(f"{parser.prog}: note: --set KEY=VALUE is deprecated; give KEY=VALUE as a positional "
                      f"argument", file=sys.stderr)
                namespace._set_noted = True
            super().__call__(parser, namespace, values, option_string)

    parser.add_argument("--set", dest="set_overrides", action=_SetAlias, default=[], metavar="KEY=VALUE",
                        help=argparse.SUPPRESS)


def overrides_of(args) -> list[str]:
    """The ``key=value`` overrides of parsed arguments: the deprecated ``--set`` ones, then the positional ones."""
    return [*getattr(args, "set_overrides", []), *getattr(args, "overrides", [])]


def config_from_args(args) -> Config:
    return load_config(data=args.data, scale=args.scale, row=args.row, files=args.config,
                       overrides=overrides_of(args))


def _apply_top_layers(apply: Callable[[Mapping[str, Any], str], None], files: Iterable[str | os.PathLike],
                      ov_flat: Mapping[str, Any], layers: list[str]) -> None:
    """The last layers of a config: ``--config`` files, then command-line overrides (noted in ``layers``)."""
    for f in files:
        # a run's own config.yaml works as a --config file: its provenance block is not a setting
        apply({k: v for k, v in _flatten(load_yaml(f)).items() if not k.startswith("meta.")}, str(f))
        layers.append(str(f))
    if ov_flat:
        apply(ov_flat, "command line")
        layers.append("command line: " + " ".join(f"{k}={v}" for k, v in ov_flat.items()))


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for k, v in flat.items():
        _set_dotted(nested, k, v)
    return nested


def apply_overrides(cfg: Mapping, files: Iterable[str | os.PathLike] = (),
                    overrides: Iterable[str] | Mapping[str, Any] = (),
                    params: str | os.PathLike | None = None) -> Config:
    """A resolved config (e.g. a run's config.yaml) with ``--config`` files and ``key=value`` overrides
    applied on top. Every new key and value is checked against the schema as in :func:`load_config`
    (an unknown key is named with the closest valid one; free-form mappings such as ``data.roots``
    merge per entry; cross-key rules hold); the stored values themselves are not re-validated.
    ``meta`` is kept, its ``layers`` extended. Without files and overrides: ``cfg`` unchanged."""
    files = list(files)
    ov = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    ov_flat = dict(ov)
    stored = _unwrap(cfg)
    if not files and not ov_flat:
        return Config(stored)
    schema = _schema(Path(params) if params else params_dir())
    meta = stored.pop("meta", None)
    flat = _flatten(stored)
    origin: dict[str, str] = {}

    def apply(items: Mapping[str, Any], source: str) -> None:
        for k, v in items.items():
            k, v = schema.fold(k, v)
            v = schema.check(k, copy.deepcopy(v), source)
            if isinstance(v, dict) and isinstance(flat.get(k), dict):
                v = {**flat[k], **v}
            flat[k] = v
            origin[k] = source

    layers: list[str] = []
    _apply_top_layers(apply, files, ov_flat, layers)
    _check_cross(flat, origin)
    nested = _nest(flat)
    if isinstance(meta, dict):
        nested["meta"] = {**meta, "layers": [*(meta.get("layers") or []), *layers]}
    return Config(nested)

