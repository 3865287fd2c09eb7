"""`make bench`: every benchmark figure of the stack in one run, then a Markdown summary.

Runs each bench script as its own process (so one failure does not hide the others), in the order
simulation rate + expert success, policy inference, update rate, the update next to LeRobot's SAC
learner (``bench_peer.py``, needs ``make interop``), the critic step-head speed-up candidates,
runtime (control-loop jitter, latency, transport), data faults (damaged recordings through
``bora bag``). Each script writes ``bench/results/<name>.json`` and ``<name>.md`` with the machine it
ran on; this script concatenates the Markdown files into ``bench/results/summary.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BENCHES = [
    ("sim", "bench_sim.py", []),
    ("inference", "bench_inference.py", []),
    ("updates", "bench_updates.py", []),
    ("peer", "bench_peer.py", []),
    ("update_candidates", "bench_update_candidates.py", []),
    ("eval", "bench_eval.py", []),
    ("runtime", "bench_runtime.py", []),
    ("transport", "bench_transport.py", []),
    ("data_faults", "bench_data_faults.py", []),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=[b[0] for b in BENCHES], help="run only these benchmarks")
    ap.add_argument("--quick", action="store_true", help="fewer seeds/repetitions (a smoke run, not for reporting)")
    args = ap.parse_args(argv)
    quick_args = {
        "sim": ["--seeds", "5", "--steps", "50"],
        "inference": ["--reps", "5"],
        "updates": ["--updates", "5", "--repeats", "1", "--threads", "auto"],
        "peer": ["--repeats", "1", "--updates", "2", "--peer-updates", "3", "1"],
        "update_candidates": ["--repeats", "2", "--calls", "3"],
        "eval": ["--trials", "4", "--num-envs", "1", "4", "2p"],
        "runtime": ["--graph-seconds", "8", "--transport-seconds", "4"],
        "transport": ["--seconds", "4"],
        "data_faults": [],
    }
    failures = []
    for name, script, extra in BENCHES:
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(HERE / script), *extra, *(quick_args[name] if args.quick else [])]
        print(f"[bench] {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call(cmd)
        print(f"[bench] {name}: exit {rc} after {time.monotonic() - t0:.0f} s", flush=True)
        if rc != 0:
            failures.append(name)
    parts = ["# BORA benchmark summary\n"]
    for name, _, _ in BENCHES:
        md = RESULTS / f"{name}.md"
        if md.exists():
            parts.append(md.read_text().strip() + "\n")
    (RESULTS / "summary.md").write_text("\n".join(parts))
    print(f"[bench] wrote {RESULTS / 'summary.md'}" + (f"; FAILED: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
