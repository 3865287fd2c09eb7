"""runtime/residual_meta.py: a residual checkpoint's blend weights and normaliser version, checked on load
with one-line refusals naming the field (expectations written out from the module's rules)."""

from __future__ import annotations

import json

import pytest

from bora_policy.runtime.checkpoint_loader import CheckpointRejected
from bora_policy.runtime.residual_meta import (
    blend_weight,
    check_normalizer_version,
    single_file_normalizer_version,
    split_lambda,
)


def test_blend_weights_in_0_1_pass_and_any_other_names_the_field():
    assert blend_weight("0.35", "alpha", "ck") == 0.35
    assert blend_weight(0, "lambda", "ck") == 0.0 and blend_weight("1", "alpha", "ck") == 1.0
    for bad in ("1.5", -0.1, "nan", "inf", "high", None):
        with pytest.raises(CheckpointRejected) as e:
            blend_weight(bad, "residuals[1].lambda", "run/meta.json")
        assert str(e.value) == (
            f"run/meta.json: residuals[1].lambda = {bad!r} is out of range: expected a number in [0, 1]"
        )


def test_normaliser_version_is_required_and_must_be_the_policys():
    check_normalizer_version("abc", "abc", "ck")
    for stored in (None, ""):
        with pytest.raises(CheckpointRejected, match=r"^ck: no normalizer_version stored: expected abc, "):
            check_normalizer_version(stored, "abc", "ck")
    with pytest.raises(CheckpointRejected, match=r"^ck: residual trained with normaliser xyz, the policy's is abc$"):
        check_normalizer_version("xyz", "abc", "ck")


def test_single_file_version_from_its_metadata_else_the_meta_json_beside_it(tmp_path):
    f = tmp_path / "residual.safetensors"
    assert single_file_normalizer_version(f, {}) is None
    assert single_file_normalizer_version(f, {"normalizer_version": "m"}) == "m"
    (tmp_path / "meta.json").write_text(json.dumps({"extra": {"normalizer_version": "j"}}))
    assert single_file_normalizer_version(f, {}) == "j"
    assert single_file_normalizer_version(f, {"normalizer_version": "m"}) == "m"  # the file's own first
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointRejected, match="unreadable checkpoint description"):
        single_file_normalizer_version(f, {})


def test_split_lambda():
    assert split_lambda("/a/r.safetensors@0.25") == ("/a/r.safetensors", 0.25)
    assert split_lambda("/a/r.safetensors") == ("/a/r.safetensors", None)
    assert split_lambda("/a/b@c/r.safetensors") == ("/a/b@c/r.safetensors", None)  # no number after the @
