"""Our online update next to LeRobot's HIL-SERL learner update (SAC), in one run (issue 17).

Ours: ``OnlineLearner.update`` (bora-residual: twin-Q + V chunk critic with targets, residual chunk
actor) in this process (``.venv``), set up as in ``bench_updates.py`` (batch 128 chunks, k = 32,
action_dim 27, z_dim of the tiny VLA, critic hidden 256 x 2 layers). Theirs: LeRobot's ``SACPolicy``
update exactly as ``lerobot/rl/learner.py`` runs it (critic, actor, temperature, targets; see
``peer_lerobot.py``), in a worker process under ``.interop-venv/bin/python`` (``make interop``).

Matched: torch threads (both processes, ``--threads``), the replay batch size (128), the network width
(hidden 256, 2 hidden layers in every critic head and in the actor; 2 critics), the action size (27
per step) and the observation width (their ``observation.state`` = our z_t + proprio, 96 + 27 = 123).
Not matched, by design of the two methods: LeRobot's SAC acts per step, so one of its transitions is one
(s, a, r, s') step and its batch of 128 is 128 steps; one of our rows is a chunk of k = 32 steps and our
critic runs on 128 x 32 = 4,096 step tokens. The fair column is therefore **per transition** (per step
token), and the peer is also timed at batch 4,096 (the same number of step transitions per update).
Their update is timed eager (``use_torch_compile=False``, as ours runs) and, unless ``--no-compile``, also
as LeRobot configures it by default (``use_torch_compile=True``: the critic ensemble and its target
compiled with torch.compile; compilation happens in the warm-up and is not timed).

Repeats are interleaved (ours, theirs at 128, theirs at 4,096, compiled likewise, then again) so both see the same load;
CPU time per update (``time.process_time`` in each process) is the figure to read on a shared
machine, wall time is reported next to it. Writes ``bench/results/peer.json`` and ``peer.md``.

On a CUDA device (``--device cuda``) both updates run on the GPU and every timed update ends with
``torch.cuda.synchronize``, so wall time is the figure; ours is timed as configured (one captured CUDA graph per
update, ``OnlineConfig.cuda_graph``) and eager. ``--peer-python`` names any Python that has lerobot (a GPU machine
without a registry: lerobot's wheels carried there). Writes ``peer_cuda.json`` and ``peer_cuda.md``.

    .venv/bin/python bench/bench_peer.py [--repeats 3] [--updates 5] [--peer-updates 5 2] [--threads 1]
    python3 bench/bench_peer.py --device cuda --updates 20 --peer-updates 20 10 --peer-python PY
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_updates import make_buffers, tiny_z_dim  # noqa: E402  (bench/ is on sys.path as a script)
from machine_info import machine  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
INTEROP_PY = ROOT / ".interop-venv" / "bin" / "python"


def commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "bench"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (+ uncommitted changes in src/ or bench/)" if dirty else "")
    except OSError:
        return "unknown"


def sync(device: str) -> None:
    """Wait for queued GPU work, so that a timed update includes its kernels (no-op on a CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


class Ours:
    def __init__(self, args, z_dim: int, cuda_graph: bool = False):
        from bora_policy.models.critic import ChunkCritic
        from bora_trainer.algorithms.bora.config import OnlineConfig
        from bora_trainer.algorithms.online_learner import OnlineLearner
        from bora_trainer.data.replay import MixedSampler, ReplaySpec

        k, A = args.chunk, args.action_dim
        spec = ReplaySpec(z_dim, A, A, k, "bench")
        off, on = make_buffers(spec, 4096, 1024)
        torch.manual_seed(0)
        critic = ChunkCritic(z_dim=z_dim, action_dim=A, chunk_size=k, hidden_dim=args.hidden, num_layers=args.layers)
        cfg = OnlineConfig(batch_size=args.batch, precision="fp32", cuda_graph=cuda_graph)
        self.device = args.device
        self.learner = OnlineLearner(critic, A, A, k, z_dim, cfg, normalizer_version="bench", device=args.device)
        self.sampler = MixedSampler(off, on, args.batch, seed=0, device=args.device)
        self.batches = [self.sampler.sample() for _ in range(4)]
        self.params = {
            "actor": sum(p.numel() for p in self.learner.actor.parameters()),
            "critic_trainable": sum(p.numel() for p in self.learner.critic.parameters() if p.requires_grad),
        }

    def run(self, n: int, warmup: int = 0) -> dict:
        for i in range(warmup):
            self.learner.update(self.batches[i % 4])
        sync(self.device)
        wall, cpu = [], []
        for i in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            self.learner.update(self.batches[i % 4])
            sync(self.device)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        return {"wall_s": wall, "cpu_s": cpu}


class Peer:
    """The LeRobot worker (``peer_lerobot.py``) under the interop environment's Python (``--peer-python``)."""

    def __init__(self, args, state_dim: int, compile_critic: bool = False):
        if not args.peer_python.exists():
            raise FileNotFoundError(f"bench_peer: {args.peer_python} is missing (build it with `make interop`)")
        cmd = [str(args.peer_python), str(HERE / "peer_lerobot.py"), "--state-dim", str(state_dim),
               "--action-dim", str(args.action_dim), "--hidden", str(args.hidden), "--layers", str(args.layers),
               "--threads", str(args.threads), "--device", args.device] + (["--compile"] if compile_critic else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench_peer: the LeRobot worker exited (code {self.proc.poll()})")
        return json.loads(line)

    def run(self, batch: int, n: int, warmup: int = 0) -> dict:
        self.proc.stdin.write(json.dumps({"batch": batch, "updates": n, "warmup": warmup}) + "\n")
        return self._read()

    def close(self) -> None:
        try:
            self.proc.stdin.write('{"quit": true}\n')
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def summarise(name: str, runs: list[dict], transitions: int) -> dict:
    wall = [x for r in runs for x in r["wall_s"]]
    cpu = [x for r in runs for x in r["cpu_s"]]
    w, c = statistics.median(wall), statistics.median(cpu)
    return {
        "name": name,
        "transitions_per_update": transitions,
        "updates_timed": len(cpu),
        "wall_ms_per_update": 1000 * w,
        "cpu_ms_per_update": 1000 * c,
        "cpu_us_per_transition": 1e6 * c / transitions,
        "wall_us_per_transition": 1e6 * w / transitions,
        "cpu_ms_per_update_all": [1000 * x for x in cpu],
    }


def write(res: dict, out: Path = RESULTS) -> None:
    """``peer.{json,md}`` (CPU: CPU-time columns) or ``peer_cuda.{json,md}`` (CUDA: wall time, synchronised)."""
    out.mkdir(parents=True, exist_ok=True)
    cuda = res["config"].get("device", "cpu").startswith("cuda")
    stem = "peer_cuda" if cuda else "peer"
    (out / f"{stem}.json").write_text(json.dumps(res, indent=2))
    m, c = res["machine"], res["config"]
    ours, rows = res["rows"][0], res["rows"]
    basis = "wall" if cuda else "cpu"
    where = (f"on {m.get('gpu', 'the GPU')} (torch device `{c['device']}`; every timed update ends with "
             "`torch.cuda.synchronize`, so wall time is the figure)" if cuda else
             f"{c['threads']} thread(s) in both processes")
    load = ("" if cuda else f"; 1-min load average {res['load_start']:.2f} at start, {res['load_end']:.2f} at end (a "
            "2-core machine shared with other work: read the CPU-time columns)")
    lines = [
        "# Online update: ours vs LeRobot's HIL-SERL learner (SAC)",
        "",
        f"`bench/bench_peer.py`, commit {res['commit']}, {res['date']}. Machine: {m['cpu']}, {m['logical_cpus']} "
        f"logical CPUs, torch {m['torch']} (ours) / {res['peer']['torch']} (LeRobot {res['peer']['lerobot']}, "
        f"its own environment: {res.get('peer_python', '.interop-venv')}), {where}{load}.",
        "",
        f"Matched: batch {c['batch']} replay rows, hidden width {c['hidden']} x {c['layers']} layers in every critic "
        f"head and the actor, 2 critics, {c['action_dim']} action dims per step, observation width {c['state_dim']} "
        f"(their `observation.state` = our z_t ({c['z_dim']}) + proprio ({c['action_dim']})). Not matched: their SAC "
        f"acts per step (a transition = one step), ours per chunk of k = {c['chunk']} (a row = {c['chunk']} step "
        f"transitions, {c['batch']} rows = {c['batch'] * c['chunk']:,} step tokens through the critic), so the fair "
        f"column is per transition; LeRobot is also timed at batch {c['batch'] * c['chunk']:,} (as many step "
        "transitions per update as ours). Ours does more per update (V net + its target, frozen offline critic "
        "regulariser, Eq. 6 hinge through the critic twice, position embeddings); theirs samples a tanh-Gaussian "
        "(a full-covariance MultivariateNormal in torch.distributions) and updates a temperature. "
        f"Parameters: ours actor {res['ours_params']['actor']:,}, critic (trainable) "
        f"{res['ours_params']['critic_trainable']:,}; theirs actor {res['peer']['params']['actor']:,}, critic "
        f"ensemble {res['peer']['params']['critic_ensemble']:,}. Their update is timed eager "
        + ("(`use_torch_compile=False`, as ours runs)" if not cuda else "(`use_torch_compile=False`)")
        + (" and compiled (`use_torch_compile=True`, LeRobot's default: critic ensemble + target through "
           "torch.compile; compilation in the untimed warm-up)." if res.get("compiled") else "."),
        "",
        f"Median over {c['repeats']} interleaved repeats.",
        "",
        "| update | transitions / update | CPU ms / update | CPU us / transition | wall ms / update "
        f"| wall us / transition | ours / theirs per update ({basis}) | ours / theirs per transition ({basis}) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ru = ours[f"{basis}_ms_per_update"] / r[f"{basis}_ms_per_update"]
        rt = ours[f"{basis}_us_per_transition"] / r[f"{basis}_us_per_transition"]
        mine = r["name"].startswith("ours")
        lines.append(
            f"| {r['name']} | {r['transitions_per_update']:,} | {r['cpu_ms_per_update']:.1f} | "
            f"{r['cpu_us_per_transition']:.1f} | {r['wall_ms_per_update']:.1f} | {r['wall_us_per_transition']:.2f} | "
            f"{'-' if mine else f'{ru:.3g}'} | {'-' if mine else f'{rt:.3g}'} |"
        )
    lines += ["", f"Ratios (against the first row, {basis} time) < 1: ours is cheaper. " + res.get("note", "")]
    (out / f"{stem}.md").write_text("\n".join(lines).rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--updates", type=int, default=5, help="our timed updates per repeat")
    p.add_argument("--peer-updates", type=int, nargs=2, default=[10, 2],
                   help="LeRobot timed updates per repeat at batch B and at batch B*k")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--action-dim", type=int, default=27)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads in both processes")
    p.add_argument("--vlm", default="paligemma-tiny")
    p.add_argument("--note", default="")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile (LeRobot default) rows")
    p.add_argument("--out", type=Path, default=RESULTS, help="where peer.json / peer.md (peer_cuda.* on CUDA) go")
    p.add_argument("--device", default="cpu",
                   help="torch device of both updates (cpu, cuda); on CUDA ours is timed as configured (one "
                        "captured CUDA graph) and eager, and the tables compare wall time")
    p.add_argument("--peer-python", type=Path, default=INTEROP_PY,
                   help="the Python that has lerobot (default: .interop-venv from `make interop`)")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.updates < 1 or min(args.peer_updates) < 1:
        p.error("--repeats, --updates and --peer-updates must be >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    if not args.peer_python.exists():  # make bench without make interop: say so, do not fail the other figures
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "peer.md").write_text(
            "# Online update: ours vs LeRobot's HIL-SERL learner (SAC)\n\n"
            f"Not measured: {args.peer_python} is missing (build the LeRobot environment with `make interop`).\n"
        )
        print(f"bench_peer: skipped, {args.peer_python} is missing (make interop)", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    z_dim = tiny_z_dim(args.vlm)
    state_dim = z_dim + args.action_dim
    res = {
        "machine": machine(),
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_start": os.getloadavg()[0],
        "config": {**{k: getattr(args, k) for k in ("batch", "chunk", "action_dim", "hidden", "layers", "threads",
                                                   "repeats", "updates", "device")},
                   "z_dim": z_dim, "state_dim": state_dim},
        "note": args.note,
        "peer_python": str(args.peer_python),
    }
    torch.set_num_threads(args.threads)  # machine() calibrates threads; restore ours
    cuda = args.device.startswith("cuda")
    # on CUDA our learner as configured replays one captured graph per update (OnlineConfig.cuda_graph); eager too
    mine = {"CUDA graph": Ours(args, z_dim, cuda_graph=True), "eager": Ours(args, z_dim)} if cuda else \
        {"": Ours(args, z_dim)}
    ours = next(iter(mine.values()))
    peers = {"eager": Peer(args, state_dim)}
    if not args.no_compile:
        peers["compiled"] = Peer(args, state_dim, compile_critic=True)
    big = args.batch * args.chunk
    runs = {**{("ours", tag): [] for tag in mine}, **{(tag, b): [] for tag in peers for b in (args.batch, big)}}
    try:
        for o in mine.values():
            o.run(0, warmup=3)
        for peer in peers.values():  # warm-up (and torch.compile's compilation for both batch sizes)
            peer.run(args.batch, 1, warmup=2)
            peer.run(big, 1, warmup=2)
        for r in range(args.repeats):
            for tag, o in mine.items():
                runs[("ours", tag)].append(o.run(args.updates))
            for tag, peer in peers.items():
                runs[(tag, args.batch)].append(peer.run(args.batch, args.peer_updates[0]))
                runs[(tag, big)].append(peer.run(big, args.peer_updates[1]))
            print(f"[peer] repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    finally:
        for peer in peers.values():
            peer.close()
    peer = peers["eager"]
    res["compiled"] = "compiled" in peers
    res["load_end"] = os.getloadavg()[0]
    res["peer"] = peer.info
    res["ours_params"] = ours.params
    res["rows"] = [
        *(summarise(f"ours{f' ({tag})' if tag else ''}: bora-residual, batch {args.batch} chunks x k={args.chunk}",
                    runs[("ours", tag)], big) for tag in mine),
        *(
            row
            for tag in peers
            for row in (
                summarise(
                    f"LeRobot SAC ({tag}), batch {args.batch} (matched batch)", runs[(tag, args.batch)], args.batch
                ),
                summarise(f"LeRobot SAC ({tag}), batch {big:,} (matched transitions)", runs[(tag, big)], big),
            )
        ),
    ]
    write(res, args.out)
    for r in res["rows"]:
        print(f"{r['name']}: {r['cpu_ms_per_update']:.1f} CPU ms/update, {r['wall_ms_per_update']:.2f} wall "
              f"ms/update, {r['cpu_us_per_transition']:.1f} CPU us/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
