"""The policy node's residual checkpoints received over ROS (moved out of policy_node.py to keep it short).

A path comes from the latched /bora/checkpoint announcement (``on_checkpoint``; only residuals hot-reload)
or the ``load_checkpoint`` service (``srv_load``). It must lie in the checkpoint roots
(``runtime/checkpoint_loader.py``, ``check_checkpoint_path``); the runner then verifies and stages it, and
the control loop swaps it in at its next tick. A refusal is counted (``rejected``, ``last_reject``: on
/diagnostics), reported to the node's health window as WARN and logged; the residual in use is kept.
"""

from __future__ import annotations

from bora_policy.runtime.checkpoint_loader import CheckpointRejected, check_checkpoint_path
from bora_policy.runtime.health import WARN


class CheckpointIntake:
    def __init__(self, node, roots: list[str]):
        """``node``: the policy node (its ``runner``, ``health`` and logger); ``roots``: the directories a path
        received over ROS may lie in."""
        self.node = node
        self.roots = list(roots)
        self.rejected = 0
        self.last_reject = ""

    def on_checkpoint(self, info) -> None:
        """A CheckpointInfo announcement."""
        if info.kind not in ("residual", ""):
            self.node.get_logger().info(
                f"policy: ignoring {info.kind} checkpoint {info.path} (only residuals hot-reload)"
            )
            return
        self.load(info.path, info.sha256)

    def load(self, path: str, sha: str) -> tuple[bool, str]:
        """Check, verify and stage the residual at ``path``: ``(staged, message)``."""
        node = self.node
        try:
            real = check_checkpoint_path(path, self.roots)
        except CheckpointRejected as e:
            ok, msg = False, str(e)
        else:
            ok, msg = node.runner.load_residual(str(real), sha)
        if ok:
            node.get_logger().info(f"policy: residual staged ({msg}); swapping at the next tick")
        else:
            self.rejected += 1
            self.last_reject = msg
            node.health.report("checkpoint_rejected", f"checkpoint rejected: {msg}", WARN)
            node.get_logger().warning(
                f"policy: residual checkpoint rejected, keeping "
                f"{node.runner.residual_slot.snapshot()[1] or 'none'}: {msg}"
            )
        return ok, msg

    def srv_load(self, req, res):
        """The LoadCheckpoint service."""
        res.success, res.message = self.load(req.path, req.sha256)
        return res
