"""The offline baselines of Table 1: diffusion-bc, cp-bc, cp-decoupled-critic."""
