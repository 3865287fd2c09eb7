"""`make interop`: both directions between BORA's LeRobot v3 files and the released `lerobot` package.

Runs in .venv (the BORA side) and calls scripts/interop_lerobot_side.py with the interop venv's
Python (the LeRobot side). Independent expectations: the BORA dataset and the LeRobot-written one
are closed forms of (episode, step); each side's arrays are compared with them, exactly.

1. BORA -> LeRobot: episodes written by BORA, `bora dataset export`, loaded with LeRobotDataset:
   frames, states, actions, images, tasks and episode boundaries equal the source.
2. LeRobot -> BORA: a dataset written with LeRobotDataset.create/add_frame/save_episode/finalize,
   `bora dataset import`, equal to LeRobot's input, and one offline update trains on it.
Writes bench/results/interop.json (versions, pass/fail per check) and prints it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIDE = ROOT / "scripts" / "interop_lerobot_side.py"


def bora_dataset(path: Path) -> dict:
    from bora_policy.common.episodes import DatasetMeta, write_episode

    meta = DatasetMeta(fps=15.0, camera_names=["front", "wrist"], image_size=[6, 8],
                       arm_joint_names=["a0", "a1", "a2"], hand_joint_names=["h0"], tasks=[])
    exp = {"state": [], "action": [], "lengths": [], "images": {"front": [], "wrist": []}, "tasks": []}
    for e, T in enumerate((5, 8, 3)):
        t = np.arange(T)[:, None]
        j = np.arange(4)[None, :]
        state = (e + 0.01 * t + 0.1 * j).astype(np.float32)
        action = (state + 0.25).astype(np.float32)
        color = np.zeros((T, 2, 6, 8, 3), np.uint8)
        for c in range(2):
            color[:, c] = ((7 * e + 3 * t[:, :, None, None] + 50 * c) % 256).astype(np.uint8)
            color[:, c, :, :, 1] = np.arange(8, dtype=np.uint8)[None, None, :] * 20
        inter = np.zeros(T, bool)
        inter[1:3] = e == 1
        arrays = {"color": color, "depth": np.full((T, 2, 6, 8), 0.5, np.float32), "state": state,
                  "action": action, "is_intervention": inter, "beta": inter.astype(np.float32),
                  "reward": np.zeros(T, np.float32), "done": np.arange(T) == T - 1}
        task = ["press_button", "open_box", "press_button"][e]
        write_episode(path, e, arrays, {"task": task, "outcome": "success"}, meta)
        exp["state"].append(state), exp["action"].append(action), exp["lengths"].append(T)
        exp["tasks"] += [task] * T
        for c, cam in enumerate(("front", "wrist")):
            exp["images"][cam].append(color[:, c])
    return exp


def check(name: str, ok: bool, detail: str, results: list) -> None:
    results.append({"check": name, "pass": bool(ok), "detail": detail})
    print(f"[interop] {'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)


def bora_to_lerobot(py: str, tmp: Path, results: list) -> dict:
    from bora_trainer.data.lerobot import export_episodes

    exp = bora_dataset(tmp / "bora_src")
    export_episodes(tmp / "bora_src", tmp / "exported")
    p = subprocess.run([py, str(SIDE), "read", str(tmp / "exported"), str(tmp / "read.npz")],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        check("export: LeRobotDataset loads it", False, p.stderr.strip().splitlines()[-1] if p.stderr else "", results)
        (tmp / "read.err").write_text(p.stderr)
        return {}
    info = json.loads(p.stdout.strip().splitlines()[-1])
    got = np.load(tmp / "read.npz")
    lengths = np.asarray(exp["lengths"])
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    check("export: LeRobotDataset loads it", True, f"{info['num_frames']} frames, {info['num_episodes']} episodes, "
          f"codebase {info['codebase_version']}", results)
    check("export: frames and episode boundaries",
          info["num_frames"] == bounds[-1] and np.array_equal(got["ep_from"], bounds[:-1])
          and np.array_equal(got["ep_to"], bounds[1:])
          and np.array_equal(got["episode_index"], np.repeat(np.arange(3), lengths))
          and np.array_equal(got["frame_index"], np.concatenate([np.arange(n) for n in lengths])),
          f"from {got['ep_from'].tolist()} to {got['ep_to'].tolist()}", results)
    check("export: states and actions equal (exact float32)",
          np.array_equal(got["state"], np.concatenate(exp["state"]))
          and np.array_equal(got["action"], np.concatenate(exp["action"])),
          f"state {got['state'].shape}, action {got['action'].shape}", results)
    check("export: camera frames equal (lossless PNG in parquet)",
          all(np.array_equal(got[f"img:observation.images.{c}"], np.concatenate(exp["images"][c]))
              for c in ("front", "wrist")), f"cameras {info['cameras']}", results)
    check("export: tasks and timestamps", list(got["task"]) == exp["tasks"]
          and np.allclose(got["timestamp"], np.concatenate([np.arange(n) / 15.0 for n in lengths]), atol=1e-6),
          "per-frame task strings and t / fps", results)
    return info


def lerobot_to_bora(py: str, tmp: Path, results: list) -> dict:
    from bora_policy.common.episodes import episode_ids, read_episode, read_meta
    from bora_trainer.data.lerobot import import_dataset

    p = subprocess.run([py, str(SIDE), "write", str(tmp / "lr_written"), str(tmp / "written.npz")],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        check("import: LeRobot writes a dataset", False, p.stderr.strip().splitlines()[-1] if p.stderr else "", results)
        (tmp / "write.err").write_text(p.stderr)
        return {}
    info = json.loads(p.stdout.strip().splitlines()[-1])
    want = np.load(tmp / "written.npz")
    try:
        import_dataset(tmp / "lr_written", tmp / "imported")
    except Exception as e:  # noqa: BLE001 - the failure is the result
        check("import: bora dataset import reads it", False, f"{type(e).__name__}: {e}", results)
        return info
    ids = episode_ids(tmp / "imported")
    eps = [read_episode(tmp / "imported", i) for i in ids]
    meta = read_meta(tmp / "imported")
    check("import: bora dataset import reads it", len(ids) == len(want["lengths"]),
          f"{len(ids)} episodes, cameras {meta.camera_names}, joints {meta.arm_joint_names}", results)
    check("import: episode boundaries, states, actions, images equal",
          [len(a["action"]) for a, _ in eps] == want["lengths"].tolist()
          and np.array_equal(np.concatenate([a["state"] for a, _ in eps]), want["state"])
          and np.array_equal(np.concatenate([a["action"] for a, _ in eps]), want["action"])
          and np.array_equal(np.concatenate([a["color"][:, 0] for a, _ in eps]), want["image"]),
          f"lengths {[len(a['action']) for a, _ in eps]}", results)
    cfg = tmp / "one_update.yaml"
    cfg.write_text((ROOT / "config" / "offline_demo.yaml").read_text()
                   + "\n# interop: one update\ntotal_updates: 1\nbatch_size: 4\nk: 4\nckpt_every: 1\nlog_every: 1\n")
    t0 = time.time()
    q = subprocess.run([sys.executable, "-m", "bora_trainer.cli", "train", "offline", "--algo", "cp-bc",
                        "--config", str(cfg), "--data", str(tmp / "imported"), "--out", str(tmp / "run"),
                        "--no-progress"], capture_output=True, text=True, timeout=1200)
    from bora_trainer.checkpoint import latest_checkpoint

    ck = latest_checkpoint(tmp / "run") if q.returncode == 0 else None
    step = json.loads((ck / "meta.json").read_text()).get("step") if ck else None
    check("import: one offline update trains on it", ck is not None,
          f"checkpoint {ck.name if ck else None} (step {step}); "
          f"exit {q.returncode} in {time.time() - t0:.0f} s; " + (q.stderr.strip().splitlines() or [""])[-1][:300],
          results)
    return info


def lerobot_video_to_bora(py: str, tmp: Path, results: list) -> None:
    """LeRobot's default (camera streams as video): what `bora dataset import` does with it (a known gap)."""
    from bora_trainer.data.lerobot import import_dataset
    from bora_trainer.data.lerobot_v3 import LeRobotFormatError

    p = subprocess.run([py, str(SIDE), "write-video", str(tmp / "lr_video"), str(tmp / "video.npz")],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        results.append({"check": "video dataset written by LeRobot", "pass": None,
                        "detail": "LeRobot could not write it here: " + (p.stderr.strip().splitlines() or [""])[-1]})
        print(f"[interop] INFO {results[-1]['detail']}")
        return
    info = json.loads((tmp / "lr_video" / "meta" / "info.json").read_text())
    codec = info["features"]["observation.images.front"].get("info", {}).get("video.codec")
    try:
        import_dataset(tmp / "lr_video", tmp / "imported_video")
        detail, refused = "imported", False
    except LeRobotFormatError as e:
        detail, refused = f"refused with one line: {e}", True
    results.append({"check": "video dataset (LeRobot's default) -> bora dataset import", "pass": None,
                    "detail": f"codec {codec}; {detail}", "refused": refused})
    print(f"[interop] INFO video dataset (codec {codec}): {detail}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interop-python", required=True)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "interop.json"))
    a = ap.parse_args()
    ver = subprocess.run([a.interop_python, "-c", "import lerobot, torch, datasets; print(lerobot.__version__, "
                          "torch.__version__, datasets.__version__)"], capture_output=True, text=True, check=True)
    lr_v, torch_v, ds_v = ver.stdout.split()
    results: list = []
    with tempfile.TemporaryDirectory(prefix="bora-interop-") as d:
        bora_to_lerobot(a.interop_python, Path(d), results)
        lerobot_to_bora(a.interop_python, Path(d), results)
        lerobot_video_to_bora(a.interop_python, Path(d), results)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    report = {"lerobot": lr_v, "interop_torch": torch_v, "datasets": ds_v, "python": platform.python_version(),
              "commit": commit.strip(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "passed": all(r["pass"] for r in results if r["pass"] is not None) and bool(results), "checks": results}
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "checks"}))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
