#!/usr/bin/env bash
# SLURM integration test for `richness sweep submit/collect`.
#
# Starts a real single-node SLURM (Debian `slurm-wlm` + `munge`, installed with apt
# when missing; daemons started by hand, no systemd: proctrack/linuxproc, task/none),
# submits a small sweep as an array job of 3 tasks, waits, collects the shard
# databases and checks that the merged results equal a local run of the same spec.
# Stops only the daemons it started, by PID. Prints "SKIPPED: …" and exits 0 when
# SLURM cannot be installed or started here (not root, no apt, no network…).
#
#   bash ci/slurm-test.sh            # uses target/release/richness (builds it if missing)
#   RICHNESS_BIN=/path/to/richness bash ci/slurm-test.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

skip() {
    echo "SKIPPED: SLURM integration test: $*"
    exit 0
}
fail() {
    echo "FAILED: SLURM integration test: $*"
    for f in "${WORK:-/nonexistent}"/*.log "${WORK:-/nonexistent}"/sweep/logs/*.log; do
        [ -f "$f" ] && { echo "--- $f (last lines)"; tail -n 15 "$f"; }
    done
    exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root to start munged/slurmctld/slurmd"

need_install=0
for c in munged slurmctld slurmd sbatch squeue sinfo; do
    command -v "$c" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
    command -v apt-get >/dev/null 2>&1 || skip "slurm-wlm is not installed and there is no apt-get"
    echo "installing slurm-wlm and munge with apt-get…"
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 300 apt-get install -y -q slurm-wlm munge >/tmp/richness-slurm-apt.log 2>&1; then
        timeout 300 apt-get update -q >>/tmp/richness-slurm-apt.log 2>&1
        timeout 300 apt-get install -y -q slurm-wlm munge >>/tmp/richness-slurm-apt.log 2>&1 \
            || skip "apt-get install slurm-wlm munge failed (see /tmp/richness-slurm-apt.log)"
    fi
fi

BIN=${RICHNESS_BIN:-$ROOT/target/release/richness}
if [ ! -x "$BIN" ]; then
    cargo build --release -q -p richness-cli || fail "cannot build richness"
fi
BIN=$(readlink -f "$BIN")

WORK=$(mktemp -d /tmp/richness-slurm.XXXXXX)
STARTED=()
cleanup() {
    # Stop only what this script started, newest first, by PID.
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        kill "${STARTED[$i]}" 2>/dev/null
    done
    for pid in "${STARTED[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

# munge: reuse a running munged, else start one on the default socket.
if ! (munge -n 2>/dev/null | unmunge >/dev/null 2>&1); then
    mkdir -p /run/munge /etc/munge /var/lib/munge /var/log/munge
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey -c -f -k /etc/munge/munge.key >/dev/null 2>&1
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
        fi
    fi
    chmod 600 /etc/munge/munge.key
    munged --foreground --force --key-file=/etc/munge/munge.key \
        --pid-file="$WORK/munged.pid" --log-file="$WORK/munged.log" \
        --seed-file="$WORK/munged.seed" >/dev/null 2>&1 &
    STARTED+=($!)
    for _ in $(seq 50); do
        (munge -n 2>/dev/null | unmunge >/dev/null 2>&1) && break
        sleep 0.1
    done
    (munge -n 2>/dev/null | unmunge >/dev/null 2>&1) || skip "munged does not start (see $WORK/munged.log)"
fi

# A one-node cluster on this machine.
NODE=$(slurmd -C 2>/dev/null | head -n 1)
case "$NODE" in NodeName=*) ;; *) skip "slurmd -C does not describe this node";; esac
HOST=$(echo "$NODE" | sed 's/^NodeName=\([^ ]*\).*/\1/')
NODE=$(echo "$NODE" | sed 's/RealMemory=[0-9]*//')
mkdir -p "$WORK/state" "$WORK/spool"
export SLURM_CONF=$WORK/slurm.conf
cat >"$SLURM_CONF" <<CONF
ClusterName=richnessci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
$NODE State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld -D -i -f "$SLURM_CONF" >>"$WORK/slurmctld.log" 2>&1 &
STARTED+=($!)
slurmd -D -f "$SLURM_CONF" >>"$WORK/slurmd.log" 2>&1 &
STARTED+=($!)
state=""
for _ in $(seq 100); do
    state=$(sinfo -h -o %T 2>/dev/null | head -n 1)
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || skip "the SLURM node did not come up (state '$state'; see $WORK/slurmctld.log, $WORK/slurmd.log)"
echo "SLURM up: node $HOST idle"

# 2 widths × 3 rates × 2 seeds = 12 short runs, 3 array tasks.
cat >"$WORK/spec.toml" <<'SPEC'
name = "slurm-ci"
[base]
model = { arch = "mlp", depth = 3 }
param = { preset = "mup" }
train = { steps = 30, eval_every = 10 }
[[axes]]
"model.width" = [32, 64]
[[axes]]
"param.base_lr" = { logspace = [1, 16, 3] }
[[axes]]
seed = { range = [0, 2] }
SPEC

out=$("$BIN" --quiet sweep submit "$WORK/spec.toml" --slurm --shards 3 --dir "$WORK/sweep" \
    --sbatch-arg=--time=00:05:00 --sbatch-arg=--cpus-per-task=1) || fail "sweep submit: $out"
echo "$out"
job=$(echo "$out" | sed -n 's/^submitted job \([0-9]*\).*/\1/p')
[ -n "$job" ] || fail "no job id in: $out"
for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
    sleep 0.2
done
[ -z "$(squeue -h -j "$job" 2>/dev/null)" ] || fail "job $job still queued or running after 120 s"

"$BIN" --quiet sweep collect --from "$WORK/sweep" --db "$WORK/merged.sqlite" || fail "collect reports missing or failed shards"
"$BIN" --quiet --threads 2 sweep run "$WORK/spec.toml" --db "$WORK/local.sqlite" >/dev/null || fail "local run"
"$BIN" --quiet sweep export --db "$WORK/merged.sqlite" --out "$WORK/merged-csv" >/dev/null || fail "export merged"
"$BIN" --quiet sweep export --db "$WORK/local.sqlite" --out "$WORK/local-csv" >/dev/null || fail "export local"
cmp -s "$WORK/merged-csv/metrics.csv" "$WORK/local-csv/metrics.csv" || fail "merged metrics differ from the local run"
# runs.csv: equal except where and when each run ran.
drop='seconds|threads|host|shard|started_unix|finished_unix'
strip() {
    python3 - "$1" "$drop" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
keep = [i for i, h in enumerate(rows[0]) if h not in sys.argv[2].split("|")]
for r in rows:
    print("\x1f".join(r[i] for i in keep))
PY
}
if command -v python3 >/dev/null 2>&1; then
    [ "$(strip "$WORK/merged-csv/runs.csv")" = "$(strip "$WORK/local-csv/runs.csv")" ] || fail "merged runs differ from the local run"
fi
n=$(($(wc -l <"$WORK/merged-csv/runs.csv") - 1))
[ "$n" = 12 ] || fail "merged store has $n runs, expected 12"
shards=$(cut -d, -f15 "$WORK/merged-csv/runs.csv" 2>/dev/null | sort -u | grep -c /3)
echo "PASSED: SLURM integration test: job $job, 3 array tasks, $n runs merged ($shards shards) equal a local run"
