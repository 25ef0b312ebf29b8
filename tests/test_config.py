"""Typed configuration: types, unknown fields, ranges and YAML reading; errors name the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from mtsc_sdr.config import ConfigError, check, from_dict, load_yaml, to_dict


@dataclass
class Inner:
    k_db: float = 0.0
    kind: Literal["a", "b"] = "a"

    def validate(self, path: str) -> None:
        check(self.k_db > -50, f"{path}.k_db", "must be > -50")


@dataclass
class Outer:
    rate_sps: float = 1.0
    n: int = 1
    inner: Optional[Inner] = None
    taps: list[tuple[float, float]] = field(default_factory=list)


@pytest.mark.parametrize("data, field_name", [
    ({"rate_sps": "fast"}, "top.rate_sps"),
    ({"n": 1.5}, "top.n"),
    ({"n": True}, "top.n"),
    ({"inner": {"k_db": "high"}}, "top.inner.k_db"),
    ({"inner": {"kind": "c"}}, "top.inner.kind"),
    ({"inner": {"k_db": -99}}, "top.inner.k_db"),
    ({"innr": {}}, "top.innr"),
    ({"taps": [[1.0, 0.0], [1.0]]}, "top.taps[1]"),
])
def test_errors_name_the_field(data, field_name):
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data, "top")
    assert err.value.field == field_name
    assert str(err.value).startswith(field_name + ":")


def test_valid_round_trip():
    cfg = from_dict(Outer, {"rate_sps": 2, "inner": {"k_db": 3}, "taps": [[1, 0], [0.5, 0.5]]})
    assert cfg.rate_sps == 2.0 and isinstance(cfg.rate_sps, float)
    assert cfg.inner == Inner(k_db=3.0)
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_yaml_exponent_floats_and_errors(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("rate_sps: 1.0e6\ninner: {k_db: 1e1}\n")
    cfg = load_yaml(Outer, good)
    assert cfg.rate_sps == 1e6 and cfg.inner.k_db == 10.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("rate_sps: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(Outer, bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml(Outer, tmp_path / "missing.yaml")
