"""The radio kinds: for each, its driver class (an import path) and the profile it uses when none is named.

A new radio is a driver module (a :class:`~mtsc_sdr.radio.driver.Radio` subclass), a profile in
``firmware_profiles/radios/``, its flowgraphs, and one line in :data:`RADIOS`. Drivers are named
by import path and imported on use (as peft dispatches its backends): the base class never
imports its backends, and a vendor library (pyadi-iio, UHD) loads only when its radio is opened.

This module imports nothing of the project, so profiles, calibration records and the driver
factory (:func:`~mtsc_sdr.radio.driver.open_radio`) can all read the one list of kinds.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RadioKind:
    """One kind of radio: ``driver``, its class as ``"package.module:Class"``; ``default_profile``,
    the name of the radio profile (``firmware_profiles/radios/<name>.yaml``) used when none is named;
    ``hardware``: a device that discovery finds and GNU Radio flowgraphs drive, so it can carry a
    link (the simulated radio cannot)."""

    driver: str
    default_profile: str
    hardware: bool = True


#: Every radio kind, by name.
RADIOS: dict[str, RadioKind] = {
    "pluto": RadioKind("mtsc_sdr.radio.pluto:PlutoRadio", "pluto-ad9363"),
    "usrp": RadioKind("mtsc_sdr.radio.usrp:UsrpRadio", "usrp-b210"),
    "sim": RadioKind("mtsc_sdr.radio.sim:SimRadio", "sim", hardware=False),   # mtsc_sdr.radio.sim
}

#: The hardware kinds (discovery searches for them; each can carry a link): ``("pluto", "usrp")``.
HARDWARE_KINDS: tuple[str, ...] = tuple(k for k, r in RADIOS.items() if r.hardware)
#: :data:`HARDWARE_KINDS` as a field type: ``Literal["pluto", "usrp"]``.
HardwareKindName = Literal[HARDWARE_KINDS]

#: The kind names as a configuration field type (a profile's ``driver``, a record's radio ``kind``):
#: ``Literal["pluto", "usrp", "sim"]``, so a wrong name is refused with the known ones listed.
RadioKindName = Literal[tuple(RADIOS)]


def radio_kind(kind: str) -> RadioKind:
    """The entry of ``kind``; ValueError listing the known kinds when there is none."""
    if kind not in RADIOS:
        raise ValueError(f"kind: expected one of {', '.join(map(repr, RADIOS))}, got {kind!r}")
    return RADIOS[kind]


def driver_class(kind: str) -> type:
    """The driver class of ``kind`` (a :class:`~mtsc_sdr.radio.driver.Radio` subclass), imported now."""
    module, _, name = radio_kind(kind).driver.partition(":")
    return getattr(importlib.import_module(module), name)
