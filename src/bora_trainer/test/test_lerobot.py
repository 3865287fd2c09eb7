"""LeRobotDataset v3 export -> import round trips (episodes with every BORA field; online buffers),
and the written layout against LeRobot's documented v3 schema."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from bora_policy.common.episodes import DatasetMeta, read_episode, read_meta, write_episode
from bora_trainer.data.lerobot import export_episodes, export_replay, import_dataset, main
from bora_trainer.data.lerobot_v3 import read_lerobot
from bora_trainer.data.replay import ChunkReplayBuffer, ReplaySpec

META = DatasetMeta(
    fps=15.0,
    camera_names=["left", "front"],
    image_size=[6, 8],
    arm_joint_names=[f"fr3_joint{i}" for i in range(1, 8)],
    hand_joint_names=["h0", "h1"],
    tasks=["pick_plush_toy", "open_box"],
)


def make_dataset(root, rng):
    eps = {}
    for eid, (T, task) in enumerate([(7, "pick_plush_toy"), (5, "open_box"), (9, "pick_plush_toy")]):
        arrays = {
            "color": rng.integers(0, 256, (T, 2, 6, 8, 3), dtype=np.uint8),
            "depth": rng.uniform(0.1, 2.0, (T, 2, 6, 8)).astype(np.float32),
            "state": rng.normal(size=(T, 9)).astype(np.float32),
            "action": rng.normal(size=(T, 9)).astype(np.float32),
            "policy_action": rng.normal(size=(T, 9)).astype(np.float32),
            "base_action": rng.normal(size=(T, 9)).astype(np.float32),
            "z": rng.normal(size=(T, 5)).astype(np.float32),
            "chunk_start": np.arange(T) % 4 == 0,
            "is_intervention": rng.random(T) < 0.4,
            "beta": rng.random(T).astype(np.float32),
            "reward": rng.normal(size=T).astype(np.float32),
            "done": np.arange(T) == T - 1,
        }
        info = {
            "task": task,
            "instruction": f"please {task}",
            "object_set": "standard",
            "seed": eid,
            "success": eid != 1,
            "outcome": "success" if eid != 1 else "failure",
            "interventions": [{"start": 1, "end": 3, "recovered": 2}],
            "source": "policy",
            "quality": {"noise": 0.1 * eid},
        }
        write_episode(root, eid + 3, arrays, info, META)
        eps[eid + 3] = (arrays, info)
    return eps


def test_episode_export_import_round_trip_preserves_every_field(tmp_path):
    rng = np.random.default_rng(0)
    eps = make_dataset(tmp_path / "src", rng)
    export_episodes(tmp_path / "src", tmp_path / "lr")
    import_dataset(tmp_path / "lr", tmp_path / "back")
    assert read_meta(tmp_path / "back") == read_meta(tmp_path / "src")
    for eid, (arrays, info) in eps.items():
        got, ginfo = read_episode(tmp_path / "back", eid)
        assert sorted(got) == sorted(arrays)
        for k, v in arrays.items():
            assert got[k].dtype == v.dtype, k
            np.testing.assert_array_equal(got[k], v, err_msg=k)
        want = dict(info, episode_id=eid, num_steps=len(arrays["action"]))
        assert ginfo == want


def test_written_layout_follows_lerobot_v3(tmp_path):
    make_dataset(tmp_path / "src", np.random.default_rng(1))
    out = export_episodes(tmp_path / "src", tmp_path / "lr")
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 15.0
    assert info["total_episodes"] == 3 and info["total_frames"] == 21 and info["total_tasks"] == 2
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    f = info["features"]
    assert f["observation.images.front"] == {
        "dtype": "image",
        "shape": [6, 8, 3],
        "names": ["height", "width", "channels"],
    }
    assert f["observation.state"]["shape"] == [9] and f["observation.state"]["names"][0] == "fr3_joint1"
    assert f["action"]["dtype"] == "float32" and f["next.reward"]["shape"] == [1]
    for k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert k in f
    data = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet")
    assert set(data.column_names) == set(f)
    assert data.num_rows == 21 and data.column("index").to_pylist() == list(range(21))
    img = data.column("observation.images.left").type
    assert img.num_fields == 2 and img.field(0).name == "bytes" and img.field(1).name == "path"
    import pyarrow as pa

    st = data.column("observation.state").type
    assert pa.types.is_fixed_size_list(st) and st.list_size == 9 and st.value_type == pa.float32()
    eps = pq.read_table(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [(e["dataset_from_index"], e["dataset_to_index"], e["length"]) for e in eps] == [
        (0, 7, 7),
        (7, 12, 5),
        (12, 21, 9),
    ]
    assert eps[1]["tasks"] == ["open_box"] and eps[0]["data/file_index"] == 0
    assert "stats/action/mean" in eps[0]
    import pandas as pd

    tasks = pd.read_parquet(out / "meta" / "tasks.parquet")
    assert tasks.loc["open_box", "task_index"] == 0 and tasks.loc["pick_plush_toy", "task_index"] == 1
    ti = data.column("task_index").to_pylist()
    assert ti[7:12] == [0] * 5 and ti[:7] == [1] * 7
    stats = json.loads((out / "meta" / "stats.json").read_text())
    frames = read_lerobot(out)["frames"]
    np.testing.assert_allclose(stats["action"]["mean"], frames["action"].mean(0), atol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], frames["action"].std(0), atol=1e-6)
    assert np.asarray(stats["observation.images.left"]["mean"]).shape == (3, 1, 1)


def test_replay_buffer_round_trip_and_cli(tmp_path):
    rng = np.random.default_rng(2)
    spec = ReplaySpec(z_dim=5, state_dim=9, action_dim=9, chunk_size=4, normalizer_version="abc")
    buf = ChunkReplayBuffer(spec, tmp_path / "buf")
    n = 11
    rows = {
        k: (
            rng.random((n, *shape)) < 0.5
            if dt == np.bool_
            else rng.integers(0, 3, (n, *shape))
            if dt == np.int64
            else rng.normal(size=(n, *shape))
        )
        for k, (shape, dt) in buf.shapes.items()
    }
    rows["returns_gamma"] = rng.choice([0.0, 0.5, 0.99], n)  # the discount of stored returns (0: none) is checked
    buf.add(rows)
    buf.flush()
    assert main(["export", str(tmp_path / "buf"), "--out", str(tmp_path / "lr")]) == 0
    assert main(["import", str(tmp_path / "lr"), "--out", str(tmp_path / "back")]) == 0
    back = ChunkReplayBuffer.open(tmp_path / "back", expect=spec)
    a, b = buf.arrays(), back.arrays()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    info = json.loads((tmp_path / "lr" / "meta" / "info.json").read_text())
    assert info["features"]["action"]["shape"] == [4, 9] and info["total_frames"] == n
    assert main(["export", str(tmp_path / "buf"), "--out", str(tmp_path / "lr")]) == 2  # refuses to overwrite


def test_import_rejects_non_v3(tmp_path):
    make_dataset(tmp_path / "src", np.random.default_rng(3))
    out = export_episodes(tmp_path / "src", tmp_path / "lr")
    info = json.loads((out / "meta" / "info.json").read_text())
    info["codebase_version"] = "v2.1"
    (out / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="codebase_version"):
        import_dataset(out, tmp_path / "back")
    _ = export_replay  # exported API
