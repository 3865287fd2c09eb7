"""``bora viz``: the robot's cameras, the critic's per-step values and the takeovers on one Rerun timeline.

Library part (no rclpy): :mod:`.log` turns BORA messages (rosbags or rclpy objects alike: the same
field names) and episode files into Rerun entities, :mod:`.blueprint` is the first-screen layout,
:mod:`.sources` reads recordings and episode datasets, :mod:`.serve` hosts the web viewer of the
``rerun-sdk`` wheel on a loopback port, :mod:`.cli` is the command. The live view is the thin node
``bora_trainer.nodes.viz_node`` (best-effort subscriptions: it never holds up the control graph).
"""
