#!/usr/bin/env bash
# The one quickstart command: installs Hyperion into .venv, brings up a control plane (SQLite
# store, REST + gRPC on loopback) with local agents, runs a small demo workload, and says where
# to look. Data dir: $HYPERION_HOME (default ~/.hyperion). Stop with: .venv/bin/hyperion down
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
H=.venv/bin/hyperion
$H up --agents "${AGENTS:-2}" --gpus-per-agent "${GPUS:-4}"
echo
echo "== submitting the demo workload (examples/jobs/)"
ids=$($H submit examples/jobs/demo.yaml)
echo "$ids"
$H queue
echo
echo "== waiting for the demo jobs"
for id in $ids; do
  while :; do
    phase=$($H status "$id" -o json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["phase"])')
    case "$phase" in succeeded|failed|cancelled) break;; esac
    sleep 0.5
  done
  echo "$id: $phase"
done
echo
$H queue --all
echo
$H nodes
first=$(echo "$ids" | head -n 1)
echo
echo "== logs of $first"
$H logs "$first"
echo
echo "== what the demo cost (on-prem default: \$1/GPU-hour, 300 W per busy GPU, 400 gCO2e/kWh)"
$H cost
api=$(.venv/bin/python -c 'import json,os,pathlib; d=pathlib.Path(os.environ.get("HYPERION_HOME","~/.hyperion")).expanduser(); print(json.loads((d/"controlplane.json").read_text())["api"])')
cat <<EOT

Hyperion is up. Where to look:
  .venv/bin/hyperion queue --all        jobs and their phases
  .venv/bin/hyperion nodes              agents, GPUs, telemetry
  .venv/bin/hyperion logs JOB [-f]      a job's output
  .venv/bin/hyperion submit FILE.yaml   run your own (see examples/jobs/)
  .venv/bin/hyperion cost               cost, GPU-hours, energy and carbon per team
  Dashboard: $api/ui/  (log in with the token in ${HYPERION_HOME:-~/.hyperion}/admin.token)
  Metrics:   $api/metrics  (Bearer token: metrics.token in the same folder)
  API docs:  $api/docs
  Stop it:  .venv/bin/hyperion down
EOT
