"""Graph-wide parameters (config/graph.yaml) and parameters declared with descriptors, on real nodes.

* the graph file loader: values, the deploy profile, overrides, one-line errors naming the key;
* every node refuses an out-of-range parameter at start (real process, real rclpy): exit 2 and ONE line
  naming the node, the parameter and the range; a node given another graph value than the file's refuses too;
* through the real parameter services (what ``ros2 param describe`` / ``ros2 param get`` call): a running
  node's descriptions, ranges and read-only flags are visible, its graph values are the graph file's, and a
  read-only parameter cannot be set at run time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bora_policy.common.graph_params import (
    GraphParamsError,
    graph_params_from_dict,
    load_graph_params,
    write_graph_file,
)

ROOT = Path(__file__).resolve().parents[3]
GRAPH = {"control_hz": 20.0, "chunk_size": 8, "cameras": ["left", "wrist"], "residual_scale": 0.3}


def _graph_file(tmp: Path, **over) -> Path:
    p = tmp / "graph.yaml"
    p.write_text(yaml.safe_dump({**GRAPH, **over}))
    return p


def test_the_shipped_graph_file_and_its_deploy_profile():
    sim = load_graph_params(ROOT / "config" / "graph.yaml")
    dep = load_graph_params(ROOT / "config" / "graph.yaml", profile="deploy")
    assert sim.control_hz == dep.control_hz == 10.0 and sim.chunk_size == dep.chunk_size == 16
    assert sim.cameras == dep.cameras == ("left", "front", "right")
    assert (sim.residual_scale, dep.residual_scale) == (0.2, 0.0)  # the robot's safe first-run value
    # node sections repeat none of them (one source)
    for name in ("sim.yaml", "deploy.yaml"):
        sections = yaml.safe_load((ROOT / "config" / name).read_text())
        for node, body in sections.items():
            dup = {"control_hz", "chunk_size", "cameras", "camera_names", "residual_scale", "rate_hz"}
            assert not dup & set(body["ros__parameters"]), f"config/{name}: {node} repeats a graph parameter"


def test_loader_values_overrides_and_round_trip(tmp_path):
    g = load_graph_params(_graph_file(tmp_path), overrides={"control_hz": 30})
    assert (g.control_hz, g.chunk_size, g.cameras, g.residual_scale) == (30.0, 8, ("left", "wrist"), 0.3)
    again = load_graph_params(write_graph_file(g, tmp_path / "out" / "g.yaml"))
    assert again.as_dict() == g.as_dict() == {**GRAPH, "control_hz": 30.0}


@pytest.mark.parametrize(
    "data, message",
    [
        ({**GRAPH, "control_hz": 0.0}, "control_hz = 0.0 is out of range: expected in [1, 1000]"),
        ({**GRAPH, "residual_scale": 1.5}, "residual_scale = 1.5 is out of range: expected in [0, 1]"),
        ({**GRAPH, "chunk_size": 8.5}, "chunk_size = 8.5: expected an integer in [1, 1024]"),
        ({**GRAPH, "cameras": []}, "cameras = []: expected a non-empty list of camera names"),
        ({**GRAPH, "cameras": ["left", "left"]}, "expected distinct names"),
        ({**GRAPH, "rate_hz": 10.0}, "unknown keys ['rate_hz']"),
        ({k: v for k, v in GRAPH.items() if k != "chunk_size"}, "missing ['chunk_size']"),
        ({**GRAPH, "deploy": {"alpha": 0.0}}, "section deploy: unknown keys ['alpha']"),
    ],
)
def test_loader_errors_are_one_line_naming_the_key(data, message):
    with pytest.raises(GraphParamsError) as e:
        graph_params_from_dict(data, "g.yaml", profile="deploy")
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("g.yaml")


# ------------------------------------------------------------------ real nodes


def _env() -> dict:
    return dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")


def _refused(module: str, *params: str) -> str:
    cmd = [sys.executable, "-m", module, "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
    out = (r.stdout + r.stderr).strip().splitlines()
    assert r.returncode == 2, f"{module} {params}: exit {r.returncode}\n" + "\n".join(out[-20:])
    assert "Traceback" not in r.stderr, r.stderr
    return out[-1]


@pytest.mark.parametrize(
    "module, param, line",
    [
        ("bora_policy.nodes.sync_node", "slop:=-0.5",
         "sync: parameter slop = -0.5 is out of range: expected in [0, 1]"),
        ("bora_policy.nodes.policy_node", "replan_steps:=0",
         "policy: parameter replan_steps = 0 is out of range: expected in [1, 1024]"),
        ("bora_policy.nodes.policy_node", "replan_steps:=17",  # config/graph.yaml: chunk_size 16, control_hz 10
         "policy: parameter replan_steps = 17 is out of range: expected in [1, 16] (a chunk of 16 rows at "
         "chunk_hz 10 lasts 16 control ticks at control_hz 10)"),
        ("bora_policy.nodes.policy_node", "initial_mode:=fast",
         "policy: parameter initial_mode = 'fast': expected one of ['autonomous', 'paused', 'hold']"),
        ("bora_teleop.nodes.teleop_node", "watchdog_timeout_s:=0.0",
         "teleop: parameter watchdog_timeout_s = 0.0 is out of range: expected in [0.01, 10]"),
        ("bora_teleop.nodes.teleop_node", "arm_max_velocity:=[0.5,0.5,0.5,0.5,0.5,0.5,50.0]",
         "teleop: parameter arm_max_velocity = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 50.0] is out of range: "
         "expected in [0, 10]"),
        ("bora_sim.nodes.bridge_node", "image_size:=8",
         "sim_bridge: parameter image_size = 8 is out of range: expected in [16, 1024]"),
        ("bora_trainer.nodes.trainer_node", "gate_timeout_s:=-1.0",
         "bora_trainer: parameter gate_timeout_s = -1.0 is out of range: expected in [0, 86400]"),
    ],
)
def test_out_of_range_parameter_is_refused_at_start_in_one_line(module, param, line):
    assert _refused(module, param) == f"refused to start: {line}"


def test_a_node_given_another_graph_value_than_the_graph_file_refuses(tmp_path):
    # the desync of issue 15: one node on another control rate than the rest of the graph
    gf = _graph_file(tmp_path)
    last = _refused("bora_policy.nodes.sync_node", f"graph_file:={gf}", "control_hz:=10.0")
    assert last.startswith(
        f"refused to start: sync: parameter control_hz = 10.0 differs from the graph file {gf} (20.0)"
    )
    last = _refused("bora_teleop.nodes.teleop_node", f"graph_file:={gf}", "cameras:=[left]")
    assert "teleop: parameter cameras = ['left'] differs from the graph file" in last
    bad = _graph_file(tmp_path, control_hz=5000.0)
    last = _refused("bora_trainer.nodes.recorder_node", f"graph_file:={bad}")
    assert last == (
        f"refused to start: bora_recorder: parameter graph_file: {bad}: parameter control_hz = 5000.0 is out of "
        "range: expected in [1, 1000]"
    )


@pytest.fixture(scope="module")
def sync_node(tmp_path_factory):
    """A real sync node reading a 20 Hz graph file, and a client node of its parameter services."""
    import rclpy

    tmp = tmp_path_factory.mktemp("sync")
    gf = _graph_file(tmp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bora_policy.nodes.sync_node", "--ros-args", "-r", "__node:=sync_params_test",
         "-p", f"graph_file:={gf}", "-p", "slop:=0.02"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
    )
    rclpy.init()
    node = rclpy.create_node("param_services_probe")
    yield node, gf
    node.destroy_node()
    rclpy.try_shutdown()
    proc.send_signal(2)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _call(node, srv_type, name: str, req):
    import rclpy

    cli = node.create_client(srv_type, f"/sync_params_test/{name}")
    assert cli.wait_for_service(timeout_sec=60), f"/sync_params_test/{name} not available"
    fut = cli.call_async(req)
    end = time.monotonic() + 20
    while not fut.done() and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    assert fut.done(), f"{name}: no answer"
    return fut.result()


def test_descriptors_and_graph_values_through_the_parameter_services(sync_node):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters, SetParameters

    node, gf = sync_node
    names = _call(node, ListParameters, "list_parameters", ListParameters.Request()).result.names
    assert {"graph_file", "control_hz", "chunk_size", "cameras", "residual_scale", "slop"} <= set(names)
    want = ["control_hz", "slop", "cameras", "graph_file", "queue_size"]
    d = {x.name: x for x in _call(node, DescribeParameters, "describe_parameters",
                                  DescribeParameters.Request(names=want)).descriptors}
    # `ros2 param describe` prints exactly these fields
    assert all(d[n].description for n in want)
    assert d["control_hz"].read_only and "config/graph.yaml" in d["control_hz"].description
    r = d["control_hz"].floating_point_range[0]
    assert (r.from_value, r.to_value) == (1.0, 1000.0) and d["control_hz"].type == ParameterType.PARAMETER_DOUBLE
    r = d["slop"].floating_point_range[0]
    assert (r.from_value, r.to_value) == (0.0, 1.0) and d["slop"].additional_constraints == "in [0, 1]"
    r = d["queue_size"].integer_range[0]
    assert (r.from_value, r.to_value, r.step) == (1, 1000, 1)
    assert d["cameras"].type == ParameterType.PARAMETER_STRING_ARRAY
    v = _call(node, GetParameters, "get_parameters", GetParameters.Request(names=want)).values
    assert v[0].double_value == 20.0 and v[1].double_value == 0.02  # the graph file's rate; the override
    assert list(v[2].string_array_value) == ["left", "wrist"] and v[3].string_value == str(gf)
    # read-only: a change at run time is refused (the node reads its parameters once, at start)
    res = _call(node, SetParameters, "set_parameters", SetParameters.Request(parameters=[
        Parameter(name="control_hz", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=10.0))
    ])).results[0]
    assert not res.successful and "read-only" in res.reason
    v = _call(node, GetParameters, "get_parameters", GetParameters.Request(names=["control_hz"])).values
    assert v[0].double_value == 20.0


def test_library_defaults_are_the_graph_files():
    # the library's own control_hz / residual_scale defaults are read from config/graph.yaml, not written again
    from bora_policy.runtime.chunk_executor import ChunkExecutorConfig
    from bora_policy.runtime.help_monitor import HelpMonitorConfig
    from bora_policy.runtime.policy_runner import PolicyRunnerConfig
    from bora_trainer.demo.config import DemoConfig
    from bora_trainer.evaluate import build_parser

    g = load_graph_params(ROOT / "config" / "graph.yaml")
    assert ChunkExecutorConfig().control_hz == HelpMonitorConfig().control_hz == DemoConfig().control_hz == g.control_hz
    assert PolicyRunnerConfig().residual_scale == g.residual_scale
    assert build_parser().parse_args(["--run", "x", "--out", "y"]).residual_scale == g.residual_scale
