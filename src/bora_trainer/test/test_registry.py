"""algorithms/registry.py: every registered method resolves to real learner classes, its config file loads
into its config class, labels are unique, and reading names or labels imports no torch."""

import subprocess
import sys

import pytest

from bora_trainer.algorithms import registry
from bora_trainer.algorithms.offline_learner import OfflineAlgorithm
from bora_trainer.algorithms.online_learner import OnlineObjective
from bora_trainer.config_io import load_config


@pytest.mark.parametrize("method", registry.METHODS, ids=lambda m: m.name)
def test_every_method_resolves(method, repo_root):
    assert method.offline is not None or method.online is not None
    if method.offline is not None:
        assert issubclass(registry.offline_learner(method.name), OfflineAlgorithm)
    if method.online is not None:
        assert issubclass(registry.online_objective(method.name), OnlineObjective)
    cls = registry.config_class(method.name)
    assert (cls is None) == (method.config_file is None)
    if cls is not None:
        assert isinstance(load_config(cls, repo_root / method.config_file), cls)


def test_names_labels_and_errors():
    names = [m.name for m in registry.METHODS]
    assert len(set(names)) == len(names) and len(set(registry.labels())) == len(registry.labels())
    assert registry.offline_names() == ["diffusion-bc", "cp-bc", "cp-decoupled-critic", "bora", "aloe", "habc"]
    assert registry.online_names() == ["bora-residual", "aloe", "habc", "bc-residual"]
    assert registry.label("bora") == "BORA-Offline" and registry.label("bora-residual") == "BORA-Full"
    assert registry.label("unregistered") == "unregistered" and registry.label(None) is None
    # a method with an offline AND an online phase has two rows; a one-phase method keeps its one label
    assert registry.label("aloe", "offline") == "ALOE" and registry.label("aloe", "online") == "ALOE (online)"
    assert registry.label("habc", "offline") == "HABC" and registry.label("habc", "online") == "HABC (online)"
    assert registry.label("bora-residual", "online") == "BORA-Full"
    assert registry.label("bora", "offline") == "BORA-Offline"
    assert registry.label("bc-residual", "online") == "BC-Residual"
    assert registry.labels() == ["VITRA (Diffusion)", "CP Base", "CP + Decoupled Critic", "BORA-Offline", "BORA-Full",
                                 "ALOE", "ALOE (online)", "HABC", "HABC (online)", "BC-Residual"]
    with pytest.raises(ValueError, match="phase 'warmup': expected 'offline', 'online' or None"):
        registry.label("aloe", "warmup")
    with pytest.raises(KeyError, match="unknown offline algorithm 'bora-residual'"):
        registry.offline_learner("bora-residual")  # an online-only method
    with pytest.raises(ValueError, match="unknown online algorithm 'cp-bc'"):
        registry.online_objective("cp-bc")
    with pytest.raises(ValueError, match="built in"):
        registry.unregister("bora")


def test_registry_imports_no_torch():
    code = ("import sys; from bora_trainer.algorithms import registry; registry.labels(); registry.online_names(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
