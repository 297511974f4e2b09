"""Which dtype policy a trial trains under: mixed_precision on/off/auto on GPUs and CPUs."""

from __future__ import annotations

import pytest

from metgan.gan import trial
from metgan.gan.config import GanConfig

EPYC = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
OLDER = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16\n"  # Arm's flag is "bf16", not an x86 one


def test_native_bf16_is_read_from_the_cpu_flags():
    assert trial.cpu_has_bf16(EPYC)
    assert not trial.cpu_has_bf16(OLDER)
    assert not trial.cpu_has_bf16(ARM)
    assert not trial.cpu_has_bf16("")


@pytest.mark.parametrize(("mode", "gpu", "bf16", "expected"), [
    ("off", True, True, "float32"),
    ("on", True, False, "mixed_float16"),
    ("on", False, False, "mixed_bfloat16"),  # a CPU has no fast float16: "on" there means bf16
    ("auto", True, False, "mixed_float16"),
    ("auto", False, False, "float32"),  # no native bf16: emulated bf16 is slower than float32
])
def test_mixed_precision_switch(mode, gpu, bf16, expected):
    config = GanConfig.from_dict({"mixed_precision": mode})
    assert trial.resolve_switches(config, gpu, bf16=bf16)[0] == expected


@pytest.mark.parametrize("architecture", ["dcgan", "fastgan"])
def test_auto_on_a_bf16_cpu_follows_the_measured_architectures(architecture, monkeypatch):
    preset = "fastgan" if architecture == "fastgan" else "default"
    config = GanConfig.from_dict({"preset": preset, "mixed_precision": "auto"})
    assert config.architecture == architecture
    for measured in ((), (architecture,)):
        monkeypatch.setattr(trial, "CPU_BF16_ARCHITECTURES", measured)
        expected = "mixed_bfloat16" if measured else "float32"
        assert trial.resolve_switches(config, False, bf16=True)[0] == expected


def test_xla_auto_means_a_gpu_only():
    config = GanConfig.from_dict({})
    assert trial.resolve_switches(config, True, bf16=False)[1] is True
    assert trial.resolve_switches(config, False, bf16=True)[1] is False
