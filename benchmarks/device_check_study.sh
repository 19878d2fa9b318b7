#!/bin/bash
# Finish the committed cpu study on a lent GPU, in one device call, and bring back what it
# recorded: the prepared script for a device session whose task is the study, not the speed.
#
# Chapters 0, 3 and 4 of the cpu study are recorded at bf16 (computed on a CPU with native
# bf16): on CUDA, precision auto resolves to bf16 too. Chapters 1, 2 and 5 are recorded at fp32
# (a CPU without it): plan those with SETS="precision=fp32", which on CUDA also turns TF32 off
# and keeps the attacks out of bf16 autocast. Either way the GPU plans the same jobs: every one
# recorded in results/ledger is read, not recomputed, and the rest (with the surrogates they
# read, whose weights the ledger does not keep) are computed there, several jobs per GPU.
#
# Here, once:   echo /.device/ >> .git/info/exclude
#               mkdir -p .device && cp ../shared/data/cifar10-jpeg.tar.gz .device/
# and, after committing the code, git rev-parse HEAD > .device/commit (the jobs record it where
# the copy there has no git folder). The tree and .device travel together, 64 MiB at most: with
# the ledger's target weights of both precisions they do not fit, so move the other precision's
# results/ledger/runs/* aside for the call (git checkout -- results/ledger/runs after).
# Then a device call with carry [".device"] and the command
#               bash benchmarks/device_check_study.sh [BUDGET_S] [CHAPTERS]
# (BUDGET_S: seconds the study may run, default 420, which leaves a 10-minute call time to
# record; CHAPTERS: default those still to finish). Back in $OUT: plan_before.txt,
# plan_after.txt, study.log and ledger_new.tar.gz, the entries recorded there; here:
#               tar -xzf <files_at>/ledger_new.tar.gz && git add results/ledger
# then commit them and publish the chapters whose plan shows nothing left to run
# (python -m flatness chapter NAME --scale cpu). A run cut short keeps every finished job:
# the next call resumes from the ledger once its entries are committed.
#
# End to end on a CPU at smoke scale, in a minute (tests/test_device_check.py):
#   DEVICE=cpu WORKERS=1 SCALE=smoke SETS="epochs=2 decay_epochs=1 n_attack_images=12" \
#     FLATNESS_LEDGER=/tmp/ledger bash benchmarks/device_check_study.sh 120 lr_decay
set -uo pipefail
budget=${1:-420}
chapters=${2:-minimizers,robust_features,lr_decay,complementarity}
device=${DEVICE:-cuda}
workers=${WORKERS:-4}
out=${OUT:-.}
cd "$(dirname "$0")/.."
export PYTHONPATH=lib:${PYTHONPATH:-} PYTHONUNBUFFERED=1
export FLATNESS_DATA=${FLATNESS_DATA:-.device/cifar10-jpeg.tar.gz}
export FLATNESS_CACHE=${FLATNESS_CACHE:-/tmp/flatness-device-cache}
export FLATNESS_CODE_COMMIT=${FLATNESS_CODE_COMMIT:-$(cat .device/commit 2>/dev/null)}
ledger=${FLATNESS_LEDGER:-results/ledger}
py=${PYTHON:-python3}
study=(--scale "${SCALE:-cpu}" --chapters "$chapters" --device "$device")
for field in ${SETS:-}; do study+=(--set "$field"); done

[ -f "$FLATNESS_DATA" ] || [ -d "$FLATNESS_DATA" ] || {
  echo "no CIFAR-10 copy at $FLATNESS_DATA: carry .device (see this script's header)"; exit 2; }
mkdir -p "$ledger" && find "$ledger" -type f | sort > /tmp/ledger_before.txt
echo "$(date -u +%H:%M:%S) plan before, on $device"
"$py" -m flatness reproduce "${study[@]}" --plan --workers "$workers" | tee "$out/plan_before.txt"
echo "$(date -u +%H:%M:%S) study: $workers workers, at most $budget s"
timeout --signal=INT --kill-after=30 "$budget" \
  "$py" -m flatness reproduce "${study[@]}" --workers "$workers" --no-publish \
  > "$out/study.log" 2>&1
echo "study exited with $? (124: its budget ran out; finished jobs are kept)"
tail -n 5 "$out/study.log"
echo "$(date -u +%H:%M:%S) recording the finished jobs"
"$py" -m flatness ledger "${study[@]}" | tail -n 1
find "$ledger" -type f | sort | comm -13 /tmp/ledger_before.txt - \
  | tar -czf "$out/ledger_new.tar.gz" -T -
echo "new ledger files: $(tar -tzf "$out/ledger_new.tar.gz" | grep -c '\.json$')"
"$py" -m flatness reproduce "${study[@]}" --plan --workers "$workers" > "$out/plan_after.txt"
tail -n 2 "$out/plan_after.txt"
