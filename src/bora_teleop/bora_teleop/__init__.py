"""bora_teleop."""
