"""bora_policy."""
