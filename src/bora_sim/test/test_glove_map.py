"""`bora sim glove-map`: the scripted operator's glove -> Shadow map as plain data with actuator limits."""

from __future__ import annotations

import numpy as np
import yaml

from bora_sim.cli import main


def test_glove_map_cli_writes_the_operator_map_with_limits(tmp_path):
    out = tmp_path / "m.yaml"
    assert main(["glove-map", "--out", str(out)]) == 0
    d = yaml.safe_load(out.read_text())
    h, r = d["human_joint_names"], d["robot_joint_names"]
    assert (len(h), len(r), len(d["lower"]), len(d["upper"])) == (22, 18, 18, 18)
    m = np.asarray(d["matrix"])
    assert m.shape == (18, 22) and np.all(np.asarray(d["lower"]) < np.asarray(d["upper"]))
    # by hand (operator.shadow_retarget_map): FFJ3 <- index_abd, FFJ1 <- (index_pip + index_dip) / 2,
    # THJ0 <- -thumb_ip
    row = dict(zip(r, m))
    assert row["hand/robot0:FFJ3"][h.index("index_abd")] == 1.0 and row["hand/robot0:FFJ3"].sum() == 1.0
    assert row["hand/robot0:FFJ1"][h.index("index_pip")] == 0.5 == row["hand/robot0:FFJ1"][h.index("index_dip")]
    assert row["hand/robot0:THJ0"][h.index("thumb_ip")] == -1.0
    # the Shadow FFJ2 actuator range of the gymnasium-robotics asset is [0, 1.571] rad
    j = r.index("hand/robot0:FFJ2")
    assert (d["lower"][j], d["upper"][j]) == (0.0, 1.571)
