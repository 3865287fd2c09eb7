"""BORA models: ``vlm`` (cognition token z_t), ``action_expert`` (consistency / diffusion chunk experts with a
Gaussian head), ``critic`` (k-vector chunk critics), ``normalizer``, ``vla`` (``VLAPolicy``), ``residual``.

Import the submodules directly (``from bora_policy.models.vla import VLAPolicy``); nothing is imported here
so that light users (e.g. the residual actor) do not pay for transformers.
"""
