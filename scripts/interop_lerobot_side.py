"""The LeRobot side of `make interop` (runs in .interop-venv with the released `lerobot`; no BORA import).

    python interop_lerobot_side.py read  DATASET_ROOT OUT.npz   # LeRobotDataset -> arrays
    python interop_lerobot_side.py write DATASET_ROOT OUT.npz   # a dataset written by LeRobot + its arrays
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local datasets only; nothing from a hub

import numpy as np  # noqa: E402


def read(root: str, out: str) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("bora/interop_export", root=root)
    cams = [k for k in ds.meta.features if k.startswith("observation.images.")]
    arrays = {"state": [], "action": [], "episode_index": [], "frame_index": [], "timestamp": [], "task": []}
    imgs = {k: [] for k in cams}
    for i in range(len(ds)):
        item = ds[i]
        arrays["state"].append(item["observation.state"].numpy())
        arrays["action"].append(item["action"].numpy())
        for k in ("episode_index", "frame_index", "timestamp"):
            arrays[k].append(float(item[k]))
        arrays["task"].append(item["task"])
        for k in cams:  # LeRobot returns float CHW in [0, 1]
            imgs[k].append(np.round(item[k].numpy().transpose(1, 2, 0) * 255).astype(np.uint8))
    eps = ds.meta.episodes
    res = {k: np.asarray(v) for k, v in arrays.items()}
    res["ep_from"] = np.asarray(eps["dataset_from_index"])
    res["ep_to"] = np.asarray(eps["dataset_to_index"])
    for k, v in imgs.items():
        res[f"img:{k}"] = np.stack(v)
    np.savez(out, **res)
    import lerobot

    print(json.dumps({"lerobot": lerobot.__version__, "num_frames": ds.num_frames, "num_episodes": ds.num_episodes,
                      "fps": ds.fps, "cameras": cams, "codebase_version": ds.meta.info["codebase_version"]}))


def write(root: str, out: str, video: bool = False) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    H, W = (64, 64) if video else (16, 16)  # SVT-AV1 (LeRobot's default codec) dies with SIGFPE on 16x16
    features = {
        "observation.state": {"dtype": "float32", "shape": (4,), "names": ["j0", "j1", "j2", "j3"]},
        "action": {"dtype": "float32", "shape": (4,), "names": ["j0", "j1", "j2", "j3"]},
        "observation.images.front": {"dtype": "video" if video else "image", "shape": (H, W, 3),
                                     "names": ["height", "width", "channels"]},
    }
    ds = LeRobotDataset.create("lerobot/interop_written", fps=10, features=features, root=root,
                               robot_type="test_arm", use_videos=video)
    lengths = [6, 9, 5]
    states, actions, images, tasks = [], [], [], []
    for e, T in enumerate(lengths):
        for t in range(T):
            s = (e + 0.01 * t + 0.1 * np.arange(4)).astype(np.float32)  # closed forms, checked on the BORA side
            a = (s + 0.5).astype(np.float32)
            img = np.full((H, W, 3), (10 * e + t) % 256, np.uint8)
            img[:, :, 2] = (np.arange(W) * 8 % 256).astype(np.uint8)[None, :]
            task = f"task {e % 2}"
            ds.add_frame({"observation.state": s, "action": a, "observation.images.front": img, "task": task})
            states.append(s), actions.append(a), images.append(img), tasks.append(task)
        ds.save_episode()
    ds.finalize()
    np.savez(out, state=np.stack(states), action=np.stack(actions), image=np.stack(images),
             lengths=np.asarray(lengths), task=np.asarray(tasks))
    import lerobot

    print(json.dumps({"lerobot": lerobot.__version__, "episodes": len(lengths), "frames": int(sum(lengths))}))


if __name__ == "__main__":
    if sys.argv[1] == "write-video":  # LeRobot's default camera storage (video files)
        write(sys.argv[2], sys.argv[3], video=True)
    else:
        {"read": read, "write": write}[sys.argv[1]](sys.argv[2], sys.argv[3])
