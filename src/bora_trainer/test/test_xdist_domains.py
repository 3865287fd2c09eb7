"""Parallel test workers each get a DDS domain of their own (root conftest.py; make test: 2 workers in phase 1)."""

from __future__ import annotations

import importlib.util
import os

import pytest


def _load_root_conftest(repo_root):
    spec = importlib.util.spec_from_file_location("_root_conftest_under_test", repo_root / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_worker_domains_hand_computed_distinct_and_in_range(repo_root, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", "150")
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    f = _load_root_conftest(repo_root).worker_domain_id
    assert f(150, None) == 150 and f(150, "") == 150 and f(150, "gw0") == 150
    assert f(150, "gw1") == 187  # 100 + (50 + 37) % 100
    assert f(150, "gw2") == 124  # 100 + (50 + 74) % 100
    assert f(199, "gw1") == 136  # 100 + (99 + 37) % 100: wraps inside 100..199
    for base in (100, 142, 199):
        ids = [f(base, f"gw{i}") for i in range(100)]
        assert len(set(ids)) == 100 and all(100 <= d <= 199 for d in ids)


@pytest.mark.parametrize("worker, expected", [(None, "150"), ("gw0", "150"), ("gw1", "187")])
def test_loading_the_conftest_sets_the_workers_domain(repo_root, monkeypatch, worker, expected):
    monkeypatch.setenv("ROS_DOMAIN_ID", "150")
    if worker is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    _load_root_conftest(repo_root)
    assert os.environ["ROS_DOMAIN_ID"] == expected
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
