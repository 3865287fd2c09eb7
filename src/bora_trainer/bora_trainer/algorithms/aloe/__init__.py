"""ALOE (action-level off-policy evaluation): config, losses, critic learner, offline and online wiring."""
