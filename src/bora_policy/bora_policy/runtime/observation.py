"""``bora_msgs/Observation`` -> arrays for the policy (duck-typed on the message; no rclpy).

``observation_arrays(obs)`` returns ``color [n_cam, H, W, 3] uint8`` (RGB), ``depth [n_cam, H, W]
float32`` metres (empty when the observation carries no depth), ``state [7 + n_hand] float32``
(arm then hand positions: ``bora_policy.common.state``, the one definition of the layout), the
instruction and the stamp in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bora_policy.common.image_conv import depth_to_metres, to_rgb
from bora_policy.common.state import state_names, state_vector
from bora_policy.runtime.processor import ObservationProcessor, ProcessorConfig


@dataclass
class ObservationArrays:
    color: np.ndarray
    depth: np.ndarray
    state: np.ndarray
    instruction: str
    stamp: float
    episode_id: int
    step: int
    joint_names: list[str]


def stamp_seconds(stamp) -> float:
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def observation_arrays(obs, with_depth: bool = False) -> ObservationArrays:
    if len(obs.color) != len(obs.camera_names):
        raise ValueError(
            f"Observation: {len(obs.color)} colour images for {len(obs.camera_names)} camera_names"
        )
    # colour images as RGB, stacked in the message's camera order by the processor
    proc = ObservationProcessor(cfg=ProcessorConfig(camera_names=tuple(obs.camera_names)))
    color = proc.stack_cameras([to_rgb(m) for m in obs.color])
    depth = (
        np.stack([depth_to_metres(m) for m in obs.depth])
        if with_depth and len(obs.depth)
        else np.zeros((0,), np.float32)
    )
    state = state_vector(obs.arm.position, obs.hand.position)
    names = state_names(obs.arm.name, obs.hand.name)
    return ObservationArrays(
        color,
        depth,
        state,
        obs.instruction,
        stamp_seconds(obs.header.stamp),
        int(obs.episode_id),
        int(obs.step),
        names,
    )


def measured_state(obs) -> tuple[np.ndarray, list[str]]:
    """The observation's joint state and joint names (``observation_arrays``' ``state`` and ``joint_names``)
    without converting its images: the policy's HOLD target (``runtime/hold_target.py``)."""
    return state_vector(obs.arm.position, obs.hand.position), state_names(obs.arm.name, obs.hand.name)


def episode_step(t: float, t_start: float, control_hz: float) -> int:
    """The control-step index of time ``t`` in the episode that started at ``t_start`` (its START event's
    stamp): ``round((t - t_start) * control_hz)``, at least 0.

    One time base for every node (docs/interfaces.md, "Control steps"): the sync node stamps
    observations with it, the policy its commands, the simulation bridge its episode events, so a
    recording's ActionChunk (the observation's step), ExecutedCommand and EpisodeEvent steps line up
    whatever the camera rate (30 Hz on the robot) or a node's dropped callbacks.
    """
    return max(0, int(round((t - t_start) * control_hz)))


def planned_step(obs, t_start: float | None, control_hz: float) -> int:
    """The step a chunk planned from ``obs`` is recorded under (its ActionChunk's ``step``, and the step the
    policy's ``ChunkScheduler`` spaces plans by): the observation's ``step``; for an observation without an
    episode (``episode_id`` 0, its sync node saw no START) once the current episode's START stamp ``t_start``
    is known, the step of its stamp on that episode's time base."""
    if int(obs.episode_id) == 0 and t_start is not None:
        return episode_step(stamp_seconds(obs.header.stamp), t_start, control_hz)
    return int(obs.step)
