"""Per-round figures of online runs from their trainer's round log and status (``RUN/trainer/round_log.json``,
``RUN/trainer/status.json``): updates, online episodes and successes, takeovers and the operator's share of steps,
and the update means that say what the actor learned (BC loss, mean |residual|, Q(composite) - Q(base), the
critic's Q level). Markdown to stdout (append it to a report)::

    python bench/round_logs.py runs/rew/new-s0 runs/rew/old-s0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def rows(run: Path) -> list[str]:
    log = json.loads((run / "trainer" / "round_log.json").read_text())
    status = json.loads((run / "trainer" / "status.json").read_text())
    per_round = {int(r["round"]): r for r in status.get("rounds", [])}
    out = []
    for key in sorted(log, key=int):
        r, m, s = log[key], log[key].get("update_means", {}), per_round.get(int(key), {})

        def f(name: str, spec: str = "{:.3f}", m: dict = m) -> str:
            return spec.format(m[name]) if name in m else "-"

        share = s.get("intervened_share")
        out.append(
            f"| {run.name} | {key} | {r.get('updates', '-')} | {s.get('successes', '-')} / {s.get('episodes', '-')} | "
            f"{s.get('takeovers', '-')} | {'-' if share is None else f'{100 * share:.0f}%'} | {f('actor/bc')} | "
            f"{f('actor/res_abs')} | {f('actor/q_gain', '{:+.4f}')} | {f('critic/q_mean')} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="online run directories (bora train online --out)")
    args = ap.parse_args(argv)
    missing = [str(r) for r in args.runs if not (r / "trainer" / "round_log.json").is_file()]
    if missing:
        print(f"round_logs: no trainer/round_log.json in {', '.join(missing)}", file=sys.stderr)
        return 2
    print("| run | round | updates | online successes / episodes | takeovers | operator's steps | BC loss | "
          "mean abs residual | Q(composite) - Q(base) | critic Q mean |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in args.runs:
        print("\n".join(rows(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
