"""cpu_probe: bf16 only with native bf16, the thread decision from calibration figures, a real calibration."""

from __future__ import annotations

import pytest
import torch

from bora_policy.runtime import cpu_probe as cp

EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma bmi2
"""
SAPPHIRE = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ZEN4 = "model name : AMD EPYC 9B14\nflags : avx2 avx512f avx512_bf16\n"


def test_flags_and_model_parsed_from_cpuinfo_text():
    f = cp.cpu_flags(EPYC_AVX2)
    assert {"avx2", "fma", "bmi2"} <= f and "avx512_bf16" not in f
    assert cp.cpu_model(EPYC_AVX2) == "AMD EPYC 7B13"
    assert cp.cpu_flags("no flags line here") == set()


@pytest.mark.parametrize(
    "text,native",
    [(EPYC_AVX2, False), (SAPPHIRE, True), (ZEN4, True), ("flags : avx512f avx512bw avx512_vnni", False)],
)
def test_native_bf16_only_with_avx512_bf16_or_amx(text, native):
    flags = cp.cpu_flags(text)
    assert cp.has_native_bf16(flags) is native
    assert cp.decide_precision("cpu", flags) == ("bf16" if native else "fp32")


def test_precision_on_cuda_follows_device_support_not_cpu_flags():
    assert cp.decide_precision("cuda", cp.cpu_flags(EPYC_AVX2), cuda_bf16=True) == "bf16"
    assert cp.decide_precision("cuda", cp.cpu_flags(SAPPHIRE), cuda_bf16=False) == "fp32"
    assert cp.decide_precision("mps", cp.cpu_flags(SAPPHIRE)) == "fp32"


@pytest.mark.parametrize(
    "rates,expect",
    [
        ({1: 27.0, 2: 20.0}, 1),  # the AVX2-only EPYC of issue 17: 2 threads slower
        ({1: 27.0, 2: 30.0}, 1),  # 11% faster: not worth a second core
        ({1: 27.0, 2: 50.0}, 2),  # scales
        ({1: 10.0, 2: 19.0, 4: 20.0}, 2),  # 4 barely beats 2
        ({1: 10.0, 2: 11.0, 4: 30.0}, 4),  # 2 does not pay, 4 does
    ],
)
def test_decide_threads(rates, expect):
    assert cp.decide_threads(rates) == expect


def test_decide_threads_rejects_bad_input():
    with pytest.raises(ValueError, match="no calibration"):
        cp.decide_threads({})
    with pytest.raises(ValueError, match=">= 1"):
        cp.decide_threads({0: 3.0})


def test_resolve_threads_values():
    assert cp.resolve_threads(3) == 3
    assert cp.resolve_threads("2") == 2
    with pytest.raises(ValueError, match="positive integer or 'auto'"):
        cp.resolve_threads("many")
    with pytest.raises(ValueError, match="positive integer or 'auto'"):
        cp.resolve_threads(0)


def test_real_calibration_and_probe(monkeypatch):
    monkeypatch.delenv("BORA_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    g = cp.matmul_gflops(1, 0.2)
    assert 0.05 < g < 1e5  # a real, finite rate
    assert 0.01 < cp.block_gflops(1, 0.2, rows=256) < 1e5
    assert torch.get_num_threads() == before  # restored
    p = cp.probe(calibrate=True, seconds=0.4)
    assert p["native_bf16"] == cp.has_native_bf16()
    assert p["precision_cpu"] == ("bf16" if p["native_bf16"] else "fp32")
    rates = {int(t): r for t, r in p["gflops_fp32_by_threads"].items()}
    assert p["threads"] == cp.decide_threads(rates)
    monkeypatch.setenv("BORA_NUM_THREADS", "3")
    assert cp.probe(calibrate=False)["threads"] == 3


def test_auto_precision_env_override(monkeypatch):
    monkeypatch.delenv("BORA_PRECISION", raising=False)
    assert cp.auto_precision("cpu") == cp.decide_precision("cpu")
    monkeypatch.setenv("BORA_PRECISION", "bf16")
    assert cp.auto_precision("cpu") == "bf16"
    monkeypatch.setenv("BORA_PRECISION", "fp16")
    with pytest.raises(ValueError, match="BORA_PRECISION must be 'fp32' or 'bf16'"):
        cp.auto_precision("cpu")
