#!/usr/bin/env bash
# CI step: run the paper DAG's Table VI through a real (one-node, local) Slurm cluster.
#
#   workflow/ci/slurm-ci.sh            # start cluster, table_vi via Slurm, checks, preemption check, stop
#   workflow/ci/slurm-ci.sh --no-preempt            # skip the cancel-and-rerun check
#   workflow/ci/slurm-ci.sh --keep                  # keep the work tree (printed) and the cluster
#   workflow/ci/slurm-ci.sh --preempt-only          # only the cancel-and-rerun check (renders its own data)
#
# What it checks (exit 1 on the first failure, with the reason):
#   1. `snakemake --profile slurm table_vi --config scale=tiny` (plus workflow/ci/slurm-local.yaml: this
#      node's partition and per-job resources) finishes and writes results/synthetic-tiny-seeds1/tables/table_vi.{csv,md};
#   2. jobs really went through Slurm: every "submitted with SLURM jobid N" of Snakemake's log is a
#      job that slurmctld knows and that COMPLETED, and every train/evaluate rule ran as such a job;
#   3. preemption: a training job (more steps than `tiny`) is cancelled with `scancel` while it runs;
#      the trainer gets SIGTERM, checkpoints and exits; rerunning the target resumes from the checkpoint
#      (its log says "resuming ... at step K", 0 < K < total), and the final weights equal those of an
#      uninterrupted run of the same target (compared tensor by tensor).
# Everything runs in a scratch copy of the repository (tracked + untracked-not-ignored files), so the
# checkout's runs/ and results/ are not touched; PYTHONPATH points at the copy's src/.
# The cluster is stopped at the end only if this script started it.
#
# Environment: SLURM_CI_WORK (scratch dir, default: a new /tmp/sa4depth-slurm-ci.XXXXXX),
#   SLURM_CI_SCALE (tiny), SLURM_CI_TARGET (table_vi), SLURM_CI_TIMEOUT (seconds per Snakemake run, 900),
#   SLURM_CI_PREEMPT_EXP (md2_18: the experiment trained in the preemption check),
#   SLURM_CI_PREEMPT_STEPS (30: its training steps), VENV (the repository's .venv).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VENV=${VENV:-$REPO/.venv}
SCALE=${SLURM_CI_SCALE:-tiny}
TARGET=${SLURM_CI_TARGET:-table_vi}
TIMEOUT=${SLURM_CI_TIMEOUT:-900}
PRE_EXP=${SLURM_CI_PREEMPT_EXP:-md2_18}
PRE_STEPS=${SLURM_CI_PREEMPT_STEPS:-30}
PREEMPT=1 KEEP=0 MAIN=1
for a in "$@"; do
    case $a in
        --no-preempt) PREEMPT=0 ;;
        --keep) KEEP=1 ;;
        --preempt-only) MAIN=0 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "slurm-ci: unknown argument $a (see --help)" >&2; exit 2 ;;
    esac
done

T0=$SECONDS
say() { echo "slurm-ci [$((SECONDS - T0)) s]: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
[[ -x $VENV/bin/snakemake ]] || fail "$VENV/bin/snakemake not found (make setup, or set VENV)"
export PATH="$VENV/bin:$PATH" MPLBACKEND=Agg
PY="$VENV/bin/python"

# ------------------------------------------------------------------ cluster
CLUSTER="$HERE/slurm-local.sh"
CTLD_LOG="${SLURM_LOCAL_DIR:-/var/tmp/sa4depth-slurm}/log/slurmctld.log"
STARTED=0
if ! "$CLUSTER" status >/dev/null 2>&1; then STARTED=1; fi
cleanup() {
    local rc=$? ids
    # Snakemake cancels its jobs on SIGINT, but not always all of them (seen when the interrupt
    # comes while it submits): cancel every job these runs submitted (finished ones are ignored)
    ids=$(cat "${WORK:-/nonexistent}"/*.log 2>/dev/null | sed -n 's/.*submitted with SLURM jobid \([0-9]*\).*/\1/p' | sort -un)
    if [[ -n $ids ]]; then scancel $ids 2>/dev/null || true; fi
    if ((STARTED)) && ((KEEP == 0)); then "$CLUSTER" stop || true; fi
    if ((KEEP == 0)) && [[ -n ${WORK:-} && -z ${SLURM_CI_WORK:-} ]]; then rm -rf "$WORK"; fi
    ((KEEP)) && say "kept the work tree $WORK and the cluster"
    say "total $((SECONDS - T0)) s, exit $rc"
}
trap cleanup EXIT
"$CLUSTER" start
say "cluster up"

# ------------------------------------------------------------------ scratch copy of the repository
copy_tree() {  # dest
    mkdir -p "$1"
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$REPO" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$1"
    else
        (cd "$REPO" && tar --exclude=./.venv --exclude=./data --exclude=./runs --exclude=./results \
            --exclude=./logs --exclude=./.snakemake --exclude=./.git -cf - .) | tar -xf - -C "$1"
    fi
}
WORK=${SLURM_CI_WORK:-$(mktemp -d /tmp/sa4depth-slurm-ci.XXXXXX)}
copy_tree "$WORK/main"
export PYTHONPATH="$WORK/main/src${PYTHONPATH:+:$PYTHONPATH}"
# the copies have no .git: their jobs record the checkout's commit from these (sbatch passes the
# environment on), as a cluster's staged copy would (README "Slurm")
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
    SA4DEPTH_GIT_COMMIT=$(git -C "$REPO" rev-parse HEAD)
    SA4DEPTH_GIT_DIRTY=$("$PY" -c 'import sys; from sa4depth.evaluate.provenance import git_info
d = git_info(sys.argv[1])["dirty"]; print("" if d is None else str(d).lower())' "$REPO")
    export SA4DEPTH_GIT_COMMIT SA4DEPTH_GIT_DIRTY
    say "jobs record commit $SA4DEPTH_GIT_COMMIT (dirty: $SA4DEPTH_GIT_DIRTY)"
fi
say "work tree $WORK/main"

# Snakemake through Slurm. Status checks every 3 s instead of the profile's 10 s (CI latency only);
# on timeout SIGINT, which makes Snakemake cancel its Slurm jobs (SIGTERM may wait forever).
SM_FAST=(--slurm-init-seconds-before-status-checks 1 --seconds-between-status-checks 3)
smk() {  # dir logfile args...: snakemake in dir, output to logfile; returns its exit code
    local dir=$1 log=$2 rc=0
    shift 2
    (cd "$dir" && exec timeout --signal=INT --kill-after=60 "$TIMEOUT" snakemake "$@") >"$log" 2>&1 || rc=$?
    return $rc
}

# every "submitted with SLURM jobid N" of a Snakemake log must be a job slurmctld knows as COMPLETED
check_slurm_jobs() {  # snakemake log -> checks; prints the number of Slurm jobs
    local log=$1 ids n=0 id state
    ids=$(sed -n 's/.*has been submitted with SLURM jobid \([0-9][0-9]*\).*/\1/p' "$log" | sort -un)
    [[ -n $ids ]] || fail "no 'submitted with SLURM jobid' line in $log: nothing ran through Slurm"
    for id in $ids; do
        state=$(scontrol -o show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
        # a job older than MinJobAge is purged from slurmctld's memory: its log still has the exit
        if [[ -z $state ]] && grep -q "_job_complete: JobId=$id WEXITSTATUS 0\$" "$CTLD_LOG" 2>/dev/null; then
            state=COMPLETED
        fi
        [[ -n $state ]] || fail "Slurm job $id (from $log) unknown to slurmctld (and not in $CTLD_LOG)"
        [[ $state == COMPLETED ]] || fail "Slurm job $id is $state, not COMPLETED"
        n=$((n + 1))
    done
    echo "$n"
}

# ------------------------------------------------------------------ 1. the target through Slurm
if ((MAIN)); then
T1=$SECONDS
touch "$WORK/main.started"   # the runs this invocation trains are newer (a reused SLURM_CI_WORK keeps older ones)
rc=0
smk "$WORK/main" "$WORK/main.log" --profile slurm "$TARGET" --config scale="$SCALE" \
    --configfile workflow/ci/slurm-local.yaml "${SM_FAST[@]}" || rc=$?
if ((rc != 0)); then
    grep -E -A12 "^Error in rule|Exception|rror:" "$WORK/main.log" | head -60 >&2 || true
    fail "snakemake --profile slurm $TARGET exited $rc (log: $WORK/main.log)"
fi
say "$TARGET through Slurm: $((SECONDS - T1)) s"

# ------------------------------------------------------------------ 2. it really went through Slurm
cd "$WORK/main"
# tables of a setting other than the committed one (workflow/config.yaml `committed`) have their own folder
TABLES=results/synthetic-$SCALE-seeds1/tables
[[ $SCALE == smoke ]] && TABLES=results/tables
for f in "$TABLES/$TARGET".csv "$TABLES/$TARGET".md; do
    [[ -s $f ]] || fail "$f not produced"
done
NJOBS=$(check_slurm_jobs "$WORK/main.log")
# every non-local job (train, evaluate, bench, synth) was one of those Slurm jobs: the number of
# "rule X:" (submitted) entries equals the number of Slurm submissions
NRULES=$(grep -cE "^rule [a-z_0-9]+:" "$WORK/main.log" || true)
((NRULES == NJOBS)) || fail "$NRULES non-local rule runs but $NJOBS Slurm jobs in $WORK/main.log"
NTRAIN=$(grep -cE "^rule train:" "$WORK/main.log" || true)
((NTRAIN > 0)) || fail "no training job ran (is $TARGET already up to date in the work tree?)"
# every Slurm training job recorded the checkout's commit, though its copy has no .git
if [[ -n ${SA4DEPTH_GIT_COMMIT:-} ]]; then
    "$PY" - "$SA4DEPTH_GIT_COMMIT" "$WORK/main.started" <<'PYEOF' || fail "a run's done.json does not record the commit (above)"
import json, pathlib, sys
t0 = pathlib.Path(sys.argv[2]).stat().st_mtime
done = {p: json.loads(p.read_text()).get("git") for p in sorted(pathlib.Path("runs").rglob("done.json"))
        if p.stat().st_mtime >= t0}
bad = [f"{p}: {git}" for p, git in done.items() if (git or {}).get("commit") != sys.argv[1]]
print("\n".join(bad) or f"{len(done)} done.json record {sys.argv[1][:7]}", file=sys.stderr)
sys.exit(1 if bad or not done else 0)
PYEOF
fi
say "OK: $NJOBS Slurm jobs, all COMPLETED ($NTRAIN train); $(grep -c . "$TABLES/$TARGET.csv") lines in $TABLES/$TARGET.csv"
fi

# ------------------------------------------------------------------ 3. preemption: cancel + rerun
if ((PREEMPT)); then
    T3=$SECONDS
    PRE=$WORK/preempt
    copy_tree "$PRE"
    # the rendered synthetic data (synth is not rerun); with --preempt-only the first run renders it
    if ((MAIN)); then ln -s "$WORK/main/data" "$PRE/data"; fi
    # a longer run than the tiny preset (4 steps) so that the cancel lands in the middle; a checkpoint
    # only at the end or on a signal, so the resume step is the step the signal arrived at
    "$PY" - "$PRE/params/scale/$SCALE.yaml" "$PRE_STEPS" <<'PYEOF'
import sys, yaml
path, steps = sys.argv[1], int(sys.argv[2])
d = yaml.safe_load(open(path)) or {}
d.setdefault("train", {}).update(max_steps=steps, checkpoint_every=10 * steps, log_every=1)
open(path, "w").write(yaml.safe_dump(d, sort_keys=False))
PYEOF
    RUN="runs/synthetic/$SCALE/$PRE_EXP/seed0"
    ARGS=(--config scale="$SCALE" --configfile workflow/ci/slurm-local.yaml)
    # (a) start it through Slurm, without Snakemake's own retries (the rerun below is explicit)
    : >"$WORK/preempt1.log"
    smk "$PRE" "$WORK/preempt1.log" --profile slurm "$RUN/done.json" "${ARGS[@]}" "${SM_FAST[@]}" --retries 0 &
    SMK_PID=$!
    JID="" t=$SECONDS
    while ((SECONDS - t < 300)); do
        JID=$(sed -n 's/.*submitted with SLURM jobid \([0-9]*\).*rule_train.*/\1/p' "$WORK/preempt1.log" | head -1)
        # cancel once a few steps are logged (log.csv: header + one line per step)
        if [[ -n $JID && -f $PRE/$RUN/log.csv ]] && (($(wc -l <"$PRE/$RUN/log.csv") >= 4)); then break; fi
        kill -0 "$SMK_PID" 2>/dev/null || break
        sleep 0.2
    done
    [[ -n $JID ]] || { kill -INT "$SMK_PID" 2>/dev/null || true; wait "$SMK_PID" || true; fail "no training job submitted (log: $WORK/preempt1.log)"; }
    [[ -f $PRE/$RUN/done.json ]] && fail "training finished before it could be cancelled: raise SLURM_CI_PREEMPT_STEPS"
    scancel "$JID"
    say "cancelled Slurm job $JID at step $(($(wc -l <"$PRE/$RUN/log.csv") - 1)) of $PRE_STEPS"
    rc=0; wait "$SMK_PID" || rc=$?
    ((rc != 0)) || fail "snakemake did not report the cancelled job as failed (log: $WORK/preempt1.log)"
    [[ -f $PRE/$RUN/done.json ]] && fail "the cancelled run has a done.json"
    [[ -f $PRE/$RUN/checkpoints/last.pt ]] || fail "no checkpoint after the cancel ($PRE/$RUN/checkpoints/last.pt): the trainer did not checkpoint on SIGTERM"
    TRAINLOG="$PRE/logs/train/synthetic/$SCALE/$PRE_EXP/seed0.log"
    grep -q "signal received, checkpoint written at step" "$TRAINLOG" 2>/dev/null \
        || fail "the trainer's log does not record the signal checkpoint ($TRAINLOG)"
    CK_STEP=$(sed -n 's/.*checkpoint written at step \([0-9]*\).*/\1/p' "$TRAINLOG" | tail -1)
    # (b) rerun the target: only the training job runs, and it resumes from the checkpoint
    smk "$PRE" "$WORK/preempt2.log" --profile slurm "$RUN/done.json" "${ARGS[@]}" "${SM_FAST[@]}" --retries 0 \
        || fail "rerun after the cancel failed (log: $WORK/preempt2.log)"
    check_slurm_jobs "$WORK/preempt2.log" >/dev/null
    [[ $(grep -cE "^rule [a-z_0-9]+:" "$WORK/preempt2.log") == 1 ]] \
        || fail "the rerun ran more than the one unfinished training job (log: $WORK/preempt2.log)"
    grep -q "resuming .* at step $CK_STEP/$PRE_STEPS" "$TRAINLOG" \
        || fail "the rerun did not resume from the checkpoint at step $CK_STEP: $(grep -m1 -E 'resuming|sa4depth train' "$TRAINLOG" || echo 'no resume line') ($TRAINLOG)"
    mv "$PRE/$RUN" "$PRE/resumed_run"
    # (c) the same target uninterrupted (local executor, same config and threads), then compare
    smk "$PRE" "$WORK/preempt3.log" --cores 1 "$RUN/done.json" "${ARGS[@]}" \
        || fail "uninterrupted reference run failed (log: $WORK/preempt3.log)"
    "$PY" - "$PRE/resumed_run/model.pt" "$PRE/$RUN/model.pt" <<'PYEOF' || fail "resumed and uninterrupted weights differ"
import sys, torch
def tensors(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{prefix}[{i}]")
a, b = (dict(tensors(torch.load(p, map_location="cpu", weights_only=True))) for p in sys.argv[1:3])
if a.keys() != b.keys() or not a:
    sys.exit(f"different tensor names: {sorted(a.keys() ^ b.keys())[:5]}")
diff = [k for k in a if a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
if diff:
    worst = max(((a[k].double() - b[k].double()).abs().max().item() for k in diff if a[k].shape == b[k].shape),
                default=float("nan"))
    sys.exit(f"{len(diff)}/{len(a)} tensors differ (max abs diff {worst:.3g}), e.g. {diff[:3]}")
print(f"slurm-ci: resumed == uninterrupted: {len(a)} tensors bitwise equal")
PYEOF
    say "OK: preemption: cancelled at step $CK_STEP/$PRE_STEPS, rerun resumed there, final weights equal ($((SECONDS - T3)) s)"
fi

# ------------------------------------------------------------------ tests that need the cluster
cd "$REPO"
SA4DEPTH_SLURM_TESTS=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_slurm_local.py \
    || fail "tests/test_slurm_local.py failed with the cluster up"
say "PASSED: Slurm CI in $((SECONDS - T0)) s"
