"""Markdown sections of runtime.md for chunks planned ahead (bench_runtime.py): the graph runs at each control
rate (with a run of the code before planning ahead, when its JSON is present) and the policy node alone."""

from __future__ import annotations

import json
from pathlib import Path

import runtime_latency

ROOT = Path(__file__).resolve().parents[1]


def planned_section(graphs: dict, m: dict, before: Path | None = None) -> list[str]:
    """The chunks-planned-ahead table: latencies and boundary steps per control rate (runtime_latency.py), with
    the rows of ``before`` (a --graph-only run of the code before planning ahead) when it exists."""
    arm, hand = runtime_latency.arbiter_limits(str(ROOT / "config" / "sim.yaml"))
    arm = "/".join(sorted({f"{v:g}" for v in arm}))
    rows, runs = [], [(f"{hz} Hz", g) for hz, g in graphs.items()]
    if before is not None and before.exists():
        b = json.loads(before.read_text())
        runs += [(f"{hz} Hz, before ({b['machine'].get('commit', '?')})", g) for hz, g in b["graphs"].items()]
    for label, g in runs:
        hz = g["control_hz"]
        b, pd = g["boundaries"], g["policy_diagnostics"]
        c, e, st = b["obs_to_command_ms"], b["obs_to_executed_ms"], b["boundary_step_over_limit"]
        rd, wt = b.get("obs_to_ready_ms", {}), b.get("ready_to_command_ms", {})
        f = (lambda d, k: f"{d[k]:.0f}" if d.get("n") else "n/a")  # noqa: E731
        rows.append(
            f"| {label} | {1e3 / float(hz):.0f} ms | {g['load_avg_1m_start']:.1f} / {g['load_avg_1m_end']:.1f} | "
            f"{g['rate_hz']:.2f} Hz | {pd.get('plan_latency_ms', 'n/a')} ms, {pd.get('plan_lead_ticks', 'n/a')} | "
            f"{c.get('n', 0)} | {f(rd, 'mean')} / {f(rd, 'p99')} ms | {f(wt, 'mean')} / {f(wt, 'p99')} ms | "
            f"{f(c, 'mean')} / {f(c, 'p99')} / {f(c, 'max')} ms | "
            f"{f(e, 'mean')} / {f(e, 'p99')} / {f(e, 'max')} ms | "
            f"{st.get('max', float('nan')):.2f} | {b['any_step_over_limit'].get('max', float('nan')):.2f} | "
            f"{g['missed_ticks_probe']} of {g['commands']} | {_spacing(g.get('start_spacing'))} |"
        )
    return [
        "## Chunks planned ahead (issue 17): observation -> command latency and chunk-boundary steps",
        "",
        f"Commit {m.get('commit', '?')}. `python bench/bench_runtime.py --rates 10 30`: `bora up --sim --control-hz R`"
        " for each rate (bridge, sync, policy, teleop at R; tiny demo VLA, 96 px cameras). The policy plans the"
        " next chunk ahead (runtime/chunk_scheduler.py) and phase-locks its control grid to the observations."
        " Latencies per chunk from the probe's recording (bench/runtime_latency.py): observation stamp -> the first"
        " policy command computed from it, and -> the first command the arbiter writes to the drivers after it"
        " (ExecutedCommand). Boundary step: max over joints of |q_k - q_k-1| / (v_j / R) at each chunk's first"
        " command and the 2 blend ticks after it, v_j the arbiter's limits (bora_teleop params overridden by the"
        f" teleop section of config/sim.yaml: arm {arm} rad/s, hand {hand:g} rad/s); <= 1 is within the limit."
        " Measured from the graph's first command plus `--settle-seconds` (default 5 s: the phase locks converge"
        " in the first seconds after a launch; the figures from the first command are in runtime.json as"
        " boundaries_from_start). Load: 1-min load average at the start / end of each run, on"
        f" {m['logical_cpus']} cores shared with other work.",
        "",
        "| rate | period | load | measured rate | plan latency (p90), lead ticks | chunks |"
        " obs -> ready mean / p99 |"
        " ready -> command mean / p99 | obs -> command mean / p99 / max | obs -> executed mean / p99 / max |"
        " boundary step / limit (max) |"
        " any step / limit (max) | empty slots | chunk starts replan_steps apart (spacings) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "Reading the table: obs -> command = obs -> ready (the bridge's publishing, the sync node, transport "
        "and the inference, where the load shows: the policy's inference_ms_mean is in its diagnostics, 8.7 "
        "ms for the tiny VLA on the idle machine) + ready -> command (the wait for the tick that adopts the "
        "chunk, what planning ahead and the phase lock act on). The bridge stamps an observation after its "
        "physics step and rendering and its timer runs about 1 % slow, so under load the stamps jitter by "
        "tens of ms and the lock holds only loosely; the node-alone runs below separate the policy runtime "
        "from that. 'before': at 5d12869 `bora up --control-hz` set only the bridge and the policy, so the "
        "sync node and the arbiter ran at 10 Hz in its 30 Hz row. obs -> executed adds the wait for the "
        "arbiter's own loop (up to one period; its phase is free). The boundary and any-step ratios stay "
        "below 1 with and without the change (the tiny VLA's chunks move slowly); the limit itself is shown "
        "by test_chunk_scheduler.py. Chunk starts: the step each ActionChunk was planned from (what a recording's "
        "replay rows start at), spacings between successive chunks of an episode; on the grid every spacing is "
        "replan_steps (runtime_latency.start_spacing; n/a for runs recorded before it was measured).",
        "",
    ]


def _spacing(sp: dict | None) -> str:
    """'exact of n (histogram)' of a start_spacing result; n/a without one."""
    if not sp or not sp.get("n"):
        return "n/a"
    hist = ", ".join(f"{k}: {v}" for k, v in sp["hist"].items())
    return f"{sp['exact']} of {sp['n']} ({hist})"


def node_section(path: Path) -> list[str]:
    """The policy node alone under exact periodic observations (bench/runtime_node.py): one run, or the
    interleaved repetitions of this code and the code before planning ahead (``repetitions``)."""
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    reps = d.get("repetitions") or [d]
    rows = []
    for r in reps:
        for hz, g in r["runs"].items():
            def f(k: str, q: str, g: dict = g) -> str:
                return f"{g[k][q]:.0f}" if g[k].get("n") else "n/a"

            rows.append(
                f"| {hz} Hz | {r.get('label', 'planned ahead')} ({r['machine'].get('commit', '?')}) | "
                f"{g['load_avg_1m_start']:.1f} | "
                f"{g['commands']} | {g['obs_to_command_ms'].get('n', 0)} | {f('obs_to_ready_ms', 'mean')} / "
                f"{f('obs_to_ready_ms', 'p99')} ms | {f('ready_to_command_ms', 'mean')} / "
                f"{f('ready_to_command_ms', 'p99')} ms | {f('obs_to_command_ms', 'mean')} / "
                f"{f('obs_to_command_ms', 'p99')} / {f('obs_to_command_ms', 'max')} ms |"
            )
    if not rows:
        return []
    return [
        "### The policy node alone (`python bench/runtime_node.py`)",
        "",
        "`bora up --sim --without sim_bridge --without sync --without teleop`: only the policy node (tiny demo VLA);"
        " the probe publishes one real rendered observation at the control rate with exact stamps, so the"
        " bridge's rendering time is not in the stamps. Same per-chunk matching as above.",
        "",
        "| rate | code | load (1 min) | commands | chunks | obs -> ready mean / p99 | ready -> command mean / p99 |"
        " obs -> command mean / p99 / max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "Repetitions alternate the two codes (same machine, within minutes) so both see the same load. 'before' is"
        " a git worktree at 5d12869 (the policy node before planning ahead) running this same probe script.",
        "",
    ]


def grid_section(path: Path) -> list[str]:
    """Chunk starts before and after the grid scheduler (runtime_grid.json: {"before": ..., "after": ...}, each a
    ``bench_runtime.py --graph-only`` result), with the latencies beside them; [] without the file."""
    if not path.exists():
        return []
    runs = json.loads(path.read_text())
    rows = []
    for label in ("before", "after"):
        r = runs[label]
        for hz, g in r["graphs"].items():
            c, pd = g["boundaries"]["obs_to_command_ms"], g["policy_diagnostics"]
            rows.append(
                f"| {hz} Hz | {label} ({r['machine'].get('commit', '?')}) | {g['load_avg_1m_start']:.1f} / "
                f"{g['load_avg_1m_end']:.1f} | {_spacing(g.get('start_spacing'))} | {pd.get('plan_off_grid', 'n/a')} | "
                f"{c['mean']:.0f} / {c['p99']:.0f} / {c['max']:.0f} ms |"
            )
    m = runs["after"]["machine"]
    return [
        "## Chunk starts on the grid: replan_steps apart through the graph",
        "",
        "`python bench/bench_runtime.py --graph-only FILE --rates 10 30 --graph-seconds 40`, once from a worktree of "
        "the code before the grid scheduler (with these bench scripts) and once after it, one after the other on "
        f"{m['cpu']} ({m['logical_cpus']} cores, nothing else running). A chunk's start is the step of the observation "
        "it was planned from, what a recording's replay rows start at; before, the next plan was armed from the tick "
        "a chunk was adopted, so inference jitter moved every later start (runtime/chunk_scheduler.py). Off-grid: "
        "the policy's own count of chunks it could not plan from the grid observation (plan_off_grid in "
        "/diagnostics).",
        "",
        "| rate | code | load | chunk starts replan_steps apart (spacings) | off-grid (policy) |"
        " obs -> command mean / p99 / max |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]
