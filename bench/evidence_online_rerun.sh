#!/bin/bash
# BORA-Full main online runs of the evidence protocol re-run at HEAD (graph fixes), evaluated on the same seeds.
# Same argv as the evidence run's jobs (stages/*.done) except the output paths. Online jobs alone on the machine.
ROOT=$(cd "$(dirname "$0")/.." && pwd); source "$ROOT/scripts/env.sh"
EV=${1:?usage: bench/evidence_online_rerun.sh EVIDENCE_OUT NEW_OUT}; NEW=${2:?usage: bench/evidence_online_rerun.sh EVIDENCE_OUT NEW_OUT}
cd "$ROOT"
echo "commit $(git rev-parse --short HEAD) start $(date -u +%FT%TZ)"
for t in press_button pull_tissue pick_plush_toy pick_and_place open_box; do
  R=$NEW/runs/$t/bora-residual-online; mkdir -p $NEW/runs/$t $NEW/eval $NEW/logs
  s=$(date +%s)
  bora train online --env ros --task $t --offline-run $EV/runs/$t/bora --offline-data $EV/data/$t --out $R \
    --config $EV/configs/online.yaml --algo bora-residual --rounds 4 --episodes-per-round 10 --no-progress \
    --max-updates 400 --timeout 3600 > $NEW/logs/online-$t.log 2>&1
  echo "online $t rc=$? $(( $(date +%s)-s )) s"
  s=$(date +%s)
  bora eval --run $R --task $t --objects standard --trials 50 --seed0 300000 --replan-steps 8 --threads 1 \
    --out $NEW/eval/${t}__bora-residual-online__standard.json --no-progress --residual $R/trainer/rounds/round_02 \
    > $NEW/logs/eval-$t-standard.log 2>&1 &
  bora eval --run $R --task $t --objects unseen --trials 50 --seed0 300000 --replan-steps 8 --threads 1 \
    --out $NEW/eval/${t}__bora-residual-online__unseen.json --no-progress --no-values \
    --residual $R/trainer/rounds/round_02 > $NEW/logs/eval-$t-unseen.log 2>&1
  wait
  echo "eval $t done $(( $(date +%s)-s )) s"
done
echo "end $(date -u +%FT%TZ)"
