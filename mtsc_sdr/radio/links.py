"""One link configuration (:class:`LinkConfig`) and one function that starts a link of any kind
(:func:`start_link`): what carries IQ samples from a TX endpoint to an RX endpoint.

Kinds (:data:`CHANNELS`), and the child processes :func:`start_link` returns for each
(:class:`~mtsc_sdr.process.ChildProcess` objects, all running when it returns, or none):

* ``software``: ``mtsc-sdr channel`` (pulls from ``tx_ep``, pushes on ``rx_ep``; AWGN at
  ``snr_db`` plus the impairments given or the ``profile``);
* ``gnuradio-sim``: the ``sim_channel`` flowgraph (channel_model, optional Rician fading);
* ``pluto`` / ``usrp`` (:data:`RADIO_KINDS`): the ``*_rx`` flowgraph (radio out on ``rx_ep``) and
  the ``*_tx`` flowgraph (pulls from ``tx_ep`` into the radio); ``snr_db`` is only recorded, the
  air sets the SNR.

For radios the frequency, rate and gains are checked against the radio's profile first
(:func:`check_radio_settings`); then, when no address is given,
:func:`~mtsc_sdr.radio.discovery.find_radios` looks, so that a missing radio fails fast with what
was searched (:class:`RadioNotFound`) instead of a flowgraph error later. One radio found serves
both directions (a loopback cable or two antennas); two found of the same kind are used as
transmitter (first) and receiver (second).

Adding an impairment knob: a field of :class:`LinkConfig` (its help and its ``mtsc-sdr channel``
option in the field's metadata: ``run`` YAML, ``link-test`` and ``channel`` options follow) and
its parameter in :func:`flowgraph_params` for the sim flowgraph. Adding a radio kind: its name in
its line in :data:`~mtsc_sdr.radio.registry.RADIOS` and its flowgraphs in :func:`flowgraph_params`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional

from mtsc_sdr.config import check
from mtsc_sdr.process import ChildProcess

from .discovery import find_radios
from .flowgraph import Flowgraph
from .profiles import DEFAULT_PROFILE, RadioSettings, radio_profile
from .registry import HARDWARE_KINDS as RADIO_KINDS

#: What can carry a link's samples: the software channel, the GNU Radio sim flowgraph, a radio kind.
ChannelKind = Literal[("software", "gnuradio-sim", *RADIO_KINDS)]
CHANNELS: tuple[str, ...] = typing.get_args(ChannelKind)

__all__ = ["CHANNELS", "RADIO_KINDS", "ChannelKind", "LinkConfig", "RadioNotFound", "check_radio_settings",
           "flowgraph_params", "link_processes", "software_channel_argv", "start_link"]


def _field(default: Any, help: str, *, channel: str | None = None, impairment: bool = False,
           zero_is_off: bool = False) -> Any:
    """A :class:`LinkConfig` field and its metadata: ``help`` (the text of every command-line
    option generated from it), ``channel`` (the ``mtsc-sdr channel`` option the software channel
    gets it as), ``impairment`` (that option overrides the channel profile's setting of the same
    name), ``zero_is_off`` (0 means "not set": the option is not passed, the profile's value holds)."""
    return dataclasses.field(default=default, metadata={"help": help, "channel": channel, "impairment": impairment,
                                                       "zero_is_off": zero_is_off})


@dataclass
class LinkConfig:
    """One link: its kind, the simulated impairments (or a profile), the radio settings.

    Units in the names; SNR is Es/N0 per complex payload symbol (see :mod:`mtsc_sdr.conventions`).
    ``run`` configs and ``link-test`` are link configs with more fields (their YAML keys and
    command-line options are these names).
    """

    channel: ChannelKind = _field("software", "what carries the samples")
    snr_db: float = _field(20.0, "Es/N0 per complex payload symbol, dB: AWGN on the simulated channels "
                                 "(recorded for radios)", channel="--snr-db", impairment=True)
    seed: int = _field(1, "seed of every random impairment of the link", channel="--seed")
    sample_rate_hz: float = _field(1.0e6, "sample rate, Hz (radios' rate; the Hz values of the impairments "
                                          "refer to it)", channel="--rate-sps", impairment=True)
    cfo_hz: float = _field(0.0, "simulated carrier frequency offset, Hz", channel="--cfo-hz", impairment=True,
                           zero_is_off=True)
    sro_ppm: float = _field(0.0, "simulated sample-rate offset, ppm", channel="--sro-ppm", impairment=True,
                            zero_is_off=True)
    k_factor_db: Optional[float] = _field(None, "simulated Rician block fading K factor, dB (none: no fading)",
                                          channel="--k-factor-db", impairment=True)
    profile: Optional[str] = _field(None, "software channel impairment profile (YAML), or a calibration record",
                                    channel="--profile")
    lo_freq_hz: float = _field(2.4e9, "radios: carrier frequency")
    tx_gain_db: float = _field(-10.0, "radios: TX gain (Pluto: minus the attenuation)")
    rx_gain_db: float = _field(30.0, "radios: RX gain (manual)")
    radio_args: str = _field("", "radios: Pluto URI (e.g. ip:192.168.2.1) or UHD device args; empty: discover")
    radio_profile: Optional[str] = _field(None, "radios: profile (firmware_profiles/radios/) the frequency, rate "
                                                "and gains must fit; default pluto-ad9363 / usrp-b210")

    def validate(self, path: str = "") -> None:
        p = f"{path}." if path else ""
        check(math.isfinite(self.snr_db), p + "snr_db", "must be finite")
        self.validate_settings(path)

    def validate_settings(self, path: str = "") -> None:
        """The checks of every field but ``snr_db`` (a run's ``snr_db`` is a sweep, checked there)."""
        p = f"{path}." if path else ""
        check(self.seed >= 0, p + "seed", "must be >= 0")
        check(self.sample_rate_hz > 0, p + "sample_rate_hz", "must be positive")
        check(abs(self.cfo_hz) < 0.5 * self.sample_rate_hz, p + "cfo_hz", "must be within +-rate/2")

    @property
    def is_radio(self) -> bool:
        """Whether radios carry the link (:data:`RADIO_KINDS`)."""
        return self.channel in RADIO_KINDS

    def link(self, **changes: Any) -> LinkConfig:
        """This configuration's link fields as a plain :class:`LinkConfig` (of a run or link-test
        config too), with ``changes`` applied."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(LinkConfig)}
        return LinkConfig(**{**values, **changes})


class RadioNotFound(RuntimeError):
    """No radio of the requested kind is attached; the message says what was searched."""


def _radio_addresses(kind: str, radio_args: str) -> tuple[str, str]:
    """(TX address, RX address): the given one for both, else what discovery finds."""
    if radio_args:
        return radio_args, radio_args
    found = find_radios(kind)
    if not found:
        raise RadioNotFound(f"--channel {kind}: {found.summary()}. Attach one, or give its address "
                            f"with --radio-args (Pluto: an IIO URI such as ip:192.168.2.1 or usb:1.4.5; "
                            f"USRP: UHD device args such as type=b200).")
    return found[0].address, found[-1].address


def check_radio_settings(link: LinkConfig) -> None:
    """Refuse, before any radio is searched or touched, settings outside the radio's profile
    (``link.radio_profile``, default :data:`~.profiles.DEFAULT_PROFILE`): raises
    :class:`~.profiles.ProfileError` naming the setting and the limit."""
    kind = link.channel
    prof = radio_profile(link.radio_profile or DEFAULT_PROFILE[kind])
    if prof.driver != kind:
        raise ValueError(f"radio_profile: {prof.name} is a {prof.driver} profile, the link is {kind}")
    prof.resolve(RadioSettings(freq_hz=link.lo_freq_hz, rate_sps=link.sample_rate_hz, tx_gain_db=link.tx_gain_db,
                               rx_gain_db=link.rx_gain_db))


def flowgraph_params(link: LinkConfig, tx_ep: str, rx_ep: str) -> list[tuple[str, dict[str, Any]]]:
    """The flowgraphs (name, parameters) of a GNU Radio link, in start order (receiver first)."""
    kind = link.channel
    if kind == "gnuradio-sim":
        fading = "rician" if link.k_factor_db is not None else "none"
        return [("sim_channel", {
            "in_addr": tx_ep, "out_addr": rx_ep, "rate_sps": link.sample_rate_hz, "snr_db": link.snr_db,
            "seed": link.seed, "cfo_hz": link.cfo_hz, "sro_ppm": link.sro_ppm, "fading": fading,
            "k_factor_db": link.k_factor_db if link.k_factor_db is not None else 6.0})]
    if kind not in RADIO_KINDS:
        raise ValueError(f"no GNU Radio link of kind {kind!r} (known: {', '.join(CHANNELS)})")
    check_radio_settings(link)
    common = {"lo_freq_hz": link.lo_freq_hz, "rate_sps": link.sample_rate_hz}
    tx_addr, rx_addr = _radio_addresses(kind, link.radio_args)
    if kind == "pluto":
        return [("pluto_rx", {**common, "out_addr": rx_ep, "uri": rx_addr, "rx_gain_db": link.rx_gain_db}),
                ("pluto_tx", {**common, "in_addr": tx_ep, "uri": tx_addr, "tx_atten_db": -link.tx_gain_db})]
    return [("usrp_rx", {**common, "out_addr": rx_ep, "device_args": rx_addr, "gain_db": link.rx_gain_db}),
            ("usrp_tx", {**common, "in_addr": tx_ep, "device_args": tx_addr, "gain_db": link.tx_gain_db})]


def software_channel_argv(link: LinkConfig, tx_ep: str, rx_ep: str) -> list[str]:
    """The ``mtsc-sdr channel`` command line of a software link: every field that has a
    ``channel`` option and is set (not None or empty; not 0 where 0 means off)."""
    argv = [sys.executable, "-m", "mtsc_sdr.cli", "channel", "--in", tx_ep, "--out", rx_ep]
    for f in dataclasses.fields(LinkConfig):
        value = getattr(link, f.name)
        if not f.metadata["channel"] or value in (None, "") or (value == 0 and f.metadata["zero_is_off"]):
            continue
        argv += [f.metadata["channel"], repr(value) if isinstance(value, float) else str(value)]
    return argv


def link_processes(link: LinkConfig, tx_ep: str, rx_ep: str) -> list[ChildProcess]:
    """The (not yet started) child processes that make up ``link``, in start order."""
    if link.channel == "software":
        return [ChildProcess("software channel (mtsc-sdr channel)", software_channel_argv(link, tx_ep, rx_ep))]
    return [Flowgraph(name, params) for name, params in flowgraph_params(link, tx_ep, rx_ep)]


def start_link(link: LinkConfig, tx_ep: str, rx_ep: str) -> list[ChildProcess]:
    """Start what carries samples from ``tx_ep`` (bound by the transmitter) to ``rx_ep`` (bound by
    the link for the receiver); all of its processes run when this returns (or none do).

    Raises :class:`~mtsc_sdr.process.ProcessFailed` (a flowgraph's :class:`~.flowgraph.FlowgraphFailed`
    too) naming a process that did not start, :class:`RadioNotFound`, or the radio profile's error.
    """
    started: list[ChildProcess] = []
    try:
        for child in link_processes(link, tx_ep, rx_ep):
            started.append(child.start())
    except BaseException:
        for child in reversed(started):
            child.stop()
        raise
    return started
