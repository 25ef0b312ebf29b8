"""Channel profiles: YAML loading, errors that name the field, overrides, seeding per impairment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtsc_sdr.channel import (
    AWGN,
    BlockFading,
    CarrierOffset,
    ChannelProfile,
    IntegerDelay,
    Resampler,
    build_channel,
    stage_seed,
)
from mtsc_sdr.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
LAB_PLUTO = REPO / "configs" / "channels" / "lab-pluto.yaml"


def test_lab_profile_loads_and_builds_every_impairment():
    profile = ChannelProfile.from_yaml(LAB_PLUTO)
    assert profile.awgn.snr_db == 25.0
    assert profile.fading.kind == "rician"
    ch = build_channel(profile, seed=1)
    names = [type(s).__name__ for s in ch.stages]
    assert names == ["TappedDelayLine", "BlockFading", "IntegerDelay", "Resampler", "CarrierOffset",
                     "PhaseNoise", "AWGN", "IQImbalance", "DCOffset"]
    y = ch(np.ones(5000, np.complex64) * np.sqrt(0.1))
    assert y.dtype == np.complex64 and abs(y.size - 5000) < 20


def test_yaml_section_and_round_trip(tmp_path):
    file = tmp_path / "exp.yaml"
    file.write_text("channel:\n  awgn: {snr_db: 7}\n  cfo: {cfo_hz: 250}\n")
    profile = ChannelProfile.from_yaml(file, section="channel")
    assert profile.awgn.snr_db == 7.0 and profile.cfo.cfo_hz == 250.0 and profile.fading is None
    assert ChannelProfile.from_dict(profile.to_dict()) == profile


@pytest.mark.parametrize("data,field", [
    ({"fading": {"k_factor_db": "high"}}, "fading.k_factor_db"),
    ({"fading": {"kind": "nakagami"}}, "fading.kind"),
    ({"fading": {"coherence_samples": 0}}, "fading.coherence_samples"),
    ({"awgn": {"snr": 10}}, "awgn.snr"),
    ({"rate_sps": -1.0}, "rate_sps"),
    ({"timing": {"delay_samples": -2}}, "timing.delay_samples"),
    ({"multipath": {"taps": [[0, 0]]}}, "multipath.taps"),
    ({"multipath": {"taps": [[1, 0, 3]]}}, "multipath.taps[0]"),
    ({"dc_offset": {"i": 2.0}}, "dc_offset.i"),
    ({"noise": {}}, "noise"),
])
def test_bad_values_name_the_field(data, field):
    with pytest.raises(ConfigError) as info:
        ChannelProfile.from_dict(data)
    assert info.value.field == field


def test_bad_yaml_file_names_the_section_field(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text("channel:\n  fading:\n    k_factor_db: high\n")
    with pytest.raises(ConfigError, match=r"channel\.fading\.k_factor_db"):
        ChannelProfile.from_yaml(file, section="channel")


def test_overrides_by_shortcut_and_dotted_path():
    base = ChannelProfile.from_dict({"awgn": {"snr_db": 20}})
    changed = base.override({"snr_db": 5, "cfo_hz": 1000.0, "fading.k_factor_db": 3})
    assert base.awgn.snr_db == 20.0  # the original is unchanged
    assert changed.awgn.snr_db == 5.0
    assert changed.cfo.cfo_hz == 1000.0 and changed.cfo.phase_deg == 0.0  # added with defaults
    assert changed.fading.k_factor_db == 3.0 and changed.fading.kind == "rician"
    assert changed.override({"fading": None}).fading is None


def test_override_errors_name_the_field():
    base = ChannelProfile()
    with pytest.raises(ConfigError) as info:
        base.override({"k_factor_db": "x"})
    assert info.value.field == "fading.k_factor_db"
    with pytest.raises(ConfigError) as info:
        base.override({"awgn.snrdb": 3})
    assert info.value.field == "awgn.snrdb"
    with pytest.raises(ConfigError):
        base.override({"rate_sps.x": 1})


def test_timing_splits_into_exact_integer_delay_and_resampler():
    def stages(**timing):
        profile = ChannelProfile().override(timing)
        return [type(s) for s in build_channel(profile, seed=0).stages]

    assert stages(delay_samples=4.0) == [IntegerDelay]
    assert stages(delay_samples=4.5) == [IntegerDelay, Resampler]
    assert stages(delay_samples=0.5) == [Resampler]
    assert stages(sro_ppm=10.0) == [Resampler]


def test_rayleigh_kind_ignores_k_factor():
    profile = ChannelProfile.from_dict({"fading": {"kind": "rayleigh", "k_factor_db": 30}})
    (stage,) = build_channel(profile, seed=0).stages
    assert isinstance(stage, BlockFading) and stage.k_factor_db is None


def test_stage_seeds_are_fixed_per_impairment_and_differ_between_them():
    a = AWGN(0.0, stage_seed(3, "awgn"))(np.zeros(100, np.complex64))
    b = AWGN(0.0, stage_seed(3, "awgn"))(np.zeros(100, np.complex64))
    c = AWGN(0.0, stage_seed(3, "fading"))(np.zeros(100, np.complex64))
    d = AWGN(0.0, stage_seed(4, "awgn"))(np.zeros(100, np.complex64))
    assert np.array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, d)


def test_seed_must_be_explicit():
    with pytest.raises(ValueError):
        build_channel(ChannelProfile.from_dict({"awgn": {}}), seed=None)
    with pytest.raises(ValueError):
        AWGN(0.0, seed=-1)


def test_cfo_uses_profile_rate():
    profile = ChannelProfile.from_dict({"rate_sps": 2e6, "cfo": {"cfo_hz": 2000.0}})
    (stage,) = build_channel(profile, seed=0).stages
    assert isinstance(stage, CarrierOffset) and stage.cfo_norm == pytest.approx(1e-3)


def test_importing_the_channel_package_does_not_import_torch():
    code = "import sys, mtsc_sdr.channel; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
