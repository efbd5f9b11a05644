#!/usr/bin/env bash
# Runs each GPU test file alone, many times, and counts how each run ended:
# the measurement behind Note [exit crashes] (kernels/testing.ts). An abort
# at exit shows as status 134 (SIGABRT) or 139 (SIGSEGV) after "ok".
#
#   bench/exit_runs.sh RUNS [FILE...]       # default: every GPU test file
#   JOBS=2 bench/exit_runs.sh 30            # two runs at a time
#
# Prints one line per run that did not exit 0 (kept in $OUT, default
# out/exit-runs) and a table: file, runs, passed, failed, aborted at exit.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:?usage: bench/exit_runs.sh RUNS [FILE...]}
shift
files=("$@")
if [ ${#files[@]} = 0 ]; then
  mapfile -t files < <(grep -lE 'withAllocator|withCheckedAllocator|withGpu|gpuTest|gpu\(\)' tests/*_test.ts)
fi
out=${OUT:-out/exit-runs}
mkdir -p "$out"
: >"$out/results"
one() { # file run
  local name log status
  name=$(basename "$1" .ts)
  log="$out/$name.$2.log"
  NO_COLOR=1 timeout 600 deno test -A "$1" >"$log" 2>&1
  status=$?
  echo "$name $status" >>"$out/results"
  if [ "$status" = 0 ]; then rm -f "$log"; else echo "$name run $2: status $status ($log)"; fi
}
export -f one
export out
for i in $(seq 1 "$runs"); do
  for f in "${files[@]}"; do echo "$f $i"; done
done | xargs -P "${JOBS:-1}" -L 1 bash -c 'one "$0" "$1"'
echo
printf '%-24s %5s %7s %7s %8s\n' file runs passed failed aborted
count() { # key: $1 or "all"
  awk -v key="$1" '{ k = key == "all" ? "all" : $1; n[k]++
    if ($2 == 0) ok[k]++; else if ($2 == 134 || $2 == 139) ab[k]++; else bad[k]++ }
    END { for (k in n) printf "%-24s %5d %7d %7d %8d\n", k, n[k], ok[k], bad[k], ab[k] }' \
    "$out/results"
}
count file | sort
count all
