"""Launch files, parameter files and the RViz config, checked against what the workspace installs.

Every node of the graph table (bora_policy/graph.py, read by both launch files and `bora up`) must be
a console script of its package, installed by `colcon build`, with a `main`; every parameter in
config/sim.yaml and config/deploy.yaml must be one its node declares; every topic named in them and
in config/bora.rviz must be part of the documented graph (or provided by the franka bring-up of
config/franka.yaml). The real robot's files (config/cameras.yaml, franka.yaml, franka_controllers.yaml,
hand_driver.yaml) go through the same functions deploy.launch.py calls, and their results are checked
against the documented topics, the sync and teleop sections, and the franka_ros2 / realsense-ros /
tf2_ros interfaces (argument names taken from their sources, cited below). Where launch_ros can be
imported (a real ROS 2 install), the launch descriptions are also generated.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bora_policy import graph
from bora_policy.common.graph_params import load_graph_params
from bora_policy.graph import DEPLOY_FILES, NODES, nodes_for

ROOT = Path(__file__).resolve().parents[3]
CAMERAS = load_graph_params(ROOT / "config" / "graph.yaml").cameras  # the graph's (config/graph.yaml)
NODE_SOURCES_MODULE = {n.name: n.module for n in NODES}
NODE_SOURCES = {n.name: ROOT / "src" / n.package / Path(*n.module.split(".")).with_suffix(".py") for n in NODES}
# node sections that are not our nodes: the hand driver's (deploy) is passed through by the launch file
FOREIGN_SECTIONS = {"hand_driver"}


def _declared_parameters(node_name: str) -> set[str]:
    """The parameters a node declares: its ParamSpec table (declared with descriptors by
    bora_policy.common.node.declare_params) + graph_file and the graph-wide ones (declare_graph_params)."""
    from bora_policy.common.graph_params import GRAPH_PARAM_NAMES
    from bora_policy.common.node import GRAPH_FILE_SPEC

    if node_name == "teleop":
        from bora_teleop.params import PARAMS

        names = set(PARAMS)
    elif node_name == "trainer":
        from bora_trainer.nodes.trainer_node import build_parser, param_specs

        names = {s.name for s in param_specs(build_parser().parse_args([]))}
    elif node_name == "policy":
        from bora_policy.nodes.policy_help import HELP_SPECS  # the help-request parameters (issue 19)
        from bora_policy.nodes.policy_params import SPECS

        names = {s.name for s in SPECS} | {s.name for s in HELP_SPECS}
    else:
        names = {s.name for s in importlib.import_module(NODE_SOURCES_MODULE[node_name]).SPECS}
    return names | {GRAPH_FILE_SPEC.name, *GRAPH_PARAM_NAMES}


def _documented_topics() -> set[str]:
    text = (ROOT / "docs" / "interfaces.md").read_text()
    topics = set(re.findall(r"`(/[\w/<>]+)`", text))
    rec = yaml.safe_load((ROOT / "config" / "record_topics.yaml").read_text())
    for group in rec["groups"].values():
        for entry in group:
            for cam in CAMERAS:
                topics.add(entry["topic"].replace("{cam}", cam))
    # /cameras/<cam>/... in the docs: expand for the configured cameras
    for t in list(topics):
        if "<cam>" in t:
            for cam in CAMERAS:
                topics.add(t.replace("<cam>", cam))
    return topics


@pytest.mark.parametrize("spec", NODES, ids=lambda s: s.name)
def test_every_node_is_an_installed_console_script_with_main(spec):
    setup_py = (ROOT / "src" / spec.package / "setup.py").read_text()
    assert f'"{spec.executable} = {spec.module}:main"' in setup_py, (
        f"{spec.package}/setup.py does not declare {spec.executable} = {spec.module}:main"
    )
    assert importlib.util.find_spec(spec.module) is not None, f"module {spec.module} not found"
    assert re.search(r"^def main\(", NODE_SOURCES[spec.name].read_text(), re.M), f"{spec.module} has no main()"
    exe = ROOT / "install" / spec.package / "lib" / spec.package / spec.executable
    assert exe.exists(), f"{exe} is not installed: run `make build`"


def _config(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("graph", ["sim", "deploy"])
def test_parameter_files_match_the_nodes(graph):
    params = yaml.safe_load((ROOT / "config" / f"{graph}.yaml").read_text())
    nodes = {n.name for n in nodes_for(graph)}
    missing = nodes - set(params) - {"trainer"}
    assert not missing, f"config/{graph}.yaml has no section for {sorted(missing)}"
    documented = _documented_topics()
    if graph == "deploy":  # topics of the franka bring-up (franka.launch.py + the configured arm controller)
        documented |= set(graph_mod_franka_topics().values())
    for section, body in params.items():
        if section in FOREIGN_SECTIONS:
            continue
        assert section in NODE_SOURCES, f"config/{graph}.yaml: section {section!r} is not a node of the graph"
        values = body["ros__parameters"]
        unknown = set(values) - _declared_parameters(section)
        assert not unknown, f"config/{graph}.yaml: {section} does not declare {sorted(unknown)}"
        for key, value in values.items():
            if isinstance(value, str) and value.startswith("/") and key.endswith(("topic", "_states", "prefix")):
                if key.endswith("prefix"):
                    assert any(t.startswith(value + "/") for t in documented), f"{section}.{key}={value}"
                else:
                    assert value in documented, f"config/{graph}.yaml: {section}.{key}={value} is undocumented"


def graph_mod_franka_topics() -> dict[str, str]:
    return graph.franka_topics(_config("franka.yaml"))


def test_hardware_facing_defaults_are_safe():
    deploy = yaml.safe_load((ROOT / "config" / "deploy.yaml").read_text())
    policy = deploy["policy"]["ros__parameters"]
    teleop = deploy["teleop"]["ros__parameters"]
    assert load_graph_params(ROOT / "config" / "graph.yaml", profile="deploy").residual_scale == 0.0, (
        "first run on hardware: residual scale 0 (README safety checklist; config/graph.yaml deploy profile)"
    )
    assert "residual_scale" not in policy  # graph-wide: only in config/graph.yaml
    assert teleop["watchdog_timeout_s"] <= 0.2 and max(teleop["arm_max_velocity"]) <= 0.5
    assert teleop["hand_max_velocity"] <= 1.0 and teleop["workspace_check"] is True
    assert teleop["udp_host"] == "127.0.0.1"
    # joint limits are tightened to the robot description (the node refuses to start without it)
    assert teleop["robot_description_topic"] == graph_mod_franka_topics()["robot_description"]
    # the arm controller interpolates between the 10 Hz targets (no position jumps at 1 kHz)
    franka = _config("franka.yaml")
    assert franka["controller"]["kind"] == "trajectory"
    args = franka["bringup"]["arguments"]
    assert args["use_fake_hardware"] == "false" and args["load_gripper"] == "false" and args["namespace"] == ""
    # the DexHand021 template limits are narrow (assumed; README) and every hand joint starts at 0
    hand = _config(teleop["retarget_file"].split("/")[-1])
    assert all(0.0 <= j["lower"] < j["upper"] <= 1.2 for j in hand["robot_joints"])
    # cameras: 30 Hz at 640x480, aligned depth, nothing extra on the USB bus
    for cam in CAMERAS:
        c = _config("cameras.yaml")[cam]
        assert c["rgb_camera.color_profile"] == c["depth_module.depth_profile"] == "640,480,30"
        assert c["align_depth.enable"] is True and c["pointcloud.enable"] is False
    assert graph.hand_driver(_config("hand_driver.yaml")) is None, "no vendor driver is started by default"


def test_rviz_config_shows_documented_topics():
    text = (ROOT / "config" / "bora.rviz").read_text()
    topics = set(re.findall(r"Value: (/[\w/]+)", text))
    assert topics, "config/bora.rviz names no topics"
    unknown = topics - _documented_topics()
    assert not unknown, f"config/bora.rviz shows topics nobody publishes: {sorted(unknown)}"
    for needed in ("/bora/value_markers", "/cameras/front/color/image_raw"):
        assert needed in topics, f"config/bora.rviz lacks {needed}"


@pytest.mark.parametrize("name", ["sim.launch.py", "deploy.launch.py"])
def test_launch_files_use_the_graph_table_and_installed_files(name):
    path = ROOT / "launch" / name
    tree = ast.parse(path.read_text())
    imported = {
        a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module in ("bora_policy.graph", "bora_policy.launch_nodes")
        for a in n.names
    }
    # our nodes: bora_policy.launch_nodes.our_nodes, which walks bora_policy.graph.NODES
    assert "our_nodes" in imported, f"{name} must build its nodes with bora_policy.launch_nodes.our_nodes"
    assert "from bora_policy.graph import NODES" in (ROOT / "src/bora_policy/bora_policy/launch_nodes.py").read_text()
    setup_py = (ROOT / "src" / "bora_policy" / "setup.py").read_text()
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for f in strings & {"sim.yaml", "deploy.yaml", "bora.rviz", *DEPLOY_FILES}:
        assert list((ROOT / "config").glob(f)), f"{name} references config/{f}, which does not exist"
    if name == "deploy.launch.py":
        # every real-robot file is a launch argument, read through the checked functions of bora_policy.graph
        assert set(DEPLOY_FILES) <= strings, f"{name} does not read {sorted(set(DEPLOY_FILES) - strings)}"
        needed = {"DRIVERS", "camera_drivers", "arm_controller", "franka_controllers", "franka_launch_arguments"}
        assert needed | {"hand_driver"} <= imported, f"{name} must use {sorted(needed - imported)}"
        # the dry run franka.yaml recommends is a launch argument that reaches franka.launch.py (found in review:
        # it was not declared, so use_fake_hardware:=true was ignored and the real robot started)
        declared = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
                    and getattr(n.func, "id", "") == "DeclareLaunchArgument" and n.args
                    and isinstance(n.args[0], ast.Constant)}
        assert {"use_fake_hardware", "robot_ip", "vla_path"} <= declared
        assert 'LaunchConfiguration("use_fake_hardware")' in path.read_text()
    # DDS stays on this machine: sim always, deploy unless the user exported a range
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" in strings and "LOCALHOST" in strings, name
    assert "glob('config/*.yaml')" in setup_py, "config/*.yaml must be installed to share/bora_policy/config"
    assert "glob('launch/*.launch.py')" in setup_py and "glob('config/*.rviz')" in setup_py
    if importlib.util.find_spec("launch_ros") is not None:  # real ROS 2 install: generate it
        spec = importlib.util.spec_from_file_location(name.replace(".", "_"), path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert mod.generate_launch_description().entities


# ---------------------------------------------------------------------------------------------------------
# The real robot's driver files, through the functions deploy.launch.py calls.
# Argument / parameter names below are from the drivers' sources:
#   franka_ros2: github.com/frankarobotics/franka_ros2 franka_bringup/launch/franka.launch.py (commit 0e31d3c)
#   realsense-ros 4.x: realsense2_camera/launch/rs_launch.py `configurable_parameters`
#   tf2_ros static_transform_publisher: --x --y --z --roll --pitch --yaw --frame-id --child-frame-id
FRANKA_LAUNCH_ARGUMENTS = {
    "robot_type", "arm_prefix", "namespace", "robot_ip", "load_gripper", "use_fake_hardware",
    "fake_sensor_commands", "joint_state_rate", "load_franka_robot_state_broadcaster", "controllers_yaml",
}  # fmt: skip
REALSENSE_PARAMETERS = {
    "camera_name", "camera_namespace", "serial_no", "usb_port_id", "device_type", "initial_reset",
    "enable_color", "rgb_camera.color_profile", "rgb_camera.color_format", "enable_depth",
    "depth_module.depth_profile", "depth_module.depth_format", "enable_infra", "enable_infra1", "enable_infra2",
    "enable_sync", "align_depth.enable", "pointcloud.enable", "enable_gyro", "enable_accel", "publish_tf",
    "tf_publish_rate", "base_frame_id", "tf_prefix", "json_file_path", "wait_for_device_timeout",
    "reconnect_timeout", "clip_distance", "spatial_filter.enable", "temporal_filter.enable",
    "decimation_filter.enable", "hole_filling_filter.enable",
}  # fmt: skip


def _cameras(**override) -> dict:
    cfg = _config("cameras.yaml")
    for cam in CAMERAS:
        cfg[cam]["serial_no"] = f"00012345678{CAMERAS.index(cam)}"
        cfg[cam].update(override.get(cam, {}))
    return cfg


def _parse_tf(args: tuple[str, ...]) -> dict[str, str]:
    assert len(args) % 2 == 0 and all(a.startswith("--") for a in args[::2]), args
    return dict(zip(args[::2], args[1::2]))


def test_camera_file_gives_three_realsense_nodes_on_the_documented_topics():
    cfg = _cameras()
    drivers = graph.camera_drivers(cfg)
    sync = _config("deploy.yaml")["sync"]["ros__parameters"]
    documented = _documented_topics()
    assert [d.name for d in drivers] == list(CAMERAS) and "camera_names" not in sync
    slop_fps = 1.0 / sync["slop"]
    for d in drivers:
        assert set(d.parameters) <= REALSENSE_PARAMETERS, sorted(set(d.parameters) - REALSENSE_PARAMETERS)
        # realsense-ros >= 4.54: topics under /<camera_namespace>/<camera_name>/
        assert "/" + d.namespace == sync["camera_topic_prefix"]
        for stream in ("color/image_raw", "color/camera_info", "aligned_depth_to_color/image_raw"):
            assert f"/{d.namespace}/{d.name}/{stream}" in documented
        fps = int(d.parameters["rgb_camera.color_profile"].split(",")[2])
        assert abs(fps - slop_fps) / fps < 0.05, "sync.slop must be one camera frame period"
        assert d.parameters["serial_no"] == cfg[d.name]["serial_no"]
        # the static TF: base -> <cam>_link with the configured pose, all six numbers and both frames
        tf = _parse_tf(d.tf_arguments)
        ext = cfg[d.name]["extrinsics"]
        assert tf["--frame-id"] == ext["parent_frame"] == sync["frame_id"]
        assert tf["--child-frame-id"] == f"{d.name}_link"
        got = [float(tf[k]) for k in ("--x", "--y", "--z", "--roll", "--pitch", "--yaw")]
        assert got == [float(v) for v in ext["xyz"] + ext["rpy"]]
        assert d.calibrated is False  # shipped placeholders: deploy.launch.py warns


def test_camera_file_errors_name_the_field():
    with pytest.raises(ValueError, match="left.serial_no is empty"):
        graph.camera_drivers(_config("cameras.yaml"))  # shipped: no serials yet
    assert len(graph.camera_drivers(_config("cameras.yaml"), require_serial=False)) == 3
    with pytest.raises(ValueError, match="front.serial_no must be a quoted string"):
        graph.camera_drivers(_cameras(front={"serial_no": 12345678}))
    with pytest.raises(ValueError, match="right.rgb_camera.color_profile: expected 'width,height,fps'"):
        graph.camera_drivers(_cameras(right={"rgb_camera.color_profile": "640x480"}))
    with pytest.raises(ValueError, match="left.camera_name must be 'left'"):
        graph.camera_drivers(_cameras(left={"camera_name": "camera"}))
    with pytest.raises(ValueError, match="align_depth.enable must be true"):
        graph.camera_drivers(_cameras(left={"align_depth.enable": False}))
    with pytest.raises(ValueError, match="left.extrinsics.xyz: expected 3 numbers"):
        graph.camera_drivers(_cameras(left={"extrinsics": {"parent_frame": "base", "xyz": [0, 0], "rpy": [0, 0, 0]}}))
    cfg = _cameras()
    del cfg["right"]
    with pytest.raises(ValueError, match="one section per camera"):
        graph.camera_drivers(cfg)


def test_franka_file_matches_the_teleop_and_the_bringup():
    franka = _config("franka.yaml")
    teleop = _config("deploy.yaml")["teleop"]["ros__parameters"]
    ctrl = graph.arm_controller(franka)
    # what deploy.launch.py enforces at start: the teleop writes what the controller reads
    assert (teleop["arm_command_type"], teleop["arm_command_topic"]) == (ctrl["arm_command_type"], ctrl["topic"])
    assert teleop["arm_joint_names"] == ctrl["joints"]
    from bora_teleop.params import PARAMS

    sync = _config("deploy.yaml")["sync"]["ros__parameters"]
    arm_states = {**PARAMS, **teleop}["arm_joint_states_topic"]
    assert graph.franka_topics(franka)["joint_states"] == arm_states == sync["arm_joint_states"]
    args = graph.franka_launch_arguments(franka, robot_ip="10.0.0.7", controllers_yaml="/tmp/c.yaml")
    assert set(args) <= FRANKA_LAUNCH_ARGUMENTS, sorted(set(args) - FRANKA_LAUNCH_ARGUMENTS)
    assert all(isinstance(v, str) for v in args.values())
    assert args["robot_ip"] == "10.0.0.7" and args["controllers_yaml"] == "/tmp/c.yaml"
    assert args["use_fake_hardware"] == franka["bringup"]["arguments"]["use_fake_hardware"] == "false"
    assert graph.franka_launch_arguments(franka, use_fake_hardware="True")["use_fake_hardware"] == "true"
    with pytest.raises(ValueError, match="use_fake_hardware must be 'true' or 'false'"):
        graph.franka_launch_arguments(franka, use_fake_hardware="yes")
    assert graph.franka_launch_arguments(franka)["robot_ip"] == franka["bringup"]["arguments"]["robot_ip"]
    with pytest.raises(ValueError, match="robot_type must be fr3, fer or fp3"):
        graph.franka_launch_arguments({"bringup": {"arguments": {"robot_type": "panda", "robot_ip": "1.2.3.4"}}})


def test_franka_controllers_file_is_completed_per_controller_kind():
    franka, base = _config("franka.yaml"), _config("franka_controllers.yaml")
    out = graph.franka_controllers(franka, base)
    assert yaml.safe_load(yaml.safe_dump(out)) == out  # what deploy.launch.py writes reads back the same
    cm = out["/**"]["controller_manager"]["ros__parameters"]
    # franka.launch.py spawns these two from the same file (it replaces franka_bringup's controllers.yaml)
    assert cm["joint_state_broadcaster"]["type"] == "joint_state_broadcaster/JointStateBroadcaster"
    assert cm["franka_robot_state_broadcaster"]["type"] == "franka_robot_state_broadcaster/FrankaRobotStateBroadcaster"
    assert cm["update_rate"] == 1000
    assert cm["arm_controller"]["type"] == "joint_trajectory_controller/JointTrajectoryController"
    p = out["/**"]["arm_controller"]["ros__parameters"]
    assert p["joints"] == [f"fr3_joint{i}" for i in range(1, 8)]
    assert p["command_interfaces"] == ["position"] and p["state_interfaces"] == ["position", "velocity"]
    assert (
        "controller_manager" in base["/**"]
        and "arm_controller" not in base["/**"]["controller_manager"]["ros__parameters"]
    ), "the base file must not be modified in place"

    fwd = {**franka, "controller": {**franka["controller"], "kind": "forward"}}
    c = graph.arm_controller(fwd)
    assert (c["topic"], c["arm_command_type"]) == ("/arm_controller/commands", "forward")
    p = graph.franka_controllers(fwd, base)["/**"]["arm_controller"]["ros__parameters"]
    assert p["interface_name"] == "position" and "command_interfaces" not in p

    imp = {**franka, "controller": {**franka["controller"], "kind": "joint_impedance"}}
    with pytest.raises(ValueError, match="needs controller.impedance_type"):
        graph.arm_controller(imp)
    imp["controller"]["impedance_type"] = "my_controllers/JointImpedanceTargetController"
    c = graph.arm_controller(imp)
    assert (c["type"], c["interface"], c["arm_command_type"]) == (
        "my_controllers/JointImpedanceTargetController",
        "effort",
        "forward",
    )
    panda = {**franka, "bringup": {"arguments": {**franka["bringup"]["arguments"], "robot_type": "fer"}}}
    with pytest.raises(ValueError, match="do not match robot_type 'fer'"):
        graph.arm_controller(panda)
    ns = {**franka, "bringup": {"arguments": {**franka["bringup"]["arguments"], "namespace": "left_arm"}}}
    assert graph.franka_topics(ns) == {
        "arm_command": "/left_arm/arm_controller/joint_trajectory",
        "joint_states": "/left_arm/franka/joint_states",
        "robot_description": "/left_arm/robot_description",
    }


def test_hand_driver_file():
    assert graph.hand_driver(_config("hand_driver.yaml")) is None
    h = graph.hand_driver({"package": "my_hand", "executable": "driver", "remappings": {"cmd": "/hand/command"}})
    assert h["name"] == "hand_driver" and h["remappings"] == [("cmd", "/hand/command")]
    with pytest.raises(ValueError, match="give both package and executable"):
        graph.hand_driver({"package": "my_hand"})


def test_every_driver_package_is_installed_by_the_docker_image():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    apt = set(re.findall(r"ros-\$\{ROS_DISTRO\}-([\w-]+)", text))
    for pkg, _ in graph.DRIVERS.values():
        if pkg == "franka_bringup":  # built from source (franka_ros2 >= 1.0), mounted: see docker/Dockerfile
            assert "franka_ros2" in text
            continue
        assert pkg.replace("_", "-") in apt, f"docker/Dockerfile does not install ros-<distro>-{pkg}"
    kind = _config("franka.yaml")["controller"]["kind"]
    ctype = graph.ARM_CONTROLLERS[kind][0]
    assert ctype.split("/")[0].replace("_", "-") in apt, f"docker/Dockerfile does not install {ctype}"


@pytest.mark.parametrize("name", ["sim.launch.py", "deploy.launch.py"])
def test_launch_files_express_the_supervision_policy_and_take_a_critic(name):
    # The supervision of `bora up` (bora_trainer/supervisor.py): respawn nodes restart with the graph table's
    # delay and retry limit, a critical node's exit shuts the launch down (launch_ros Node accepts these
    # ExecuteProcess arguments: respawn, respawn_delay, respawn_max_retries (Iron+), on_exit).
    # both launch files build our nodes with bora_policy/launch_nodes.py (one node loop, one supervision)
    launch_tree = ast.parse((ROOT / "launch" / name).read_text())
    profile = name.split(".")[0]
    calls = [n for n in ast.walk(launch_tree) if isinstance(n, ast.Call)]
    opaque = [c for c in calls if getattr(c.func, "id", "") == "OpaqueFunction"]
    assert any(
        any(k.arg == "function" and getattr(k.value, "id", "") == "our_nodes" for k in c.keywords)
        and profile in {getattr(v, "value", None) for k in c.keywords if k.arg == "kwargs" for v in k.value.values}
        for c in opaque
    ), f"{name}: our nodes must come from OpaqueFunction(function=our_nodes, kwargs={{'profile': '{profile}'}})"
    tree = ast.parse((ROOT / "src" / "bora_policy" / "bora_policy" / "launch_nodes.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "supervision")
    keys = {k.value for n in ast.walk(fn) if isinstance(n, ast.Dict) for k in n.keys if isinstance(k, ast.Constant)}
    assert {"respawn", "respawn_delay", "respawn_max_retries", "on_exit"} <= keys
    names = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
    assert {"RESPAWN_DELAY_S", "RESPAWN_MAX_RETRIES", "Shutdown"} <= names
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]
    ours = [
        c for c in calls if any(k.arg is None and getattr(k.value.func, "id", "") == "supervision" for k in c.keywords)
    ]
    assert len(ours) == 1, f"{name}: the graph-table Node(...) must take **supervision(spec)"
    strings = {n.value for n in ast.walk(launch_tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"critic_path", "graph_file", "control_hz"} <= strings, f"{name}: critic_path / graph_file / control_hz"
    assert any(n.name == "policy" and n.respawn and not n.critical for n in NODES)
    assert all(n.critical and not n.respawn for n in NODES if n.name in ("teleop", "sim_bridge"))


def test_a_teardown_that_hangs_leaves_with_its_stacks_and_exit_code_1():
    """common/node.guard_teardown: armed once a node's work is done, a hung teardown (DDS, interpreter exit)
    ends by itself with every thread's stack on stderr, instead of waiting for the supervisor's SIGKILL."""
    code = (
        "import time\n"
        "from bora_policy.common.node import guard_teardown\n"
        "guard_teardown(0.5)\n"
        "def hung_in_destroy():\n"
        "    time.sleep(60)\n"
        "hung_in_destroy()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50)  # not the 60 s
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Timeout (0:00:00.500000)!" in r.stderr and "in hung_in_destroy" in r.stderr, r.stderr[-2000:]
