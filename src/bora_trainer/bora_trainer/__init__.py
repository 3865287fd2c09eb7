"""bora_trainer."""
