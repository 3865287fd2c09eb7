"""Object sets: shipped standard/unseen sets differ; external YAML sets (primitives and meshes) are used."""

import struct

import numpy as np
import pytest

from bora_sim.env import make_env
from bora_sim.objects import ObjectSet, ObjectSetError, load_object_set, resolve_object_set
from bora_sim.tasks import TASKS


def _key(o):
    return (
        o.shape,
        tuple(round(s, 4) for s in o.size),
        round(o.mass, 4),
        round(o.friction, 3),
        tuple(o.rgba),
    )


@pytest.mark.parametrize("task", sorted(TASKS))
def test_unseen_set_really_differs(task):
    std, uns = resolve_object_set(task, "standard"), resolve_object_set(task, "unseen")
    assert {_key(o) for o in std.objects}.isdisjoint({_key(o) for o in uns.objects})
    for u in uns.objects:  # every unseen object differs from every standard one in several properties
        for s in std.objects:
            n_diff = sum(
                [
                    u.shape != s.shape or u.size != s.size,
                    u.mass != s.mass,
                    u.friction != s.friction,
                    u.rgba != s.rgba,
                ]
            )
            assert n_diff >= 3, (u.name, s.name)


def test_external_primitive_yaml_set_is_used(tmp_path):
    p = tmp_path / "my_parcels.yaml"
    p.write_text(
        "task: pick_and_place\nobjects:\n  - {name: odd_parcel, shape: box, size: [0.02, 0.03, 0.025], "
        "mass: 0.2345, friction: 1.1, rgba: [0.1, 0.9, 0.9, 1]}\n"
    )
    env = make_env("pick_and_place", str(p), render=False)
    _, info = env.reset(seed=0)
    assert info["object"] == "odd_parcel" and info["object_set"] == "my_parcels"
    bid = env.model.body("package").id
    assert env.model.body_mass[bid] == pytest.approx(0.2345)
    g = env.model.geom("package_geom")
    assert np.allclose(g.size, [0.02, 0.03, 0.025]) and g.friction[0] == pytest.approx(1.1)


def _write_cube_stl(path, half):
    v = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)])
    faces = [
        (0, 1, 3),
        (0, 3, 2),
        (4, 6, 7),
        (4, 7, 5),
        (0, 4, 5),
        (0, 5, 1),
        (2, 3, 7),
        (2, 7, 6),
        (0, 2, 6),
        (0, 6, 4),
        (1, 5, 7),
        (1, 7, 3),
    ]
    with open(path, "wb") as f:
        f.write(b"\0" * 80 + struct.pack("<I", len(faces)))
        for a, b, c in faces:
            f.write(struct.pack("<3f", 0, 0, 0))
            for i in (a, b, c):
                f.write(struct.pack("<3f", *v[i]))
            f.write(b"\0\0")


def test_external_mesh_object_with_scale(tmp_path):
    _write_cube_stl(tmp_path / "cube.stl", 0.01)
    (tmp_path / "set.yaml").write_text(
        "objects:\n  - {name: mesh_toy, mesh: cube.stl, scale: [2.5, 2.5, 2.5], "
        "mass: 0.09, friction: 1.5, rgba: [0.5, 0.5, 0.9, 1], soft: true}\n"
    )
    oset = load_object_set(tmp_path / "set.yaml")
    assert oset.objects[0].half_extents() == pytest.approx((0.025, 0.025, 0.025), abs=1e-6)
    env = make_env("pick_plush_toy", tmp_path / "set.yaml", render=False)
    obs, info = env.reset(seed=1)
    assert info["object"] == "mesh_toy"
    for _ in range(5):
        env.step(np.concatenate([obs["arm_qpos"], obs["hand_qpos"]]))
    # the mesh toy rests on the table: its centre 2.5 cm up (soft contact sinks it a few mm)
    assert env.task.object_pos(env.data)[2] == pytest.approx(0.025, abs=0.006)


def test_bad_object_entries_name_the_field(tmp_path):
    with pytest.raises(ObjectSetError, match="mass"):
        load_object_set({"objects": [{"name": "x", "shape": "box", "size": [0.1, 0.1, 0.1], "mass": -1}]})
    with pytest.raises(ObjectSetError, match="size"):
        load_object_set({"objects": [{"name": "x", "shape": "sphere", "size": [0.1, 0.1]}]})
    with pytest.raises(ObjectSetError, match="unknown field"):
        load_object_set({"objects": [{"name": "x", "colour": [1, 0, 0, 1]}]})
    with pytest.raises(ObjectSetError, match="not found"):
        resolve_object_set("open_box", tmp_path / "missing.yaml")



def test_unseen_pig_stands_still():
    """The unseen pig is an ellipsoid standing on its z axis: it must be wider than tall in both horizontal
    directions (bottom radius of curvature h^2 / hz > hz), else it rolls away on its own before the grasp."""
    (pig,) = [o for o in resolve_object_set("pick_plush_toy", "unseen").objects if o.name == "pink_pig"]
    hx, hy, hz = pig.half_extents()
    assert hx**2 / hz > hz and hy**2 / hz > hz
    env = make_env("pick_plush_toy", ObjectSet(name="unseen", objects=(pig,)), render=False)
    obs, _ = env.reset(seed=3)
    p0 = env.task.object_pos(env.data)
    hold = np.concatenate([obs["arm_qpos"], obs["hand_qpos"]])
    for _ in range(10):  # 1 s
        env.step(hold)
    assert np.linalg.norm(env.task.object_pos(env.data)[:2] - p0[:2]) < 0.005
