"""Issue #15: tables and figures read like the paper (fabricated result files; no torch, no training).

Set SA4DEPTH_FIG_REVIEW=/some/dir to keep the figures these tests draw (for a look by eye).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from sa4depth import pipeline as P
from sa4depth.report.tables import (DECIMALS, NumberFormat, build_table, column_format, data_caption, same_device,
                                    to_csv, to_html, to_json, to_latex, to_markdown, write_table)

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params"
FORMATS = ("csv", "md", "tex", "json", "html")


# ----------------------------------------------------------------------------- fabricated results
def _write(root: Path, exp: str, seed: int, eid: str, metrics: dict, scale: str = "tiny", **top) -> Path:
    p = P.metrics_path("synthetic", scale, exp, seed, eid, root)
    p.parent.mkdir(parents=True, exist_ok=True)
    if eid == "infer":   # `sa4depth bench infer`: numbers and device at the top level
        obj = {"benchmark": "infer", **metrics, "device": "cpu", "device_name": "x86_64", "threads": 2,
               "git": {"commit": "abc", "dirty": False}, **top}
    else:
        obj = {"evaluation": eid, "metrics": metrics, **top,
               "provenance": {"git": {"commit": "abc", "dirty": False}, "data_hash": "d", "device": "cpu",
                              "seed": seed, "config": {"meta": {"data": "synthetic", "scale": scale}, "seed": seed}}}
    p.write_text(json.dumps(obj))
    return p


def _fill_table(name: str, root: Path, seeds=(0,), value=None, infer: dict | None = None):
    """Every scheduled row of a real table gets result files: ``value(row, column, seed)``."""
    spec = P.load_table(name, PARAMS)
    for row in P.scheduled_rows(spec):
        for s in seeds:
            per_eval: dict[str, dict] = {}
            for c in spec.columns:
                eid = P.eval_id(spec.evals[spec.eval_for(row, c)])
                per_eval.setdefault(eid, {})[c.key] = value(row, c, s) if value else 0.1 + 0.01 * s
            for eid, m in per_eval.items():
                _write(root, row.experiment, s, eid, m, **((infer or {}) if eid == "infer" else {}))
    return spec


def _all_formats(res) -> dict[str, str]:
    return {"md": to_markdown(res), "tex": to_latex(res), "csv": to_csv(res), "html": to_html(res),
            "json": json.dumps(to_json(res), ensure_ascii=False)}


def _csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO("".join(l for l in text.splitlines(True) if not l.startswith("#")))))


def _md_row(md: str, name: str) -> list[str]:
    line = next(l for l in md.splitlines() if l.startswith(f"| {name} |"))
    return [x.strip() for x in line.strip("|").split(" | ")]


def _md_head(md: str) -> list[str]:
    line = next(l for l in md.splitlines() if l.startswith("| No. |"))
    return [x.strip() for x in line.strip("|").split(" | ")]


# ----------------------------------------------------------------------------- 1. Table I: GT / n.a.
def test_table_i_gt_rows_show_gt_and_na_not_the_meaningless_variance(tmp_path):
    root = tmp_path / "m"

    def value(row, col, s):
        if col.key == "pose_scale_var" and row.experiment in ("t1_gt_scaled", "t1_gt_direct"):
            return 105201.24185088484      # what the scale evaluation writes for a GT pose
        return {"abs_rel": 0.48, "a1": 0.35, "depth_scale_var": 4.1, "pose_scale_var": 2.5}[col.key]

    spec = _fill_table("table_i", root, value=value)
    res = build_table(spec, "synthetic", "tiny", [0], metrics_root=root, runs_root=tmp_path / "runs")
    out = _all_formats(res)
    for fmt, text in out.items():
        assert "105201" not in text, fmt
    md = out["md"]
    head = _md_head(md)
    i = head.index("Var(pose scale) ↓")
    for name in ("r2_gt_scaled", "r3_gt_direct"):
        row = _md_row(md, name)
        assert row[i:i + 3] == ["GT", "GT", "n.a."], row
    assert _md_row(md, "r1_self_supervised")[i:i + 3] == ["2.50", "17.00", "-14.50"]
    assert "GT: the pose is the ground truth" in md            # the footnote from params/tables/table_i.yaml
    js = to_json(res)["rows"]["r2_gt_scaled"]["pose_scale_var"]
    assert js["mean"] is None and js["diff"] is None and js["paper"] == "GT" and js["na"] == "GT"
    row = next(r for r in _csv_rows(out["csv"]) if r["row"] == "r3_gt_direct")
    assert row["pose_scale_var"] == "" and row["pose_scale_var_paper"] == "GT" and row["pose_scale_var_diff"] == ""
    assert "GT & GT & n.a." in out["tex"]


def test_word_paper_value_on_a_row_without_results_stays_empty(tmp_path):
    spec = P.load_table("table_i", PARAMS)
    res = build_table(spec, "synthetic", "tiny", [0], metrics_root=tmp_path / "none", allow_missing=True)
    md = to_markdown(res)
    i = _md_head(md).index("Var(pose scale) ↓")
    assert _md_row(md, "r2_gt_scaled")[i:i + 3] == ["", "GT", ""]


# ----------------------------------------------------------------------------- 2. Table VI: FPS per device
def test_table_vi_fps_shows_device_and_no_cross_device_difference(tmp_path):
    root = tmp_path / "m"
    spec = _fill_table("table_vi", root, value=lambda r, c, s: 11.06 if c.key == "fps" else 0.5)
    res = build_table(spec, "synthetic", "tiny", [0], metrics_root=root, runs_root=tmp_path / "runs")
    out = _all_formats(res)
    md = out["md"]
    head = _md_head(md)
    i = head.index("FPS ↑")
    assert head[i:i + 4] == ["FPS ↑", "device", "paper", "diff"]
    r1 = _md_row(md, "r01_md2_50")
    assert r1[i:i + 4] == ["11", "cpu (x86_64, 2 threads)", "61 (NVIDIA T4)", "n.a. (other device)"]
    for rr in res.rows:   # no row diffs a CPU FPS against the T4's 61
        if rr.status == "run":
            assert _md_row(md, rr.row.name)[i + 3] == "n.a. (other device)"
            assert rr.cells["fps"].diff is None
    assert "the paper's values were measured on NVIDIA T4" in md
    js = to_json(res)["rows"]["r01_md2_50"]["fps"]
    assert js["diff"] is None and js["paper"] == 61 and js["paper_device"] == "NVIDIA T4"
    assert js["device"] == "cpu (x86_64, 2 threads)" and "not computed" in js["diff_note"]
    row = next(r for r in _csv_rows(out["csv"]) if r["row"] == "r01_md2_50")
    assert row["fps_diff"] == "" and row["fps_device"] == "cpu (x86_64, 2 threads)"
    assert row["fps_paper"] == "61" and row["fps_paper_device"] == "NVIDIA T4"
    # the depth columns still compare with the paper
    assert js is not None and to_json(res)["rows"]["r01_md2_50"]["abs_rel"]["diff"] == pytest.approx(0.5 - 0.086)


def test_table_vi_fps_difference_only_on_the_papers_device(tmp_path):
    root = tmp_path / "m"
    spec = _fill_table("table_vi", root, value=lambda r, c, s: 64.0 if c.key == "fps" else 0.5,
                       infer={"device": "cuda", "device_name": "Tesla T4"})
    res = build_table(spec, "synthetic", "tiny", [0], metrics_root=root, runs_root=tmp_path / "runs")
    cell = next(r for r in res.rows if r.row.name == "r06_sa4depth").cells["fps"]
    assert cell.device == "cuda (Tesla T4)" and cell.diff == pytest.approx(3.0)
    md = to_markdown(res)
    i = _md_head(md).index("FPS ↑")
    assert _md_row(md, "r06_sa4depth")[i:i + 4] == ["64", "cuda (Tesla T4)", "61 (NVIDIA T4)", "+3"]
    assert same_device("cuda (NVIDIA T4)", "NVIDIA T4") and not same_device("cuda (NVIDIA H200)", "NVIDIA T4")
    assert not same_device("cpu (x86_64, 16 threads)", "NVIDIA T4")


# ----------------------------------------------------------------------------- 3. Table II: flagged Scale Std
def test_table_ii_flagged_scale_std_paper_values_carry_a_marker_in_every_format(tmp_path):
    root = tmp_path / "m"
    spec = _fill_table("table_ii", root, value=lambda r, c, s: 0.5)
    flag = yaml.safe_load((PARAMS / "tables" / "table_ii.yaml").read_text(encoding="utf-8"))["notes"]["columns"]["scale_std"]["paper_flag"]
    assert "misplaced" in flag
    res = build_table(spec, "synthetic", "tiny", [0], metrics_root=root, runs_root=tmp_path / "runs")
    out = _all_formats(res)
    md = out["md"]
    i = _md_head(md).index("Scale Std ↓")
    assert _md_row(md, "md2_18_ours")[i + 1] == "0.09†"
    assert _md_row(md, "hybrid_depth")[i + 1] == "3.56†" and _md_row(md, "monovit_v_ours")[i + 1] == "0.05†"
    assert _md_row(md, "md2_18_ours")[i + 4] == "0.087"                 # other columns carry no marker
    for fmt in ("md", "html", "csv", "json"):
        assert "†" in out[fmt] and "misplaced by the extraction" in out[fmt], fmt
    assert r"0.09$^{\dagger}$" in out["tex"] and "misplaced by the extraction" in out["tex"]
    row = next(r for r in _csv_rows(out["csv"]) if r["row"] == "md2_18_ours")
    assert row["scale_std_paper"] == "0.09" and "misplaced" in row["scale_std_paper_flag"]
    assert "misplaced" in to_json(res)["rows"]["hybrid_depth"]["scale_std"]["paper_flag"]
    assert "paper_flag" not in to_json(res)["rows"]["md2_18"]["scale_std"]   # no paper value, no flag


# ----------------------------------------------------------------------------- 4. arrows
def test_arrows_readable_in_md_html_tex_and_machine_keys_in_csv_json(tmp_path):
    root = tmp_path / "m"
    spec = _fill_table("table_vii", root)
    res = build_table(spec, "synthetic", "tiny", [0], metrics_root=root, runs_root=tmp_path / "runs")
    out = _all_formats(res)
    assert "Abs Rel ↓" in out["md"] and "d<1.25 ↑" in out["md"]
    assert "Abs Rel ↓" in out["html"] and "d&lt;1.25 ↑" in out["html"]
    assert r"Abs Rel $\downarrow$" in out["tex"] and r"d<1.25 $\uparrow$" in out["tex"]
    for fmt in ("md", "html", "tex"):
        assert not re.search(r"(Abs Rel|d<1\.25) [v^]", out[fmt]), fmt
    head = next(l for l in out["csv"].splitlines() if l.startswith("row,"))
    assert head.split(",")[8:12] == ["abs_rel", "abs_rel_std", "abs_rel_paper", "abs_rel_diff"]
    assert "↓" not in head and "↑" not in head
    assert "# Columns: abs_rel = Abs Rel (lower is better); a1 = d<1.25 (higher is better)" in out["csv"]
    js = to_json(res)
    assert [(c["key"], c["better"]) for c in js["columns"]] == [("abs_rel", "lower"), ("a1", "higher")]
    # the keys other tools read are unchanged
    assert set(js["rows"]["s000_md2_18"]["abs_rel"]) >= {"mean", "std", "n", "paper", "diff"}


# ----------------------------------------------------------------------------- 5. one precision rule per column
def test_number_format_rule():
    f3, f0 = NumberFormat(3), NumberFormat(0)
    assert f3(0.1234) == "0.123" and f3(0.09) == "0.090" and f3(-0.0001, sign=True) == "+0.000"
    assert f0(61) == "61" and f0(11.6) == "12" and f0(3.0, sign=True) == "+3"
    sci = NumberFormat(2, True)
    assert sci(122.925) == "1.23e+02" and sci(0.00029) == "2.90e-04" and sci(-0.11, sign=True) == "-1.10e-01"
    assert DECIMALS["abs_rel"] == DECIMALS["rmse"] == DECIMALS["a1"] == DECIMALS["sq_rel"] == 3
    assert DECIMALS["scale_std"] == DECIMALS["depth_scale_var"] == 2 and DECIMALS["fps"] == 0


def test_precision_is_per_column_and_the_same_for_ours_and_the_paper(tmp_path):
    root = tmp_path / "m"
    vals = {"t1_self_supervised": 122.92542, "t1_gt_scaled": 0.00028973, "t1_gt_direct": 77.753,
            "t1_pose_supervised": 0.0032, "t1_velocity_supervised": 0.588}

    def value(row, col, s):
        if col.key == "depth_scale_var":
            return vals[row.experiment]
        return {"abs_rel": 0.48073, "a1": 0.3521, "pose_scale_var": 253.797}[col.key] + 0.002 * s

    spec = _fill_table("table_i", root, seeds=(0, 1), value=value)
    res = build_table(spec, "synthetic", "tiny", [0, 1], metrics_root=root, runs_root=tmp_path / "runs")
    cols = {c.key: column_format(res, c) for c in spec.columns}
    assert cols["depth_scale_var"].scientific and not cols["pose_scale_var"].scientific
    assert not cols["abs_rel"].scientific and cols["abs_rel"].decimals == 3
    md = to_markdown(res)
    head = _md_head(md)
    r1 = _md_row(md, "r1_self_supervised")
    i = head.index("Var(depth scale) ↓")
    assert r1[i:i + 3] == ["1.23e+02 ± 0.00e+00", "4.33e+00", "+1.19e+02"]   # ours, std, paper, diff: one notation
    assert _md_row(md, "r2_gt_scaled")[i].startswith("2.90e-04 ± ")        # not "0.000"
    j = head.index("Abs Rel ↓")
    assert r1[j:j + 3] == ["0.482 ± 0.001", "0.165", "+0.317"]            # 3 decimals, std included
    k = head.index("Var(pose scale) ↓")
    assert r1[k:k + 3] == ["253.80 ± 0.00", "17.00", "+236.80"]           # 2 decimals, as the paper's 17.00
    assert "Var(depth scale): scientific notation for the whole column" in md
    assert (r"$1.23\times10^{2}$ $\pm$ $0.00\times10^{0}$ & $4.33\times10^{0}$ & $+1.19\times10^{2}$"
            in to_latex(res))
    notation = {c["key"]: c["notation"] for c in to_json(res)["columns"]}
    assert notation == {"abs_rel": "fixed", "a1": "fixed", "depth_scale_var": "scientific", "pose_scale_var": "fixed"}
    # csv keeps full precision
    row = next(r for r in _csv_rows(to_csv(res)) if r["row"] == "r2_gt_scaled")
    assert float(row["depth_scale_var"]) == pytest.approx(0.00028973)


# ----------------------------------------------------------------------------- 6. whole "Paper values" sentence
@pytest.mark.parametrize("name", ["table_iv", "table_v", "table_viii"])
def test_paper_values_unavailable_sentence_is_whole(tmp_path, name):
    spec = P.load_table(name, PARAMS)
    res = build_table(spec, "synthetic", "tiny", [0], metrics_root=tmp_path / "none", allow_missing=True)
    line = next(h for h in res.header if h.startswith("Paper values:"))
    assert line == f"Paper values: unavailable ({spec.paper_note})."
    assert line.count("(") == line.count(")")
    out = _all_formats(res)
    for fmt in ("md", "csv", "html"):
        assert spec.paper_note + ")." in out[fmt].replace("&#x27;", "'"), fmt
    assert json.loads(out["json"])["header"][3] == line


# ----------------------------------------------------------------------------- 8. data / scale / seeds
def test_every_table_format_names_data_scale_and_seeds(tmp_path):
    root = tmp_path / "m"
    spec = _fill_table("table_vii", root, seeds=(0, 1))
    res = build_table(spec, "synthetic", "tiny", [0, 1], metrics_root=root, runs_root=tmp_path / "runs")
    cap = "data: synthetic, scale: tiny, seeds: 0, 1"
    assert data_caption("synthetic", "tiny", [0, 1]) == cap
    paths = write_table(res, tmp_path / "out", FORMATS)
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex", ".json", ".html"]
    for p in paths:
        assert cap in p.read_text(encoding="utf-8"), p
    assert paths[2].read_text(encoding="utf-8").isascii() and paths[3].read_text(encoding="utf-8").isascii()
    assert json.loads(paths[3].read_text())["header"][1] == cap


def test_table_cli_writes_html_on_request(tmp_path, monkeypatch):
    from sa4depth.commands import table as T

    root = tmp_path / "m"
    _fill_table("table_vii", root)
    ap = argparse.ArgumentParser()
    T.add_arguments(ap)
    args = ap.parse_args(["table_vii", "--scale", "tiny", "--metrics", str(root), "--runs", str(tmp_path / "runs"),
                          "--out-dir", str(tmp_path / "out"), "--formats", "md", "html", "--quiet"])
    assert T.run(args) == 0
    html = (tmp_path / "out" / "table_vii.html").read_text(encoding="utf-8")
    assert "<table>" in html and "Abs Rel ↓" in html and "data: synthetic, scale: tiny, seeds: 0" in html


# ----------------------------------------------------------------------------- figures
@pytest.fixture()
def figdir(tmp_path) -> Path:
    d = Path(os.environ.get("SA4DEPTH_FIG_REVIEW") or tmp_path / "figs")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture()
def captured(monkeypatch):
    """Keep the matplotlib figure each plot function saves (it is still written to disk)."""
    from sa4depth.report import figures as F

    figs = []
    orig = F.save_figure

    def save(fig, out, dpi=120):
        figs.append(fig)
        return orig(fig, out, dpi)

    monkeypatch.setattr(F, "save_figure", save)
    return figs


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.texts]


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _gt(n: int, curve: float) -> np.ndarray:
    T = np.tile(np.eye(4), (n, 1, 1))
    t = np.linspace(0, 1, n)
    x, z = 60 * np.sin(curve * t), 200 * t
    for i in range(n):
        T[i, :3, :3] = _rot_y(curve * t[i])
        T[i, :3, 3] = (x[i], 0.0, z[i])
    return T


def _similar(gt: np.ndarray, s: float, yaw: float, shift) -> np.ndarray:
    """A trajectory that is exactly a similarity transform of the GT (what Sim(3) alignment undoes)."""
    S = np.eye(4)
    S[:3, :3] = _rot_y(yaw)
    S[:3, 3] = shift
    out = np.einsum("ij,njk->nik", S, gt)
    out[:, :3, 3] = (S[:3, :3] @ (s * gt[:, :3, 3]).T).T + np.asarray(shift)
    return out


def _odometry_eval(root: Path, exp: str, gts: dict, ests: dict, relocated: bool = False) -> Path:
    """An odometry-eval JSON as `sa4depth evaluate odometry --run` writes it: KITTI pose files in
    `<out stem>_traj/`, GT pose files named in provenance.data_files (relative paths)."""
    from sa4depth.evaluate.odometry import write_kitti_poses

    d = P.metrics_path("synthetic", "smoke", exp, 0, "odometry", root).parent
    tdir = d / "odometry_traj"
    files = []
    for seq, gt in gts.items():
        f = root / "data" / "kitti_odom" / "poses" / f"{seq}.txt"
        if not f.is_file():
            write_kitti_poses(f, gt)
        files.append(str(f))
        write_kitti_poses(tdir / f"{seq}.txt", ests[seq])
    obj = {"evaluation": "odometry",
           "sequences": {s: {"t_err": 1.5 + i, "r_err": 0.5, "num_frames": len(gts[s])} for i, s in enumerate(gts)},
           "plots": {}, "trajectories": "/nonexistent/moved" if relocated else str(tdir),
           "provenance": {"data_files": files, "seed": 0, "device": "cpu",
                          "config": {"meta": {"data": "synthetic", "scale": "smoke"}, "seed": 0}}}
    p = d / "odometry.json"
    p.write_text(json.dumps(obj))
    return p


def test_sim3_alignment_recovers_a_similar_trajectory():
    from sa4depth.report import figures as F

    gt = _gt(50, 1.2)
    est = _similar(gt, 0.3, 0.7, (5.0, 1.0, -3.0))
    xyz = F.align_sim3(gt, est)
    assert np.abs(xyz - gt[:, :3, 3]).max() < 1e-8
    xyz = F.align_sim3(gt, _similar(gt, 0.3, 0.0, (0.0, 0.0, 0.0)))   # a pure scale is undone exactly
    assert np.abs(xyz - gt[:, :3, 3]).max() < 1e-8
    with pytest.raises(ValueError, match="does not move"):
        F.align_sim3(gt, np.tile(np.eye(4), (50, 1, 1)))


def test_fig6_trajectories_drawn_from_the_evaluations_pose_files(tmp_path, figdir, captured):
    from sa4depth.commands import figure as FC
    from sa4depth.report import figures as F

    gts = {"09": _gt(80, 2.5), "10": _gt(60, 0.8)}
    rng = np.random.default_rng(0)

    def noisy(gt, s):
        e = _similar(gt, s, 0.4, (2.0, 0.0, 1.0))
        e[:, :3, 3] += rng.normal(scale=0.5, size=(len(gt), 3)) * s
        return e

    a = _odometry_eval(tmp_path, "odom_md2_50", gts, {k: noisy(v, 0.3) for k, v in gts.items()})
    b = _odometry_eval(tmp_path, "odom_sa4depth_md2_50", gts, {k: noisy(v, 0.5) for k, v in gts.items()},
                       relocated=True)   # recorded folder gone: <stem>_traj next to the JSON is used
    got = F.odometry_trajectories(b)
    assert list(got) == ["09", "10"] and got["09"][0].shape == (80, 4, 4) and got["10"][2]["t_err"] == 2.5
    out = figdir / "fig6_trajectories.png"
    ap = argparse.ArgumentParser()
    FC.add_arguments(ap)
    args = ap.parse_args(["trajectories", "--json", f"Md2-50={a}", "--json", f"Md2-50 + SA4Depth={b}",
                          "--out", str(out)])
    assert FC.run(args) == 0 and out.stat().st_size > 10_000
    fig = captured[-1]
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["sequence 09", "sequence 10"]          # one axes per sequence
    for ax in axes:
        assert len(ax.get_lines()) == 1 + 1 + 2          # GT, its start marker, both methods overlaid
        assert ax.get_aspect() == 1.0 and ax.get_xlabel() == "x [m]" and ax.get_ylabel() == "z [m]"
        assert not ax.get_legend() and len(ax.get_xticks()) <= 8
        gt_line = ax.get_lines()[0]
        assert gt_line.get_linestyle() == "--"
    assert len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["GT", "Md2-50", "Md2-50 + SA4Depth"]
    assert "data: synthetic, scale: smoke, seeds: 0" in _texts(fig)
    assert "Fig. 6" in fig._suptitle.get_text()
    # the aligned estimate lies on the GT (noise only), in the KITTI x-z plane
    seq09 = axes[0].get_lines()
    gx, gz = seq09[0].get_data()
    ex, ez = seq09[2].get_data()
    assert np.allclose(gx, gts["09"][:, 0, 3]) and np.allclose(gz, gts["09"][:, 2, 3])
    assert np.abs(np.asarray(ex) - gx).max() < 5 and np.abs(np.asarray(ez) - gz).max() < 5


def test_fig6_relative_pred_poses_are_chained_and_gt_mismatch_is_an_error(tmp_path):
    from sa4depth.evaluate.odometry import write_kitti_poses
    from sa4depth.report import figures as F

    gt = _gt(30, 1.0)
    rel = np.stack([np.linalg.inv(gt[i + 1]) @ gt[i] for i in range(len(gt) - 1)])   # T_{i+1<-i}
    write_kitti_poses(tmp_path / "gt.txt", gt)
    write_kitti_poses(tmp_path / "rel.txt", rel)
    p = tmp_path / "odometry_09.json"   # `--pred-poses rel.txt --relative --gt-poses gt.txt`
    p.write_text(json.dumps({"sequences": {"09": {"t_err": 0.0, "r_err": 0.0}}, "trajectories": str(tmp_path / "rel.txt"),
                             "provenance": {"data_files": [str(tmp_path / "gt.txt")]}}))
    (g, e, _), = F.odometry_trajectories(p).values()
    assert np.allclose(e, gt, atol=1e-9)
    p.write_text(json.dumps({"sequences": {"09": {}}, "trajectories": str(tmp_path / "missing"),
                             "provenance": {"data_files": [str(tmp_path / "gt.txt")]}}))
    with pytest.raises(FileNotFoundError, match="estimated trajectory not found"):
        F.odometry_trajectories(p)


def test_fig1_histogram_has_legend_and_integer_counts(tmp_path, figdir, captured):
    from sa4depth.commands import figure as FC

    rng = np.random.default_rng(1)
    paths = []
    for exp, spread in (("md2_50", 0.15), ("sa4depth_md2_50", 0.05)):
        r = 1.0 + spread * rng.normal(size=40)
        paths.append(_write(tmp_path, exp, 0, "depth_eigen_benchmark", {"abs_rel": 0.1}, scale="smoke",
                            per_image=[{"ratio": float(x), "abs_rel": 0.1} for x in r]))
    out = figdir / "fig1_scale_factors.png"
    ap = argparse.ArgumentParser()
    FC.add_arguments(ap)
    args = ap.parse_args(["scale-factors", "--json", f"Md2-50={paths[0]}", "--json", f"Md2-50 + SA4Depth={paths[1]}",
                          "--out", str(out)])
    assert FC.run(args) == 0 and out.is_file()
    fig = captured[-1]
    ax, axh = fig.axes
    assert [t.get_text() for t in axh.get_legend().get_texts()] == ["Md2-50", "Md2-50 + SA4Depth"]
    ticks = [t for t in axh.get_yticks() if axh.get_ylim()[0] <= t <= axh.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert "count" in axh.get_ylabel()
    assert "data: synthetic, scale: smoke, seeds: 0" in _texts(fig)


def test_fig10_confidence_has_a_colour_bar(tmp_path, figdir, captured):
    from sa4depth.report import figures as F

    rng = np.random.default_rng(2)
    h, w = 24, 80
    img = np.stack([np.tile(np.linspace(0, 1, w), (h, 1))] * 3, -1)
    feats = [rng.normal(size=(8, h, w)) for _ in range(2)]
    conf = [np.tile(np.linspace(0, 1, w), (h, 1)), np.tile(np.linspace(1, 0, w), (h, 1))]
    F.plot_features([img, img[:, ::-1]], feats, conf, figdir / "fig10_features.png",
                    caption="data: synthetic, scale: smoke, seeds: 0", title="feature net (Fig. 10)")
    fig = captured[-1]
    assert len(fig.axes) == 7                       # 2 x 3 panels + the colour bar
    cbar = fig.axes[-1]
    assert cbar.get_ylabel() == "confidence" and cbar.get_ylim() == (0.0, 1.0)
    assert "data: synthetic, scale: smoke, seeds: 0" in _texts(fig)


def test_figure_captions_name_data_scale_and_seeds(tmp_path):
    from sa4depth.report import figures as F

    a = _write(tmp_path, "md2_50", 0, "depth_eigen_benchmark", {"abs_rel": 0.1}, scale="smoke")
    b = _write(tmp_path, "md2_50", 2, "depth_eigen_benchmark", {"abs_rel": 0.1}, scale="smoke")
    assert F.source_caption([a, b]) == "data: synthetic, scale: smoke, seeds: 0, 2"
    # a file without provenance (bench infer): from the path layout <data>/<scale>/<exp>/seed<N>
    c = P.metrics_path("real", "small", "md2_50", 3, "infer", tmp_path)
    c.parent.mkdir(parents=True)
    c.write_text(json.dumps({"fps": 1.0}))
    assert F.source_info(c) == {"data": "real", "scale": "small", "seed": 3}
    # a run directory: its config.yaml
    rd = tmp_path / "elsewhere" / "run"
    rd.mkdir(parents=True)
    (rd / "config.yaml").write_text(yaml.safe_dump({"seed": 4, "meta": {"data": "synthetic", "scale": "tiny"}}))
    assert F.source_caption([rd]) == "data: synthetic, scale: tiny, seeds: 4"
    assert F.source_caption([tmp_path / "nothing.json"]) == "data: ?, scale: ?, seeds: ?"


def test_monitor_and_montage_carry_the_caption(tmp_path, figdir, captured):
    from sa4depth.report import figures as F

    steps = np.arange(0, 100, 10.0)
    run = {"step": steps, "abs_rel": 0.5 - steps / 400, "damping": np.full_like(steps, 0.1)}
    F.plot_monitor({"a": [run]}, tmp_path / "mon.png", "monitor", caption="data: synthetic, scale: tiny, seeds: 0")
    assert "data: synthetic, scale: tiny, seeds: 0" in _texts(captured[-1])
    F.montage([("m", tmp_path / "mon.png")], tmp_path / "m.png", caption="data: x, scale: y, seeds: 0")
    assert "data: x, scale: y, seeds: 0" in _texts(captured[-1])


def test_figures_name_their_layout_whatever_evo_has_set(tmp_path, monkeypatch):
    """Importing evo's plot module turns on constrained layout for every later figure (rcParams);
    each figure names its own layout, so it looks the same with or without evo imported and
    matplotlib warns of no layout change."""
    import warnings

    import matplotlib

    from sa4depth.report import figures as F

    engines = []  # as each figure is drawn (saving with a tight bbox resets the engine after)
    orig = F.save_figure

    def save(fig, out, dpi=120):
        engines.append(type(fig.get_layout_engine()).__name__ if fig.get_layout_engine() else None)
        return orig(fig, out, dpi)

    monkeypatch.setattr(F, "save_figure", save)
    rng = np.random.default_rng(0)
    steps = np.arange(0, 100, 10.0)
    run = {"step": steps, "abs_rel": 0.5 - steps / 400}
    t = np.linspace(0, 1, 6)
    poses = np.tile(np.eye(4), (6, 1, 1))
    poses[:, 0, 3], poses[:, 2, 3] = t, t ** 2
    with matplotlib.rc_context({"figure.constrained_layout.use": True}), warnings.catch_warnings():
        warnings.simplefilter("error")
        F.plot_scale_factors({"a": 1 + 0.1 * rng.normal(size=20)}, tmp_path / "f1.png")
        F.plot_trajectories({"09": poses}, {"m": {"09": poses}}, tmp_path / "f6.png")
        F.plot_monitor({"a": [run]}, tmp_path / "mon.png")
        F.montage([("m", tmp_path / "mon.png")], tmp_path / "m.png")
    assert engines == ["TightLayoutEngine"] * 3 + [None]
