#!/usr/bin/env bash
# --workers 2 against --workers 1 in one run: whole sessions by 32 clients and RETR of 1 GiB by
# 16 clients (ftpbench), the two servers alternating round by round (1,2 then 2,1 ...), each
# started fresh for its round; prints the median of the rounds and the ratio 2/1.
#
#   benches/workers.sh                      # 3 rounds, 5 s windows
#   ROUNDS=5 WINDOW=10 benches/workers.sh
#
# Served directory: /dev/shm (tmpfs). Everything it starts it stops, by PID, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
WINDOW=${WINDOW:-5}
PORT=${PORT:-2199}

cargo build --release --bins -q
dir=$(mktemp -d /dev/shm/mioftpd-workers-bench-XXXXXX)
results=$dir/results.jsonl
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
head -c 1G /dev/urandom > "$dir/bench-1g.bin"

run_server() { # workers round
  target/release/mioftpd --root "$dir" --listen "127.0.0.1:$PORT" --workers "$1" \
    --max-sessions 20000 --max-per-ip 20000 --pasv-ports "$((20000 + $2 * 2000))-$((21999 + $2 * 2000))" \
    2> "$dir/server-$1-$2.log" &
  server=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return
    sleep 0.1
  done
  echo "server did not start" >&2; exit 2
}

for round in $(seq "$ROUNDS"); do
  order="1 2"; [ $((round % 2)) -eq 0 ] && order="2 1"
  for workers in $order; do
    run_server "$workers" "$round"
    for scenario in "sessions --clients 32" "retr --clients 16"; do
      # shellcheck disable=SC2086 # the scenario is a word list on purpose
      target/release/ftpbench $scenario --port "$PORT" --seconds "$WINDOW" --server-pid "$server" \
        --json "$results" > "$dir/ftpbench.log" 2>&1 || { cat "$dir/ftpbench.log"; exit 1; }
      sed -i '$ s/^{/{"workers":'"$workers"',"round":'"$round"',/' "$results"
    done
    kill "$server"; wait "$server" || true; server=
  done
done

python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
rows = [("sessions", "sessions_per_s", "sessions/s, 32 clients"),
        ("sessions", "cpu_s_per_1000_sessions", "server CPU s per 1000 sessions"),
        ("retr", "mib_per_s", "RETR 1 GiB, 16 clients, MiB/s"),
        ("retr", "cpu_s_per_gib", "server CPU s per GiB"),
        ("retr", "fairness", "fairness slowest/fastest")]
print("| metric | --workers 1 | --workers 2 | 2 / 1 | runs (1; 2) |")
print("| --- | --: | --: | --: | --- |")
for scenario, key, label in rows:
    values = {w: [r[key] for r in runs if r["scenario"] == scenario and r["workers"] == w] for w in (1, 2)}
    one, two = (statistics.median(values[w]) for w in (1, 2))
    each = "; ".join(", ".join(f"{v:.0f}" if v >= 100 else f"{v:.3g}" for v in values[w]) for w in (1, 2))
    show = lambda v: f"{v:.0f}" if v >= 100 else f"{v:.3g}"
    print(f"| {label} | {show(one)} | {show(two)} | {two / one:.2f} | {each} |")
errors = sum(r["errors"] for r in runs)
print(f"\n{len(runs)} ftpbench runs, {errors} errors")
PY
