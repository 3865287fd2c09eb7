"""Post-training methods, one folder each (``bora/``, ``baselines/``, ``aloe/``, ``habc/``, ``bc_residual/``),
known to the trainer through ``registry.py`` only. Shared pieces: ``losses.py`` (equations used by several
methods), ``offline_learner.py`` / ``online_learner.py`` (the base classes the trainers drive)."""
