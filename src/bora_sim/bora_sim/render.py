"""Headless RGB-D rendering: one OpenGL pass per camera reads colour and depth together.

``MUJOCO_GL`` defaults to ``egl`` (Mesa llvmpipe on CPU machines, the GPU driver elsewhere).
Anti-aliasing is off (``vis.quality.offsamples = 0``): about 4x cheaper on the CPU. Depth is
converted from the OpenGL depth buffer to metres along the optical axis:
``depth = n f / (f - z (f - n))`` with ``n = znear * extent`` and ``f = zfar * extent``.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402


class RGBDRenderer:
    """Renders the named cameras of ``model`` into ``[n_cam, H, W, 3]`` uint8 and ``[n_cam, H, W]`` metres."""

    def __init__(self, model: mujoco.MjModel, camera_names, height: int = 96, width: int = 96):
        if height <= 0 or width <= 0:
            raise ValueError(f"image size must be positive, got height={height}, width={width}")
        self.model = model
        self.height, self.width = int(height), int(width)
        if model.vis.global_.offwidth < width or model.vis.global_.offheight < height:
            raise ValueError(
                f"image size {height}x{width} exceeds the offscreen buffer "
                f"{model.vis.global_.offheight}x{model.vis.global_.offwidth}"
            )
        self.cam_ids = [model.camera(n).id for n in camera_names]
        self._gl = mujoco.GLContext(self.width, self.height)
        self._gl.make_current()
        self._scene = mujoco.MjvScene(model, maxgeom=2000)
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._opt = mujoco.MjvOption()
        self._pert = mujoco.MjvPerturb()
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._viewport = mujoco.MjrRect(0, 0, self.width, self.height)
        self._rgb = np.zeros((self.height, self.width, 3), np.uint8)
        self._depth = np.zeros((self.height, self.width), np.float32)
        extent = model.stat.extent
        self._near = float(model.vis.map.znear * extent)
        self._far = float(model.vis.map.zfar * extent)

    def render(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.cam_ids)
        color = np.empty((n, self.height, self.width, 3), np.uint8)
        depth = np.empty((n, self.height, self.width), np.float32)
        self._gl.make_current()
        near, far = self._near, self._far
        for i, cid in enumerate(self.cam_ids):
            self._cam.fixedcamid = cid
            mujoco.mjv_updateScene(
                self.model, data, self._opt, self._pert, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene
            )
            mujoco.mjr_render(self._viewport, self._scene, self._ctx)
            mujoco.mjr_readPixels(self._rgb, self._depth, self._viewport, self._ctx)
            color[i] = self._rgb[::-1]
            z = self._depth[::-1]
            depth[i] = near * far / (far - z * (far - near))
        return color, depth

    def close(self) -> None:
        if self._gl is not None:
            try:
                # mjr_freeContext deletes GL objects by id in whichever context is CURRENT: without this, closing
                # one env deleted another live env's meshes and textures (its arm vanished from its images).
                # MuJoCo's own mujoco.Renderer.close() frees under its context in the same way.
                self._gl.make_current()
                self._ctx.free()
                self._gl.free()
            except Exception:  # noqa: BLE001 - best effort at interpreter shutdown
                pass
            self._gl = None

    def __del__(self):
        self.close()
