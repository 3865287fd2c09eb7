"""BORA (the paper's method): run configs (Table 3), offline learner, online residual objective."""
