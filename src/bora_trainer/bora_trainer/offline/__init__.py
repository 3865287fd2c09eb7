"""``bora train offline``: the offline trainer (``cli``), its loop (``trainer``), what it builds and exports
(``build``), data selection / augmentation (``data``) and data parallelism (``distributed``). The learners
themselves are the methods in ``bora_trainer.algorithms`` (looked up in ``algorithms/registry.py``)."""
