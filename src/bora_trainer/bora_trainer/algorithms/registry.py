"""The one registry of post-training methods: ``--algo`` name -> learners, option config, table label.

Every method lives in its own folder under ``bora_trainer/algorithms/`` (``bora/``, ``aloe/``, ``habc/``,
``baselines/``, ...) and is known to the rest of the trainer ONLY through its line in :data:`METHODS`:

* ``offline``: its :class:`~bora_trainer.algorithms.offline_learner.OfflineAlgorithm` subclass, run by
  ``bora train offline --algo NAME`` (None: no offline phase);
* ``online``: its :class:`~bora_trainer.algorithms.online_learner.OnlineObjective` subclass, run by
  ``bora train online --algo NAME`` and the trainer node (None: no online phase);
* ``config``: the dataclass of its own hyper-parameters (read from ``OfflineConfig.algo_options`` /
  ``OnlineConfig.objective_options``) and ``config_file``, the YAML file under ``config/`` that documents
  their defaults (a registry test loads every one into its class);
* ``label``: its row / column in ``bora eval``, ``bora report`` and ``bora demo``; a method with BOTH an
  offline and an online phase has two rows, ``label`` (offline) and ``label + ONLINE_SUFFIX`` (its residual
  trained online, e.g. "ALOE (online)"; :func:`label` with ``phase="online"``), so that the report never pools
  them into one cell (our naming; a method with only one phase keeps its one label: BORA-Full, BC-Residual);
* ``demo``: whether ``bora demo`` runs it as a row by default (``DemoConfig.offline.algos`` /
  ``online.algos``).

Classes are given as ``"module:Class"`` strings and imported on first use, so this module imports nothing
heavy (no torch) and reading a name, a label or the list of methods costs nothing.

Adding a method: a folder ``algorithms/<name>/`` with its learner, one :class:`Method` line below, one
``config/<name>.yaml`` (README "Adding a method"; ``bc_residual/`` is the worked example).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

_A = "bora_trainer.algorithms"


@dataclass(frozen=True)
class Method:
    """One post-training method (module docstring). ``offline`` / ``online`` / ``config``: ``"module:Class"``
    or the class itself (tests register classes defined in the test module)."""

    name: str
    label: str
    offline: Any = None
    online: Any = None
    config: Any = None
    config_file: str | None = None
    demo: bool = True


# Order = the order of the paper's tables (bora report's columns, bora demo's rows).
METHODS: tuple[Method, ...] = (
    Method("diffusion-bc", "VITRA (Diffusion)", offline=f"{_A}.baselines.offline:DiffusionBC"),
    Method("cp-bc", "CP Base", offline=f"{_A}.baselines.offline:ConsistencyBC"),
    Method("cp-decoupled-critic", "CP + Decoupled Critic", offline=f"{_A}.baselines.offline:DecoupledCriticPPO"),
    Method("bora", "BORA-Offline", offline=f"{_A}.bora.offline:Bora"),
    Method("bora-residual", "BORA-Full", online=f"{_A}.bora.online:BoraResidualObjective"),
    Method("aloe", "ALOE", offline=f"{_A}.aloe.offline:AloeOffline", online=f"{_A}.aloe.online:AloeResidualObjective",
           config=f"{_A}.aloe.config:AloeConfig", config_file="config/aloe.yaml", demo=False),
    Method("habc", "HABC", offline=f"{_A}.habc.offline:HabcOffline", online=f"{_A}.habc.online:HabcResidualObjective",
           config=f"{_A}.habc.config:HabcConfig", config_file="config/habc.yaml", demo=False),
    Method("bc-residual", "BC-Residual", online=f"{_A}.bc_residual:BcResidualObjective",
           config=f"{_A}.bc_residual:BcResidualConfig", config_file="config/bc_residual.yaml"),
)

_REGISTRY: dict[str, Method] = {m.name: m for m in METHODS}


def register(method: Method) -> Method:
    """Add a method at run time (tests; a plugin outside this package). A name is registered once."""
    old = _REGISTRY.get(method.name)
    if old is not None and old != method:
        raise ValueError(f"method {method.name!r} is already registered ({old.label})")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method added with :func:`register` (the built-in :data:`METHODS` stay)."""
    if any(m.name == name for m in METHODS):
        raise ValueError(f"method {name!r} is built in (algorithms/registry.py METHODS); it cannot be removed")
    _REGISTRY.pop(name, None)


def methods() -> list[Method]:
    """Every registered method, built-in ones in table order first."""
    return list(_REGISTRY.values())


def get(name: str) -> Method:
    if name not in _REGISTRY:
        raise KeyError(f"unknown algorithm {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def offline_names(demo_only: bool = False) -> list[str]:
    """``--algo`` names of ``bora train offline`` (``demo_only``: the default rows of ``bora demo``)."""
    return [m.name for m in methods() if m.offline is not None and (m.demo or not demo_only)]


def online_names(demo_only: bool = False) -> list[str]:
    """``--algo`` names of ``bora train online`` (``demo_only``: the default rows of ``bora demo``)."""
    return [m.name for m in methods() if m.online is not None and (m.demo or not demo_only)]


ONLINE_SUFFIX = " (online)"


def _phase_labels(m: Method) -> dict[str, str]:
    """Phase -> label of ``m``: the online row of a method that also has an offline row is suffixed."""
    out = {}
    if m.offline is not None:
        out["offline"] = m.label
    if m.online is not None:
        out["online"] = m.label + ONLINE_SUFFIX if m.offline is not None else m.label
    return out or {"offline": m.label}


def label(name: str | None, phase: str | None = None) -> str | None:
    """The table label of ``name`` in ``phase`` ("offline", "online"; None: the method's plain label).

    The name itself when it is not registered; None stays None. ``phase="online"`` for a method with an
    offline row too gives ``label + ONLINE_SUFFIX`` (module docstring)."""
    if phase not in (None, "offline", "online"):
        raise ValueError(f"phase {phase!r}: expected 'offline', 'online' or None")
    if name not in _REGISTRY:
        return name
    m = _REGISTRY[name]
    return m.label if phase is None else _phase_labels(m).get(phase, m.label)


def labels() -> list[str]:
    """Every label, in table order (each once; a method's online row right after its offline row)."""
    return list(dict.fromkeys(lab for m in methods() for lab in _phase_labels(m).values()))


def _load(ref: Any) -> Any:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def offline_learner(name: str) -> type:
    """The ``OfflineAlgorithm`` subclass of ``bora train offline --algo name``."""
    m = _REGISTRY.get(name)
    if m is None or m.offline is None:
        raise KeyError(f"unknown offline algorithm {name!r}; available: {offline_names()}")
    return _load(m.offline)


def online_objective(name: str) -> type:
    """The ``OnlineObjective`` subclass of ``bora train online --algo name``."""
    m = _REGISTRY.get(name)
    if m is None or m.online is None:
        raise ValueError(f"unknown online algorithm {name!r}; registered: {online_names()}")
    return _load(m.online)


def config_class(name: str) -> type | None:
    """The dataclass of the method's own hyper-parameters (None: it has none beyond the run config)."""
    return _load(get(name).config)
