"""The claims ledger: the paper's claims, each answered by paired differences over seeds.

A claim (``params/claims.yaml``) is a list of comparisons ``a`` vs ``b``: the same metric of two
experiments (or two metrics of one experiment), measured on runs that differ only in what the
claim is about and paired by seed. For ``better: lower`` the paper says ``a < b``.

Test, per comparison: the differences ``d_s = a_s - b_s`` over the ``n`` seeds, their mean and a
two-sided paired-t confidence interval ``mean(d) +/- t_{1-alpha/2, n-1} sd(d) / sqrt(n)``.
``ci95`` is the plain 95 % interval; the verdict uses the family interval, Bonferroni-corrected
over the ``m`` comparisons of the claim (``alpha = 0.05 / m``), so that a claim of eight
comparisons is not "reproduced" by luck. A comparison *supports* the claim when its family
interval lies entirely on the claimed side of 0, *opposes* it when it lies entirely on the other
side, and is *unclear* otherwise. Verdict of a claim: ``reproduced`` when every comparison
supports it, ``contradicted`` when any opposes it, ``inconclusive`` otherwise (also with fewer
than 2 seeds, or an interval that cannot be computed).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = ["Comparison", "Claim", "load_claims", "paired_interval", "compare", "claim_verdict", "seeds_needed",
           "claim_inputs", "build_ledger", "RunRoots", "committed_copy", "is_current", "write_ledger",
           "with_seeds", "trained_at", "short_commit", "commit_counts", "trained_at_text", "train_time_line", "BudgetRule", "learning_state", "verdict_table", "update_readme", "comparison_line", "VERDICTS"]

VERDICTS = ("reproduced", "contradicted", "inconclusive")
TRAIN_EVAL = "train"  # the run's done.json (its final scale-alignment monitor values)
TRAIN_LOG = "log"     # the run's log.csv at comparison `step` (the learning curve), once the run is done
_CLAIM_KEYS = {"id", "table", "statement", "summary", "seeds", "substitutions", "comparisons", "note"}
_CMP_KEYS = {"metric", "a", "b", "better", "eval", "path", "a_path", "b_path", "label", "step"}
_BUDGET_KEYS = {"column", "window", "knee_ratio", "untrained_ratio"}


@dataclass
class Comparison:
    metric: str            # name shown in the ledger
    a: str                 # experiment (params/experiments.yaml)
    b: str
    better: str            # lower | higher: the paper says a is better than b in this sense
    eval: str              # eval id (depth_eigen_benchmark, scale, ...) or "train" (done.json)
    a_path: str            # dotted path into the JSON
    b_path: str
    label: str = ""
    step: int | None = None  # eval "log": the training step whose logged value is compared


@dataclass
class Claim:
    id: str
    table: str
    statement: str
    seeds: int
    comparisons: list[Comparison]
    substitutions: list[str] = field(default_factory=list)
    note: str = ""
    summary: str = ""


@dataclass(frozen=True)
class BudgetRule:
    """When a row counts as trained past its learning knee (the claims file's ``budget``).

    From the runs' learning curves (the monitor column ``column`` of log.csv, lower is better, mean
    over seeds): the least-squares slope in consecutive ``window``-step windows. A row is *past the
    knee* when its last window's slope is at most ``knee_ratio`` times its steepest window's; a seed
    *did not learn* when its last value is at least ``untrained_ratio`` times its first (still at
    the untrained level), and a row did not learn when every one of its seeds did not, or when its
    mean curve falls in no window."""
    column: str = "abs_rel"
    window: int = 200
    knee_ratio: float = 0.2
    untrained_ratio: float = 0.9


def _budget_rule(raw: Any, where: str) -> BudgetRule:
    if raw is None:
        return BudgetRule()
    _check_keys(raw, f"{where}: budget", _BUDGET_KEYS, ())
    rule = BudgetRule(**raw)
    if not isinstance(rule.column, str) or not rule.column:
        raise ValueError(f"{where}: budget.column={rule.column!r}: a monitor column of log.csv (e.g. abs_rel)")
    if not isinstance(rule.window, int) or isinstance(rule.window, bool) or rule.window <= 0:
        raise ValueError(f"{where}: budget.window={rule.window!r}: a positive number of steps")
    for k in ("knee_ratio", "untrained_ratio"):
        v = getattr(rule, k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise ValueError(f"{where}: budget.{k}={v!r}: a number in (0, 1]")
    return rule


def _err(src: str, msg: str) -> ValueError:
    return ValueError(f"{src}: {msg}")


def _check_keys(d: Any, where: str, allowed: set[str], required: Sequence[str]) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping")
    bad = set(d) - allowed
    if bad:
        raise ValueError(f"{where}: unknown key(s) {sorted(bad)} (allowed: {sorted(allowed)})")
    for k in required:
        if k not in d:
            raise ValueError(f"{where}: missing key {k!r}")


def load_claims(path: str | os.PathLike, experiments: Iterable[str] | None = None) -> dict[str, Any]:
    """``{"scale", "headline_scale", "budget": BudgetRule, "claims": [Claim]}`` from a claims file; every
    key is checked (``headline_scale``: the scale of ``make reproduce``'s headline claim, default ``scale``)."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise _err(str(path), f"cannot read the claims file: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("claims"), list):
        raise _err(str(path), "expected a mapping with a 'claims' list")
    unknown = set(raw) - {"scale", "headline_scale", "budget", "claims"}
    if unknown:
        raise _err(str(path), f"unknown top-level key(s) {sorted(unknown)} (scale, headline_scale, budget, claims)")
    budget = _budget_rule(raw.get("budget"), str(path))
    exps = set(experiments) if experiments is not None else None
    claims, seen = [], set()
    for i, c in enumerate(raw["claims"]):
        where = f"{path}: claims[{i}]"
        _check_keys(c, where, _CLAIM_KEYS, ("id", "table", "statement", "seeds", "comparisons"))
        cid = str(c["id"])
        if cid in seen:
            raise ValueError(f"{where}: duplicate claim id {cid!r}")
        seen.add(cid)
        seeds = c["seeds"]
        if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 3:
            raise ValueError(f"{where} ({cid}): seeds={seeds!r}: a claim needs an integer >= 3 seeds")
        comps = []
        if not isinstance(c["comparisons"], list) or not c["comparisons"]:
            raise ValueError(f"{where} ({cid}): comparisons must be a non-empty list")
        for j, m in enumerate(c["comparisons"]):
            w = f"{where} ({cid}) comparisons[{j}]"
            _check_keys(m, w, _CMP_KEYS, ("metric", "a", "b", "better", "eval"))
            if m["better"] not in ("lower", "higher"):
                raise ValueError(f"{w}: better={m['better']!r} (lower | higher)")
            for k in ("a", "b"):
                if exps is not None and m[k] not in exps:
                    raise ValueError(f"{w}: {k}={m[k]!r} is not an experiment of params/experiments.yaml")
            path_ = m.get("path")
            a_path, b_path = m.get("a_path", path_), m.get("b_path", path_)
            if not a_path or not b_path:
                raise ValueError(f"{w}: give 'path' (or both 'a_path' and 'b_path')")
            step = m.get("step")
            if (m["eval"] == TRAIN_LOG) != (step is not None):
                raise ValueError(f"{w}: eval={m['eval']!r}, step={step!r}: `step` goes with eval 'log' "
                                 f"(a column of the run's log.csv at that step), and eval 'log' needs it")
            if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
                raise ValueError(f"{w}: step={step!r}: a training step, an integer >= 0")
            comps.append(Comparison(str(m["metric"]), str(m["a"]), str(m["b"]), m["better"], str(m["eval"]),
                                    str(a_path), str(b_path), str(m.get("label", "")), step))
        subs = c.get("substitutions") or []
        if not isinstance(subs, list):
            raise ValueError(f"{where} ({cid}): substitutions must be a list of strings")
        claims.append(Claim(cid, str(c["table"]), str(c["statement"]).strip(), seeds, comps,
                            [str(s) for s in subs], str(c.get("note", "")).strip(),
                            str(c.get("summary", "")).strip()))
    scale = raw.get("scale", "study")
    headline = raw.get("headline_scale", scale)
    presets = path.parent / "scale"  # params/scale/ beside params/claims.yaml
    for key, v in (("scale", scale), ("headline_scale", headline)):
        if not isinstance(v, str) or not v:
            raise _err(str(path), f"{key}={v!r}: the name of a scale preset (e.g. study, long)")
        if presets.is_dir() and not (presets / f"{v}.yaml").is_file():
            known = ", ".join(sorted(f.stem for f in presets.glob("*.yaml")))
            raise _err(str(path), f"{key}={v!r}: no {presets / (v + '.yaml')} (known: {known})")
    return {"scale": scale, "headline_scale": headline, "budget": budget, "claims": claims}


# ----------------------------------------------------------------------------- statistics
def with_seeds(claims: Sequence[Claim], seeds: int | None) -> list[Claim]:
    """The claims with ``seeds`` seeds each instead of their own count (None: unchanged). A paired
    interval needs at least 3 seeds here, as in the claims file."""
    if seeds is None:
        return list(claims)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 3:
        raise ValueError(f"seeds={seeds!r}: a claim needs an integer >= 3 seeds")
    return [replace(c, seeds=seeds) for c in claims]


def paired_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, float] | None:
    """``(mean, lo, hi)``: two-sided paired-t interval of the mean difference; None if n < 2."""
    from scipy import stats

    d = [float(x) for x in diffs]
    n = len(d)
    if n < 2 or not all(math.isfinite(x) for x in d):
        return None
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def compare(a_values: Sequence[float], b_values: Sequence[float], better: str, family_size: int = 1
            ) -> dict[str, Any]:
    """One comparison's record: values paired by position (seed), ``mean_diff`` = mean(a - b),
    ``ci95`` and the Bonferroni family interval, and ``outcome`` (supports | opposes | unclear)."""
    if len(a_values) != len(b_values):
        raise ValueError(f"compare: {len(a_values)} a values but {len(b_values)} b values (paired by seed)")
    if better not in ("lower", "higher"):
        raise ValueError(f"compare: better={better!r} (lower | higher)")
    diffs = [float(a) - float(b) for a, b in zip(a_values, b_values)]
    ci95 = paired_interval(diffs, 0.95)
    fam_level = 1.0 - 0.05 / max(1, family_size)
    fam = paired_interval(diffs, fam_level)
    outcome = "unclear"
    n_needed = seeds_needed(diffs, fam_level)
    if fam is not None:
        _, lo, hi = fam
        claimed_below = better == "lower"  # the paper says a - b < 0
        if (hi < 0 and claimed_below) or (lo > 0 and not claimed_below):
            outcome = "supports"
        elif (lo > 0 and claimed_below) or (hi < 0 and not claimed_below):
            outcome = "opposes"
    return {
        "a_values": [float(x) for x in a_values], "b_values": [float(x) for x in b_values],
        "n": len(diffs),
        "mean_diff": (sum(diffs) / len(diffs)) if diffs else math.nan,
        "ci95": [ci95[1], ci95[2]] if ci95 else None,
        "ci_family": [fam[1], fam[2]] if fam else None,
        "ci_family_level": fam_level,
        "outcome": outcome,
        "seeds_needed": n_needed,
    }


def image_share(a_per_image: Sequence[Sequence[float]], b_per_image: Sequence[Sequence[float]]
                ) -> dict[str, Any] | None:
    """How much of the spread of a comparison's per-seed differences comes from the test images: the
    paired per-image differences d[s, i] (seed s, image i) of a two-way layout, the seed x image
    interaction variance (the residual mean square) over the number of images, as a share of the
    variance of the per-seed mean differences (``share``). With a fixed test set that is the most of
    the differences' variance that more test images could remove, and ``width_share`` = 1 - sqrt(1 -
    share) the most of the interval's width; the rest is the runs' own (seed) variance. A point
    estimate with seeds - 1 degrees of freedom: with 3-5 seeds it can be off by a factor of 2.
    None when it cannot be told: fewer than 2 seeds or 2 images, per-image lists of unequal length,
    a non-finite value, or per-seed means that do not vary."""
    import numpy as np

    if len(a_per_image) != len(b_per_image) or len(a_per_image) < 2:
        return None
    n_img = len(a_per_image[0])
    if n_img < 2 or any(len(x) != n_img for x in (*a_per_image, *b_per_image)):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.asarray(a_per_image, dtype=float) - np.asarray(b_per_image, dtype=float)  # (seeds, images)
        seed_mean, img_mean = d.mean(axis=1), d.mean(axis=0)
        var_seed_means = float(seed_mean.var(ddof=1))
        residual = d - seed_mean[:, None] - img_mean[None, :] + d.mean()
        interaction = float((residual ** 2).sum()) / ((d.shape[0] - 1) * (n_img - 1))
    if not (np.isfinite(d).all() and math.isfinite(var_seed_means) and math.isfinite(interaction)) \
            or var_seed_means <= 0:
        return None
    share = min(1.0, interaction / n_img / var_seed_means)
    return {"share": share, "width_share": 1.0 - math.sqrt(1.0 - share), "images": n_img,
            "interaction_var": interaction, "seed_mean_var": var_seed_means}


def seeds_needed(diffs: Sequence[float], level: float, max_n: int = 100) -> int | None:
    """The smallest seed count whose interval at ``level`` would exclude 0 if the mean and the
    standard deviation of the differences stayed as measured (a planning figure, not a power
    analysis); None when the mean is 0, fewer than 2 values, or more than ``max_n`` would be needed."""
    from scipy import stats

    d = [float(x) for x in diffs]
    if len(d) < 2 or not all(math.isfinite(x) for x in d):
        return None
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    if mean == 0:
        return None
    for n in range(2, max_n + 1):
        if float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * sd / math.sqrt(n) < abs(mean):
            return n
    return None


def claim_verdict(outcomes: Iterable[str]) -> str:
    """reproduced (all support) | contradicted (any opposes) | inconclusive."""
    outs = list(outcomes)
    if not outs:
        return "inconclusive"
    if any(o == "opposes" for o in outs):
        return "contradicted"
    if all(o == "supports" for o in outs):
        return "reproduced"
    return "inconclusive"


# ----------------------------------------------------------------------------- learning curves
PAST_KNEE, STILL_FALLING, NOT_LEARNED, UNKNOWN_STATE = "past the knee", "still falling", "did not learn", "unknown"


def learning_state(logs: Sequence[Mapping[str, Any]], rule: BudgetRule = BudgetRule(),
                   upto: int | None = None, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Where one row's runs stand on their learning curves, by ``rule``: ``logs`` are the seeds'
    monitor logs (:func:`sa4depth.report.figures.read_monitor_log`; ``names``, e.g. their files, name
    them in errors), read up to step ``upto`` on the steps every seed logged (a step logged twice,
    as by a resumed run, counts with its last finite value).

    The mean curve over seeds is cut into ``rule.window``-step windows ending at its last step (a
    partial window at the start is left out) and fitted by least squares in each. Returns its first
    and last values, the windows' slopes (per step), the last window's slope as a fraction of the
    steepest (``ratio``), the change another window at the last slope would bring
    (``next_window_change``), ``rising`` (the last slope is positive), the seeds that did not learn,
    ``longest_step`` (the last step any seed logged: above ``to_step`` when a seed stopped early or
    ends without a value), and ``state``: past the knee | still falling | did not learn. A curve of
    fewer than two windows cannot show a knee: ValueError."""
    import numpy as np

    if not logs:
        raise ValueError("learning_state: no runs")
    names = list(names) if names is not None else [f"seed {i}" for i in range(len(logs))]
    limit = math.inf if upto is None else upto
    curves = []
    for lg, name in zip(logs, names):
        if rule.column not in lg:
            raise ValueError(f"{name}: no monitor column {rule.column!r}")
        st, v = np.asarray(lg["step"], dtype=float), np.asarray(lg[rule.column], dtype=float)
        ok = np.isfinite(st) & np.isfinite(v) & (st <= limit)
        curve = {int(a): float(b) for a, b in zip(st[ok], v[ok])}  # later rows of a step win
        if not curve:
            raise ValueError(f"{name}: no value of {rule.column!r}" + (f" up to step {upto}" if upto is not None else ""))
        curves.append(curve)
    common = sorted(set.intersection(*(set(c) for c in curves)))
    if len(common) < 2:
        raise ValueError(f"{names[0]} and the other seeds share fewer than 2 steps with a value of {rule.column!r}")
    steps = np.array(common, dtype=float)
    per_seed = np.array([[c[s] for s in common] for c in curves])
    mean = per_seed.mean(axis=0)
    windows = []
    hi = common[-1]
    while hi - rule.window >= common[0]:
        sel = (steps >= hi - rule.window) & (steps <= hi)
        if sel.sum() >= 2:
            windows.insert(0, {"from": hi - rule.window, "to": hi,
                               "slope_per_step": float(np.polyfit(steps[sel], mean[sel], 1)[0])})
        hi -= rule.window
    if len(windows) < 2:
        raise ValueError(f"the curve (steps {common[0]}-{common[-1]}) spans fewer than 2 windows of {rule.window} "
                         f"steps: too short to tell a knee")
    not_learned = [i for i, row in enumerate(per_seed) if row[-1] >= rule.untrained_ratio * row[0]]
    slopes = [w["slope_per_step"] for w in windows]
    steepest, last = min(slopes), slopes[-1]
    ratio = last / steepest if steepest < 0 else None
    if len(not_learned) == len(per_seed) or steepest >= 0:
        state = NOT_LEARNED
    else:
        state = PAST_KNEE if ratio <= rule.knee_ratio else STILL_FALLING
    return {"state": state, "seeds": len(per_seed), "to_step": common[-1],
            "longest_step": max(max(c) for c in curves), "first": float(mean[0]), "last": float(mean[-1]),
            "windows": windows, "steepest_slope": steepest, "last_slope": last, "ratio": ratio,
            "rising": last > 0, "next_window_change": last * rule.window, "not_learned_seeds": not_learned}


def _budget_summary(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """One line: is every compared row past its knee, and which are not (with how far they are)."""
    def pct(r):
        return f"{100 * r['ratio']:.2f} %" if r.get("ratio") is not None else "n/a"

    by_state: dict[str, list[str]] = {}
    for name, r in rows.items():
        notes = []
        if r["state"] == STILL_FALLING:
            notes.append(f"last slope {pct(r)} of its steepest; another window at it: {r['next_window_change']:+.3f}")
        elif r["state"] == UNKNOWN_STATE:
            notes.append(r["reason"])
        stuck = r.get("not_learned_seeds") or []
        if stuck and r["state"] != NOT_LEARNED:
            notes.append(f"seed{'s' if len(stuck) > 1 else ''} {', '.join(map(str, stuck))} did not learn")
        if r.get("rising") and r["state"] != NOT_LEARNED:
            notes.append("rising in its last window")
        if r.get("longest_step", 0) > r.get("to_step", math.inf):
            notes.append(f"read to step {r['to_step']}, the last with a value in every seed (longest: "
                         f"{r['longest_step']})")
        by_state.setdefault(r["state"], []).append(name + (f" ({'; '.join(notes)})" if notes else ""))
    if set(by_state) == {PAST_KNEE}:
        return "every compared row is past its knee: " + ", ".join(by_state[PAST_KNEE])
    return "; ".join(f"{st}: {', '.join(by_state[st])}" for st in (STILL_FALLING, NOT_LEARNED, UNKNOWN_STATE, PAST_KNEE)
                     if st in by_state)


def _claim_budget(c: Claim, data: str, scale: str, roots: RunRoots, rule: BudgetRule,
                  known: dict[tuple[str, int, int | None], dict[str, Any]]) -> dict[str, Any]:
    """The learning state of every row a claim compares (per experiment, or experiment at a step for
    eval ``log``), from its seeds' log.csv; a row whose logs cannot be read is ``unknown`` with why.
    ``known``: the rows already classified for other claims (same experiment, seeds and step), reused."""
    from sa4depth.report.figures import read_monitor_log

    rows: dict[str, dict[str, Any]] = {}
    for m in c.comparisons:
        upto = m.step if m.eval == TRAIN_LOG else None
        for exp in (m.a, m.b):
            name = exp if upto is None else f"{exp} at step {upto}"
            key = (exp, c.seeds, upto)
            if key not in known:
                files = [roots.run_file(data, scale, exp, s, "log.csv") for s in range(c.seeds)]
                try:
                    rec = learning_state([read_monitor_log(f) for f in files], rule, upto,
                                         names=[str(f) for f in files])
                except (OSError, ValueError) as e:
                    rec = {"state": UNKNOWN_STATE, "reason": f"{e} ({exp}, seeds 0-{c.seeds - 1})"}
                known[key] = {**rec, "log_files": [str(f) for f in files if f.is_file()]}
            # a copy per claim: write_ledger rewrites its log_files in place
            rows[name] = {**known[key], "log_files": list(known[key]["log_files"])}
    return {"rows": rows, "past_knee": all(r["state"] == PAST_KNEE for r in rows.values()),
            "summary": _budget_summary(rows)}


# ----------------------------------------------------------------------------- files
def recorded_config_hash(f: str | Path) -> str | None:
    """The :func:`sa4depth.pipeline.config_hash` of the training config a result file records: for a
    run folder's files (``done.json``, ``log.csv``, ``config.yaml``) the ``config.yaml`` beside it, for
    a metric JSON its ``provenance.config``; None when it records none or the record cannot be read."""
    from sa4depth.config import ConfigError, load_yaml
    from sa4depth.pipeline import config_hash

    f = Path(f)
    try:
        if f.suffix == ".json" and f.name != "done.json":
            with open(f) as fh:
                prov = json.load(fh).get("provenance")
            cfg = prov.get("config") if isinstance(prov, dict) else None
        else:
            cfg = load_yaml(f.parent / "config.yaml") if (f.parent / "config.yaml").is_file() else None
    except (OSError, ValueError, AttributeError, ConfigError):
        return None
    return config_hash(cfg) if isinstance(cfg, dict) else None


#: how a result file made with another config than the params resolve to now is listed as missing
STALE = " (made with another training config than the params give now)"


def current_config_hash(data: str, scale: str, exp: str, seed: int) -> str | None:
    """The config hash experiment ``exp`` at ``seed`` resolves to now (``params/``; None for an
    experiment the params do not know)."""
    from sa4depth.config import ConfigError
    from sa4depth.pipeline import config_hash, experiment_config

    try:
        return config_hash(experiment_config(exp, data, scale, int(seed))[0])
    except (ConfigError, KeyError, OSError, ValueError):
        return None


def is_current(f: str | Path, data: str, scale: str, exp: str, seed: int,
               current: Callable[[], str | None] | None = None) -> bool:
    """Whether result file ``f`` was made with the config ``exp`` resolves to now: true when it records
    none (nothing to check), false when it records another (the params changed since it was made).
    ``current``: what gives that config's hash (a caller's cached resolution; default
    :func:`current_config_hash`), asked only when ``f`` records one."""
    rec = recorded_config_hash(f)
    if rec is None:
        return True
    return rec == (current() if current else current_config_hash(data, scale, exp, seed))


def committed_copy(path: str | Path, copies_root: str | Path) -> Path:
    """Where a ledger committed its copy of a run or metric file ``path``
    (``<root>/<data>/<scale>/<exp>/seed<N>/<name>`` -> ``copies_root/<data>/<scale>/<exp>/seed<N>/<name>``)."""
    return Path(copies_root).joinpath(*Path(path).parts[-5:])


@dataclass(frozen=True)
class RunRoots:
    """Where the runs and metric JSONs of a ledger are: one or more (runs root, metrics root) pairs.
    A run (experiment, seed) is read from the first pair whose run folder holds a ``done.json`` (a
    finished run: an unfinished one elsewhere does not hide it); a file that pair lacks, or any
    file of a run with no done.json anywhere, from the first pair that has that file; a file no pair
    has is named under the first pair. So a ledger's committed copies (``results/claims/runs``, runs
    and metrics in one tree) and runs trained since can answer one ledger. ``check_config``: a file
    recording a training config other than the one the params resolve to now (:func:`is_current`)
    counts as absent, so a stale copy is not read."""
    pairs: tuple[tuple[Path, Path], ...]
    check_config: bool = False
    # check_config's answers: (data, scale, exp, seed) -> the current hash; (..., file) -> whether current
    _current: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, runs_root: "str | Path | Sequence[str | Path] | RunRoots",
           metrics_root: "str | Path | Sequence[str | Path] | None" = None,
           check_config: bool = False) -> "RunRoots":
        """``metrics_root`` None: ``results/metrics`` for every runs root (for callers that read run
        folders only)."""
        if isinstance(runs_root, RunRoots):
            return runs_root
        runs = [runs_root] if isinstance(runs_root, (str, Path)) else list(runs_root)
        if metrics_root is None:
            metrics_root = ["results/metrics"] * len(runs)
        mets = [metrics_root] if isinstance(metrics_root, (str, Path)) else list(metrics_root)
        if not runs or len(runs) != len(mets):
            raise ValueError(f"runs roots {[str(r) for r in runs]} and metrics roots {[str(m) for m in mets]}: "
                             f"give one metrics root per runs root")
        return cls(tuple((Path(r), Path(m)) for r, m in zip(runs, mets)), check_config)

    def has(self, f: Path, data: str, scale: str, exp: str, seed: int) -> bool:
        """``f`` exists (and, with ``check_config``, was made with the config the params give now)."""
        if not f.is_file():
            return False
        if not self.check_config:
            return True
        run, key = (data, scale, exp, seed), (data, scale, exp, seed, str(f))
        if key not in self._current:
            def current() -> str | None:
                if run not in self._current:
                    self._current[run] = current_config_hash(*run)
                return self._current[run]
            self._current[key] = is_current(f, data, scale, exp, seed, current)
        return self._current[key]

    def _pick(self, data: str, scale: str, exp: str, seed: int, candidates: Sequence[Path]) -> Path:
        """Of one file's path under each pair (``candidates``, in pair order): the finished run's, the
        first that exists, or the first."""
        from sa4depth.pipeline import run_dir

        done = next((i for i, (r, _) in enumerate(self.pairs)
                     if self.has(run_dir(data, scale, exp, seed, r) / "done.json", data, scale, exp, seed)), None)
        if done is not None and self.has(candidates[done], data, scale, exp, seed):
            return candidates[done]
        return next((c for c in candidates if self.has(c, data, scale, exp, seed)), candidates[0])

    def run_file(self, data: str, scale: str, exp: str, seed: int, name: str) -> Path:
        """A file of the run's folder (``done.json``, ``log.csv``, ``config.yaml``)."""
        from sa4depth.pipeline import run_dir

        return self._pick(data, scale, exp, seed, [run_dir(data, scale, exp, seed, r) / name for r, _ in self.pairs])

    def metrics_path(self, data: str, scale: str, exp: str, seed: int, eid: str) -> Path:
        from sa4depth.pipeline import metrics_path

        return self._pick(data, scale, exp, seed,
                          [metrics_path(data, scale, exp, seed, eid, m) for _, m in self.pairs])


def _source_file(data: str, scale: str, exp: str, seed: int, eid: str, roots: RunRoots) -> Path:
    if eid in (TRAIN_EVAL, TRAIN_LOG):  # "log" reads log.csv beside it, once the run has finished
        return roots.run_file(data, scale, exp, seed, "done.json")
    return roots.metrics_path(data, scale, exp, seed, eid)


def claim_inputs(claims: Sequence[Claim], data: str, scale: str,
                 runs_root: str | Path | Sequence[str | Path] | RunRoots = "runs",
                 metrics_root: str | Path | Sequence[str | Path] = "results/metrics") -> list[str]:
    """Every result file the ledger's comparisons read (metric JSONs and, for ``train`` and ``log``
    comparisons, done.json): the files a ledger needs. The learning-curve column also reads each
    compared run's log.csv where it exists (written with done.json), and says ``unknown`` where not."""
    roots = RunRoots.of(runs_root, metrics_root)  # a RunRoots carries its own metrics roots
    out: set[str] = set()
    for c in claims:
        for m in c.comparisons:
            for exp in (m.a, m.b):
                for s in range(c.seeds):
                    out.add(str(_source_file(data, scale, exp, s, m.eval, roots)))
    return sorted(out)


def _dig(d: Any, dotted: str, where: Path) -> float:
    cur = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise ValueError(f"{where}: no value at {dotted!r} (missing {part!r})")
        cur = cur[part]
    try:
        v = float(cur)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: value at {dotted!r} is not a number: {cur!r}") from None
    return v


def _image_key(result: Any) -> tuple:
    """What must match for two evaluations' per-image lists to pair image by image: the split, the
    image count and the skipped images."""
    if not isinstance(result, dict):
        return (None,)
    return (result.get("split"), result.get("num_images"), json.dumps(result.get("skipped"), sort_keys=True))


def _per_image(result: Any, path: str, value: float) -> list[float] | None:
    """The per-image values behind ``metrics.<key>`` of an evaluation JSON (its ``per_image`` list, in
    the split's order), or None when the path is not a per-image metric, the list is absent, or its
    mean is not the metric's ``value`` (a metric not averaged over images)."""
    key = path[len("metrics."):] if path.startswith("metrics.") else None
    rows = result.get("per_image") if isinstance(result, dict) else None
    if not key or not isinstance(rows, list) or not rows:
        return None
    try:
        vals = [float(r[key]) for r in rows]
    except (TypeError, KeyError, ValueError, OverflowError):
        return None
    if not math.isclose(sum(vals) / len(vals), value, rel_tol=1e-9, abs_tol=1e-12):
        return None
    return vals


def _log_value(f: Path, step: int, column: str) -> float:
    """The value of ``column`` logged at ``step`` in a run's log.csv (the last such row: a resumed run
    may log a step twice)."""
    import csv

    found = None
    with open(f, newline="") as fh:
        reader = csv.DictReader(fh)
        if column not in (reader.fieldnames or []):
            raise ValueError(f"{f}: no column {column!r} (columns: {', '.join(reader.fieldnames or [])})")
        for row in reader:
            try:
                row_step = int(float(row.get("step") or "nan"))
            except ValueError:
                continue
            if row_step == step and (row.get(column) or "").strip():
                found = row[column]
    if found is None:
        raise ValueError(f"{f}: no value of {column!r} at step {step} (the monitor logs every "
                         f"train.monitor_every steps)")
    try:
        return float(found)
    except ValueError:
        raise ValueError(f"{f}: {column!r} at step {step} is not a number: {found!r}") from None


#: ``trained_at`` of a run whose done.json has no commit (trained before the trainer recorded one, or
#: outside a git checkout)
UNRECORDED = "unrecorded"
#: ``trained_at`` of a run whose done.json is not there (metrics present without their run directory)
RUN_NOT_FOUND = "run not found"
_UNKNOWN = (UNRECORDED, RUN_NOT_FOUND)


def short_commit(git: Any) -> str:
    """A ``{"commit", "dirty"}`` record as 7 hex digits, ``-dirty`` when it was; :data:`UNRECORDED` without one."""
    if not isinstance(git, dict) or not git.get("commit"):
        return UNRECORDED
    return str(git["commit"])[:7] + ("-dirty" if git.get("dirty") else "")


def _short_code(rec: Mapping[str, Any]) -> str:
    """``git`` as :func:`short_commit`; a run resumed under other code (done.json ``code``: one entry per
    process whose commit differs from the one before) reads as its commits in order, joined by ``+``."""
    code = rec.get("code")
    if isinstance(code, list) and len(code) > 1 and all(isinstance(e, Mapping) for e in code):
        return "+".join(short_commit(e) for e in code)
    return short_commit(rec.get("git"))


def trained_at(data: str, scale: str, exp: str, seed: int, runs_root: str | Path | RunRoots,
               result: Mapping[str, Any] | None = None, done: Mapping[str, Any] | None = None) -> str:
    """The commit that trained a run: the short hash, with ``-dirty`` when the tree had uncommitted
    changes (``a+b`` for a run resumed under other code, :func:`_short_code`); :data:`UNRECORDED` or
    :data:`RUN_NOT_FOUND` otherwise. Read from the evaluation
    ``result``'s ``provenance.trained`` (what the evaluated model's run recorded) when it has one,
    else from the run's done.json (``git``; ``done``: its content, when the caller has read it)."""
    from sa4depth.safeio import load_json_object

    prov = result.get("provenance") if isinstance(result, Mapping) else None
    trained = prov.get("trained") if isinstance(prov, Mapping) else None
    if isinstance(trained, Mapping) and trained.get("done"):
        return _short_code(trained)
    if done is None:
        f = RunRoots.of(runs_root).run_file(data, scale, exp, seed, "done.json")
        if not f.is_file():
            return RUN_NOT_FOUND
        done = load_json_object(f, "done.json")
    return _short_code(done)


def _train_time(runs: Iterable[tuple[str, int]], data: str, scale: str, roots: RunRoots) -> dict[str, Any]:
    """The training time of the runs read: the sum of their done.json ``wall_time_s`` (each run's own
    clock, resumed processes included), and how many runs have no such record."""
    from sa4depth.safeio import load_json_object

    total, timed, untimed = 0.0, 0, 0
    for exp, s in sorted(runs):
        f = roots.run_file(data, scale, exp, s, "done.json")
        if not f.is_file():
            untimed += 1
            continue
        w = load_json_object(f, "done.json").get("wall_time_s")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            untimed += 1
            continue
        total += float(w)
        timed += 1
    return {"runs": timed, "train_hours": total / 3600.0, "runs_without_time": untimed}


def commit_counts(commits: Iterable[str]) -> dict[str, int]:
    """How many runs each commit trained, most first (ties by name)."""
    counts: dict[str, int] = {}
    for c in commits:
        counts[c] = counts.get(c, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _pairing(comps: Sequence[Mapping[str, Any]], counts: Mapping[str, int]) -> str:
    """Whether a claim's comparisons pair each seed's runs trained by one commit (``counts``: the
    claim's runs per commit)."""
    unknown = sum(n for c, n in counts.items() if c in _UNKNOWN)
    if unknown:
        return (f"the commit of {unknown} of its {sum(counts.values())} runs is not known, so whether a seed "
                f"pairs runs of different code versions cannot be told")
    cross = sorted({s for m in comps for s, a, b in zip(m["seeds"], m["a_trained_at"], m["b_trained_at"]) if a != b})
    if cross:
        return f"seed{'s' if len(cross) > 1 else ''} {', '.join(map(str, cross))} pair runs trained at different commits"
    return "each seed pairs runs trained at one commit"


def _comparison(c: Claim, m: Comparison, data: str, scale: str, roots: "RunRoots",
                all_runs: dict[tuple[str, int], list[str]]) -> dict[str, Any]:
    """One comparison of claim ``c`` read from its result files (every seed's must exist): the
    record of :func:`compare` at the claim's family level, with the files read, the per-image
    spread and the runs read (``all_runs`` collects each run's commit readings)."""
    vals: dict[str, list[float]] = {"a": [], "b": []}
    files: dict[str, list[str]] = {"a": [], "b": []}
    commits: dict[str, list[tuple[str, int]]] = {"a": [], "b": []}
    per_img: dict[str, list[list[float] | None]] = {"a": [], "b": []}
    img_keys: set[tuple] = set()
    for side, exp, path in (("a", m.a, m.a_path), ("b", m.b, m.b_path)):
        for s in range(c.seeds):
            f = _source_file(data, scale, exp, s, m.eval, roots)
            if not roots.has(f, data, scale, exp, s):
                raise FileNotFoundError(f"{f}: result of {exp} seed {s} needed by claim {c.id} is missing"
                                        f"{STALE if f.is_file() else ''} (run `snakemake claims`)")
            result = None
            if m.eval == TRAIN_LOG:
                f = f.parent / "log.csv"
                vals[side].append(_log_value(f, int(m.step), path))
            else:
                with open(f) as fh:
                    try:
                        result = json.load(fh)
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{f}: not valid JSON ({e})") from None
                vals[side].append(_dig(result, path, f))
                per_img[side].append(_per_image(result, path, vals[side][-1]))
                img_keys.add(_image_key(result))
            files[side].append(str(f))
            # the readings of a run, resolved to one commit per run after all claims are read;
            # once one names a commit, later readings add nothing
            seen = all_runs.setdefault((exp, s), [])
            if not any(x not in _UNKNOWN for x in seen):
                if m.eval == TRAIN_EVAL:  # `result` is the run's done.json itself
                    seen.append(trained_at(data, scale, exp, s, roots, done=result))
                else:
                    seen.append(trained_at(data, scale, exp, s, roots, result))
            commits[side].append((exp, s))
    rec = compare(vals["a"], vals["b"], m.better, family_size=len(c.comparisons))
    pa, pb = per_img["a"], per_img["b"]
    rec["image_share"] = (image_share(pa, pb) if pa and len(pa) == c.seeds and len(pb) == c.seeds
                          and len(img_keys) == 1 and all(x is not None for x in (*pa, *pb)) else None)
    return {"metric": m.metric, "label": m.label, "eval": m.eval, "a": m.a, "b": m.b,
            "a_path": m.a_path, "b_path": m.b_path, "better": m.better,
            **({"step": m.step} if m.step is not None else {}),
            "seeds": list(range(c.seeds)), **rec, "a_files": files["a"], "b_files": files["b"],
            "a_trained_at": commits["a"], "b_trained_at": commits["b"]}


def build_ledger(claims: Sequence[Claim], data: str, scale: str,
                 runs_root: str | Path | Sequence[str | Path] = "runs",
                 metrics_root: str | Path | Sequence[str | Path] = "results/metrics", allow_missing: bool = False,
                 budget: BudgetRule | None = None, check_config: bool = False) -> dict[str, Any]:
    """The ledger as a dict (what ``claims.json`` holds), computed from the result files only (and,
    for the learning-curve column, the runs' log.csv under ``runs_root``). ``runs_root`` and
    ``metrics_root`` may each be a list, pairwise (:class:`RunRoots`: each run from the first pair
    where it finished, each file from the first pair that has it; ``check_config``: files made with
    another config than the params resolve to now count as missing).

    ``allow_missing``: a claim with a missing result file is listed under ``pending`` (with the
    missing files) instead of stopping the ledger; without it, a missing file is an error.
    ``budget``: the rule by which each claim's compared rows are classified on their learning curves
    (the runs' log.csv; :func:`learning_state`)."""
    budget = budget or BudgetRule()
    roots = RunRoots.of(runs_root, metrics_root, check_config)
    out, pending = [], []
    rows_known: dict[tuple[str, int, int | None], dict[str, Any]] = {}
    all_runs: dict[tuple[str, int], list[str]] = {}
    for c in claims:
        needed = {(exp, s, m.eval): _source_file(data, scale, exp, s, m.eval, roots)
                  for m in c.comparisons for exp in (m.a, m.b) for s in range(c.seeds)}
        absent = {(exp, s, ev): f for (exp, s, ev), f in needed.items() if not roots.has(f, data, scale, exp, s)}
        missing = sorted({str(f) + ("" if not f.is_file() else STALE) for f in absent.values()})
        if missing and allow_missing:
            # the runs still to train (or evaluate), one entry per experiment with its seeds
            todo: dict[str, set[int]] = {}
            for exp, s, _ in absent:
                todo.setdefault(exp, set()).add(s)
            # what a pending claim already has, so that the ledger commits it (a later machine need not
            # retrain it): each present result with the files of its finished run
            answered = [m for m in c.comparisons
                        if not any((exp, s, m.eval) in absent for exp in (m.a, m.b) for s in range(c.seeds))]
            present = sorted({(exp, s, str(f), str(roots.run_file(data, scale, exp, s, "done.json")))
                              for (exp, s, ev), f in needed.items() if (exp, s, ev) not in absent})
            pending.append({"id": c.id, "table": c.table, "statement": c.statement, "summary": c.summary,
                            "seeds": c.seeds, "scale": scale, "data": data,
                            "missing": len(missing), "missing_files": missing,
                            "missing_runs": [{"exp": e, "seeds": sorted(ss)} for e, ss in sorted(todo.items())],
                            "present_files": [{"exp": e, "seed": s, "file": f, "done": d} for e, s, f, d in present],
                            # the comparisons whose runs have all finished, each with the claim's whole family
                            # level, so an answered comparison reads as it will in the finished claim
                            "comparisons": [_comparison(c, m, data, scale, roots, all_runs) for m in answered],
                            "n_comparisons": len(c.comparisons),
                            # the learning curves of the rows those comparisons read
                            **({"budget": _claim_budget(replace(c, comparisons=answered), data, scale, roots,
                                                        budget, rows_known)} if answered else {})})
            continue
        comps = [_comparison(c, m, data, scale, roots, all_runs) for m in c.comparisons]
        out.append({
            "id": c.id, "table": c.table, "statement": c.statement, "summary": c.summary,
            "verdict": claim_verdict(x["outcome"] for x in comps),
            "scale": scale, "data": data, "seeds": c.seeds, "substitutions": c.substitutions,
            "note": c.note, "comparisons": comps, "budget": _claim_budget(c, data, scale, roots, budget, rows_known),
        })
    # a run read through several files: the commit its evaluations recorded wins over an unknown one
    run_commit = {k: next((c for c in v if c not in _UNKNOWN), next((c for c in v if c == UNRECORDED), v[0]))
                  for k, v in all_runs.items()}
    for c in (*out, *(p for p in pending if p["comparisons"])):
        runs: set[tuple[str, int]] = set()
        for m in c["comparisons"]:
            for side in ("a", "b"):
                runs.update(m[f"{side}_trained_at"])
                m[f"{side}_trained_at"] = [run_commit[k] for k in m[f"{side}_trained_at"]]
        c["trained_at"] = commit_counts(run_commit[k] for k in sorted(runs))
        c["pairing"] = _pairing(c["comparisons"], c["trained_at"])
    return {"claims": out, "pending": pending, "trained_at": commit_counts(run_commit.values()),
            "train_time": _train_time(all_runs, data, scale, roots), "budget_rule": asdict(budget)}


def trained_at_text(counts: Mapping[str, int]) -> str:
    """:func:`commit_counts` in words: ```abc1234` 12 runs, unrecorded 1 run``."""
    parts = [f"{c if c in _UNKNOWN else f'`{c}`'} {n} run{'s' if n != 1 else ''}" for c, n in counts.items()]
    return ", ".join(parts) if parts else "none"


def _budget_cell(budget: Mapping[str, Any] | None) -> str:
    if not budget or not budget.get("rows"):
        return ""
    states = [r["state"] for r in budget["rows"].values()]
    n, k = len(states), states.count(PAST_KNEE)
    others = [f"{states.count(st)} {st}" for st in (STILL_FALLING, NOT_LEARNED, UNKNOWN_STATE) if st in states]
    return f"{k} of {n}" + (f" ({', '.join(others)})" if others else "")


def comparison_line(m: Mapping[str, Any]) -> str:
    """One comparison in a line: ``abs_rel: sa4depth_md2_18 - md2_18 = -0.0400, 95 % [-0.0640, -0.0170],
    97.5 % [...] (a < b claimed, 5 seeds): supports``; the second interval (the family's, which the
    outcome reads) is shown when the claim has more than one comparison."""
    says = "a < b" if m["better"] == "lower" else "a > b"
    fam = (f", {100 * m['ci_family_level']:.1f} % {_interval(m.get('ci_family'), '[n/a]')}"
           if m.get("ci_family_level", 0.95) > 0.95 else "")
    return (f"{m.get('label') or m['metric']}: {m['a']} - {m['b']} = {_fmt(m['mean_diff'])}, 95 % "
            f"{_interval(m.get('ci95'), '[n/a]')}{fam} ({says} claimed, {m['n']} seeds): {m['outcome']}")


def _interval(x: Sequence[float] | None, missing: str = "n/a") -> str:
    return f"[{_fmt(x[0])}, {_fmt(x[1])}]" if x else missing


def _ranges(ns: Sequence[int]) -> str:
    """Sorted integers as runs: [0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    out: list[str] = []
    for n in sorted(ns):
        if out and n == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.4f}" if abs(x) >= 1e-3 or x == 0 else f"{x:+.2e}"


def verdict_table(ledger: Mapping[str, Any]) -> list[str]:
    """The lines of the verdict table at the top of claims.md (one row per claim, pending ones too)."""
    lines = ["| claim | table | what it says | verdict | data | scale | seeds | rows past the knee |",
             "|---|---|---|---|---|---|---|---|"]
    for c in ledger["claims"]:
        lines.append(f"| {c['id']} | {c['table']} | {c.get('summary', '')} | **{c['verdict']}** | {c['data']} "
                     f"| {c['scale']} | {c['seeds']} | {_budget_cell(c.get('budget'))} |")
    for p in ledger.get("pending", []):
        lines.append(f"| {p['id']} | {p['table']} | {p.get('summary', '')} | {pending_text(p)} | | "
                     f"| {p['seeds']} | |")
    return lines


#: a document's (the README's) verdict table of one ledger sits between a ``<!-- ledger-table: PATH ... -->``
#: line, PATH naming that ledger's claims.md relative to the document, and a ``<!-- /ledger-table -->`` line;
#: ``sa4depth claims --readme`` rewrites the blocks that name the ledger it writes
README_BEGIN, README_END = "<!-- ledger-table", "<!-- /ledger-table -->"


def readme_table_blocks(text: str, where: str) -> list[tuple[str, int, int]]:
    """``(PATH, start, end)`` of every ledger-table block of ``text``: the character span of the lines
    between its two marker lines."""
    import re

    blocks, pos = [], 0
    while (b := text.find(README_BEGIN, pos)) >= 0:
        line_end = text.find("\n", b)
        m = re.match(r"\s*:\s*([^\s;]+)", text[b + len(README_BEGIN):line_end if line_end >= 0 else None])
        if not m or line_end < 0:
            raise ValueError(f"{where}: a '{README_BEGIN}' line names no claims.md (write "
                             f"'{README_BEGIN}: results/claims/claims.md -->')")
        e = text.find(README_END, line_end)
        if e < 0:
            raise ValueError(f"{where}: the ledger-table block of {m.group(1)} has no '{README_END}' line after it")
        blocks.append((m.group(1), line_end + 1, e))
        pos = e + len(README_END)
    if not blocks:
        raise ValueError(f"{where}: no '{README_BEGIN}: PATH -->' line followed by a '{README_END}' line "
                         f"around a verdict table")
    return blocks


def _blocks_of(path: Path, text: str, source: str | os.PathLike) -> list[tuple[str, int, int]]:
    """The ledger-table blocks of document ``path`` that name ``source`` (a claims.md)."""
    target = Path(source).resolve()
    blocks = readme_table_blocks(text, str(path))
    mine = [b for b in blocks if (path.parent / b[0]).resolve() == target]
    if not mine:
        raise ValueError(f"{path}: no ledger-table block names {source} (its blocks name: "
                         f"{', '.join(b[0] for b in blocks)})")
    return mine


def check_readme(path: str | os.PathLike, source: str | os.PathLike) -> tuple[str, list[tuple[str, int, int]]]:
    """``path``'s text and its ledger-table blocks naming ``source``; a ValueError when it cannot be read
    or has none."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{p}: cannot read ({e})") from None
    return text, _blocks_of(p, text, source)


def train_time_line(ledger: Mapping[str, Any]) -> str | None:
    """The "Training time of those runs" line of claims.md (and of the README's block), or None when the
    ledger reads no run with a ``done.json``."""
    tt = ledger.get("train_time")
    if not tt or not (tt["runs"] or tt["runs_without_time"]):
        return None
    n, untimed = tt["runs"], tt["runs_without_time"]
    return (f"Training time of those runs: {tt['train_hours']:.1f} hours summed over {n} run{'s' if n != 1 else ''} "
            f"(each run's `wall_time_s` in its `done.json`, resumed processes included; two side by side on 2 "
            f"CPU cores take about half that in wall time)"
            + (f"; {untimed} run{'s have' if untimed != 1 else ' has'} no record." if untimed else "."))


def update_readme(path: str | os.PathLike, ledger: Mapping[str, Any], source: str | os.PathLike) -> bool:
    """Rewrite the verdict table (and the training-time line under it, :func:`train_time_line`) in the
    ledger-table blocks of ``path`` that name ``source`` (the claims.md of ``ledger``), atomically; True
    if it changed. Everything else is kept as it is."""
    from sa4depth.files import write_text_atomic

    text, blocks = check_readme(path, source)
    block = verdict_table(ledger)
    if tt := train_time_line(ledger):
        block += ["", tt]
    new = text
    for _, start, end in reversed(blocks):
        new = new[:start] + "\n".join(block) + "\n" + new[end:]
    if new == text:
        return False
    write_text_atomic(Path(path), new, encoding="utf-8")
    return True


def _comparison_table(comps: Sequence[Mapping[str, Any]]) -> list[str]:
    """A claim's comparisons as a markdown table, with the test images' share of the spread below."""
    lines = ["| metric | a | b | claimed | a (per seed) | b (per seed) | mean diff a-b | ci95 | ci family | outcome "
             "| seeds for a clear interval |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in comps:
        says = "a < b" if m["better"] == "lower" else "a > b"
        av = ", ".join(f"{v:.4g}" for v in m["a_values"])
        bv = ", ".join(f"{v:.4g}" for v in m["b_values"])
        ci = _interval(m["ci95"])
        cf = (f"{_interval(m['ci_family'])} ({100 * m['ci_family_level']:.1f} %)"
              if m["ci_family"] else "n/a")
        name = m["label"] or m["metric"]
        need = m.get("seeds_needed")
        lines.append(f"| {name} | {m['a']} | {m['b']} | {says} | {av} | {bv} | {_fmt(m['mean_diff'])} | {ci} "
                     f"| {cf} | {m['outcome']} | {need if need else '> 100'} |")
    shares = [f"{m['label'] or m['metric']} {100 * m['image_share']['share']:.1f} % of the variance, "
              f"{100 * m['image_share'].get('width_share', math.nan):.1f} % of the interval's width "
              f"({m['image_share']['images']} images)" for m in comps if m.get("image_share")]
    if shares:
        lines += ["", "Spread from the test images (the seed x image interaction of the per-image differences "
                  "over the number of images, as a share of the variance of the per-seed differences: with "
                  "this test set, the most that more test images could take off; the rest is the runs' own; "
                  "an estimate with seeds - 1 degrees of freedom): " + "; ".join(shares) + "."]
    return lines


def pending_text(p: Mapping[str, Any]) -> str:
    """A pending claim's state in words: 'not run yet (6 result files missing)' when none of its result
    files exists, else 'partly run: 2 of 8 comparisons answered (12 result files missing)' (0 of 8 while
    every comparison still lacks a file)."""
    done, missing = len(p.get("comparisons") or []), f"({p['missing']} result files missing)"
    if not done and not p.get("present_files"):
        return f"not run yet {missing}"
    return f"partly run: {done} of {p.get('n_comparisons', '?')} comparisons answered {missing}"


def _claim_runs_and_comparisons(claim: dict, comparisons: list[dict]) -> list[str]:
    """A claim's "Trained at" and "Learning curves" lines and its comparison table (finished or pending)."""
    lines = []
    if claim.get("trained_at"):
        lines += [f"Trained at: {trained_at_text(claim['trained_at'])}; {claim['pairing']}.", ""]
    if claim.get("budget"):
        lines += [f"Learning curves: {claim['budget']['summary']}.", ""]
    return lines + _comparison_table(comparisons)


def ledger_markdown(ledger: Mapping[str, Any], provenance: Mapping[str, Any] | None = None) -> str:
    lines = ["# Claims ledger", "",
             "Every number below is computed by `sa4depth claims` from the per-seed result files "
             "listed in `claims.json` (copies under `runs/`); nothing is typed by hand.", "",
             "Test: per comparison, the differences a - b paired by seed; `mean diff` and a two-sided "
             "paired-t 95 % interval (`ci95`). The verdict uses the interval Bonferroni-corrected over "
             "the claim's comparisons (`ci family`): a comparison *supports* the claim when that interval "
             "lies on the paper's side of 0, *opposes* it when it lies on the other side; a claim is "
             "**reproduced** when all comparisons support it, **contradicted** when one opposes it, "
             "**inconclusive** otherwise. `seeds for a clear interval`: how many seeds the family interval would "
             "need to exclude 0 if the measured mean and spread of the differences held (a planning figure).", ""]
    if provenance:
        lines += [f"Computed at commit `{provenance.get('git_commit', '?')}` on {provenance.get('created', '?')}.", ""]
    if "trained_at" in ledger:
        counts = ledger["trained_at"]
        notes = []
        if len(counts) == 1 and next(iter(counts)) not in _UNKNOWN:
            notes.append("one commit")
        if UNRECORDED in counts:
            notes.append(f"{UNRECORDED}: the run's done.json names no commit (trained before the trainer "
                         f"recorded one, or outside a git checkout)")
        if RUN_NOT_FOUND in counts:
            notes.append(f"{RUN_NOT_FOUND}: neither the evaluation nor a run directory records it")
        if any("+" in k for k in counts):
            notes.append("`a+b`: a run resumed under other code, its commits in order")
        lines += ["Runs read, by the commit that trained them (as the evaluations or the runs' `done.json` "
                  f"record it): {trained_at_text(counts)}" + (f" ({'; '.join(notes)})." if notes else "."), ""]
    if tt := train_time_line(ledger):
        lines += [tt, ""]
    rule = ledger.get("budget_rule")
    if rule:
        lines += [f"Learning curves: each compared row's validation `{rule['column']}` (the monitor's, in the runs' "
                  f"`log.csv`), mean over the claim's seeds, with its least-squares slope in {rule['window']}-step "
                  f"windows. A row is *past the knee* when its last window's slope is at most "
                  f"{rule['knee_ratio']:g} of its steepest window's; a seed *did not learn* when its last value is "
                  f"at least {rule['untrained_ratio']:g} of its first, and a row did not learn when every seed did not "
                  f"(or its mean curve falls in no window). Windows end at the last step; a curve shorter than two "
                  f"windows is *unknown*. "
                  f"A verdict on rows still falling says what the budget shows, not where the rows end.", ""]
    lines += verdict_table(ledger)
    for c in ledger["claims"]:
        lines += ["", f"## {c['id']} ({c['table']}): {c['verdict']}", "", f"> {c['statement']}", ""]
        if c["substitutions"]:
            lines += ["Substitutions: " + "; ".join(c["substitutions"]), ""]
        if c.get("note"):
            lines += [c["note"], ""]
        lines += _claim_runs_and_comparisons(c, c["comparisons"])
    for p in ledger.get("pending", []):
        done = p.get("comparisons") or []
        lines += ["", f"## {p['id']} ({p['table']}): {pending_text(p)}", "", f"> {p['statement']}", "",
                  f"{p['missing']} result files are missing (claims.json's `missing_files` names them; the runs "
                  f"they come from are listed below); "
                  f"`snakemake --profile local claims` trains and evaluates them, resuming what exists"
                  + (f"; the {len(p['present_files'])} present are copied under `runs/`."
                     if p.get("present_files") else ".")]
        if done:
            lines += ["", f"Answered so far: the {len(done)} of its {p['n_comparisons']} comparisons whose runs have "
                      f"all finished, each at the family level of the whole claim (so each reads as it will in the "
                      f"finished ledger); the claim has no verdict until every comparison is in.", ""]
            lines += _claim_runs_and_comparisons(p, done)
        if p.get("missing_runs"):
            n = sum(len(r["seeds"]) for r in p["missing_runs"])
            lines += ["", f"Runs without their results ({n}): " + "; ".join(
                f"`{r['exp']}` seed{'s' if len(r['seeds']) > 1 else ''} {_ranges(r['seeds'])}"
                for r in p["missing_runs"]) + "."]
    return "\n".join(lines) + "\n"


def write_ledger(ledger: dict[str, Any], out_dir: str | Path,
                 provenance: Mapping[str, Any] | None = None) -> list[Path]:
    """Write ``claims.json`` / ``claims.md`` atomically; copy every source file under
    ``out_dir/runs/<data>/<scale>/<exp>/seed<N>/``, with each compared run's ``log.csv``,
    ``done.json`` and ``config.yaml`` (the learning curve, what was trained, its commit and time), so
    the ledger and its inputs are committed together and the ledger can be rebuilt from the copies
    (:class:`RunRoots`); a pending claim's results that exist already are copied the same way, so a
    claim trained over several machines keeps what each one finished."""
    from sa4depth.files import copy_atomic, write_json_atomic, write_text_atomic

    # two `claim_<ID>` jobs may write the same ledger at once (same inputs, same bytes): per-process
    # temporary names, so that neither renames the other's file away
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    copied: dict[str, Path] = {}

    def copy_once(src: Path, dst: Path) -> Path:
        """Copy ``src`` to ``dst`` unless it was copied already; where its copy is."""
        if str(src) not in copied:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not (dst.exists() and dst.samefile(src)):  # a ledger rebuilt from its own copies
                copy_atomic(src, dst, unique=True)
            copied[str(src)] = dst
        return copied[str(src)]
    for c in (*ledger["claims"], *ledger.get("pending", [])):
        for m in c.get("comparisons", []):  # a pending claim's: those answered already
            for side in ("a", "b"):
                exp = m[side]
                rel_files = []
                for s, f in zip(m["seeds"], m[f"{side}_files"]):
                    src = Path(f)
                    dst_dir = out / "runs" / c["data"] / c["scale"] / exp / f"seed{s}"
                    name = "done.json" if m["eval"] == TRAIN_EVAL else src.name
                    dst = copy_once(src, dst_dir / name)
                    if m["eval"] in (TRAIN_EVAL, TRAIN_LOG):  # the learning curve and the run's config
                        for extra in ("log.csv", "config.yaml"):
                            if extra != src.name and (src.parent / extra).is_file():
                                copy_once(src.parent / extra, dst_dir / extra)
                    rel_files.append(str(dst.relative_to(out)))
                m[f"{side}_files"] = rel_files
        for name, row in (c.get("budget") or {}).get("rows", {}).items():
            rel_files = []
            for f in row.get("log_files", []):
                src = Path(f)  # <runs>/<data>/<scale>/<exp>/seed<N>/log.csv
                dst = out / "runs" / c["data"] / c["scale"] / src.parent.parent.name / src.parent.name / src.name
                rel_files.append(str(copy_once(src, dst).relative_to(out)))
                for extra in ("done.json", "config.yaml"):  # what was trained, its commit and time
                    if (src.parent / extra).is_file():
                        copy_once(src.parent / extra, dst.parent / extra)
            row["log_files"] = rel_files
    for p in ledger.get("pending", []):
        rel_files = []
        for r in p.get("present_files", []):
            src, done = Path(r["file"]), Path(r["done"])
            dst = copy_once(src, committed_copy(src, out / "runs"))  # <data>/<scale>/<exp>/seed<N>/<name>
            rel_files.append(str(dst.relative_to(out)))
            for extra in ("done.json", "log.csv", "config.yaml"):
                if (done.parent / extra).is_file():
                    copy_once(done.parent / extra, dst.parent / extra)
        if "present_files" in p:
            p["present_files"] = rel_files
    if provenance:
        ledger = {"provenance": dict(provenance), **ledger}
    js = out / "claims.json"
    write_json_atomic(js, ledger, unique=True)
    md = out / "claims.md"
    write_text_atomic(md, ledger_markdown(ledger, provenance), encoding="utf-8", unique=True)
    return [js, md, write_ledger_figure(ledger, out / LEDGER_FIGURE)]


#: the forest plot of a ledger's comparisons, beside its claims.json (:func:`write_ledger`)
LEDGER_FIGURE = "fig_ledger.png"


def write_ledger_figure(ledger: Mapping[str, Any], out: str | Path) -> Path:
    """The ledger's comparisons as one forest plot (:func:`sa4depth.report.figures.plot_ledger`), with
    its data, scale and seeds in the footer."""
    from sa4depth.report.figures import plot_ledger
    from sa4depth.report.tables import data_caption

    claims = [*ledger.get("claims", []), *(p for p in ledger.get("pending", [])
                                           if p.get("comparisons") and "data" in p and "scale" in p)]
    caption = None
    if claims:
        caption = data_caption(", ".join(dict.fromkeys(c["data"] for c in claims)),
                               ", ".join(dict.fromkeys(c["scale"] for c in claims)),
                               range(max(c["seeds"] for c in claims)))
    return plot_ledger(ledger, out, title="Claims ledger: each comparison's paired difference over seeds",
                       caption=caption, unique=True)
