#!/usr/bin/env bash
# Run every benchmark and print their tables (see BENCHMARKS.md for the latest).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh >/dev/null
# Ray beside RingRift (bench.dispatch, bench.latency, bench.memory) when RINGRIFT_BENCH_RAY=1:
# the `bench` extra, ray[default]: ~300 MB more in .venv with its dependencies.
if [ "${RINGRIFT_BENCH_RAY:-0}" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[bench]'
fi
for bench in failover membership_scale node_selection jobs_throughput backlog gauntlet_sprt allocation_sim latency dispatch status_load memory soak; do
  .venv/bin/python -m "bench.$bench"
  echo
done
.venv/bin/python -m bench.reference_learning --quick  # the full run plays the pipeline's amounts (about 12 minutes on 2 cores)
echo
.venv/bin/python -m bench.training_efficiency --quick  # the pipeline twice, ~22 minutes (the full run ~65)
echo
if command -v rsync >/dev/null && { command -v sshd >/dev/null || [ -x /usr/sbin/sshd ]; }; then
  .venv/bin/python -m bench.transfer
else
  echo "bench.transfer skipped: its references need rsync and openssh-server (apt-get install rsync openssh-server)"
fi
