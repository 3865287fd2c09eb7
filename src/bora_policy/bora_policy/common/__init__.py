"""The graph's shared vocabulary: torch-free, rclpy-free (stdlib + numpy + yaml only).

Every package may import ``bora_policy.common``; it is the lowest layer above ``bora_msgs``.
``episodes`` is the on-disk episode format, ``rewards`` the reward constants and their computation.
This ``__init__`` imports nothing, so importing one module never pulls in another.
"""
