"""The GNU Radio side of a link: which flowgraphs carry samples from a TX endpoint to an RX endpoint.

``start(kind, ...)`` launches, for

* ``gnuradio-sim``: ``sim_channel`` (pulls from ``tx_ep``, pushes on ``rx_ep``);
* ``pluto``: ``pluto_tx`` (pulls from ``tx_ep`` into the radio) and ``pluto_rx`` (radio out on ``rx_ep``);
* ``usrp``: ``usrp_tx`` and ``usrp_rx`` likewise,

and returns the running :class:`~mtsc_sdr.radio.flowgraph.Flowgraph` objects. For radios, when no
address is given, :func:`~mtsc_sdr.radio.discovery.find_radios` looks first, so that a missing radio
fails fast with what was searched (:class:`RadioNotFound`) instead of a flowgraph error later.
The frequency, rate and gains are checked against the radio's profile first
(:func:`check_radio_settings`). One radio found serves both directions (a loopback cable or two antennas); two found of the same
kind are used as transmitter (first) and receiver (second).
"""

from __future__ import annotations

from typing import Any, Protocol

from .discovery import find_radios
from .flowgraph import Flowgraph


class LinkSettings(Protocol):
    """What :func:`start` reads (a :class:`~mtsc_sdr.runtime.link_test.LinkTestConfig` has it all)."""

    snr_db: float
    seed: int
    sample_rate_hz: float
    cfo_hz: float
    sro_ppm: float
    k_factor_db: float | None
    lo_freq_hz: float
    tx_gain_db: float
    rx_gain_db: float
    radio_args: str
    radio_profile: str | None


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


def check_radio_settings(kind: str, s: LinkSettings) -> None:
    """Refuse, before any radio is searched or touched, settings outside the radio's profile
    (``s.radio_profile``, default :data:`~.profiles.DEFAULT_PROFILE`): raises
    :class:`~.profiles.ProfileError` naming the setting and the limit."""
    from .profiles import DEFAULT_PROFILE, RadioSettings, radio_profile

    prof = radio_profile(s.radio_profile or DEFAULT_PROFILE[kind])
    if prof.driver != kind:
        raise ValueError(f"radio_profile: {prof.name} is a {prof.driver} profile, the link is {kind}")
    prof.resolve(RadioSettings(freq_hz=s.lo_freq_hz, rate_sps=s.sample_rate_hz, tx_gain_db=s.tx_gain_db,
                               rx_gain_db=s.rx_gain_db))


def flowgraph_params(kind: str, s: LinkSettings, tx_ep: str, rx_ep: str) -> list[tuple[str, dict[str, Any]]]:
    """The flowgraphs (name, parameters) that make up link ``kind``, in start order (receiver first)."""
    if kind == "gnuradio-sim":
        fading = "rician" if s.k_factor_db is not None else "none"
        return [("sim_channel", {
            "in_addr": tx_ep, "out_addr": rx_ep, "rate_sps": s.sample_rate_hz, "snr_db": s.snr_db,
            "seed": s.seed, "cfo_hz": s.cfo_hz, "sro_ppm": s.sro_ppm, "fading": fading,
            "k_factor_db": s.k_factor_db if s.k_factor_db is not None else 6.0})]
    check_radio_settings(kind, s)
    common = {"lo_freq_hz": s.lo_freq_hz, "rate_sps": s.sample_rate_hz}
    tx_addr, rx_addr = _radio_addresses(kind, s.radio_args)
    if kind == "pluto":
        return [("pluto_rx", {**common, "out_addr": rx_ep, "uri": rx_addr, "rx_gain_db": s.rx_gain_db}),
                ("pluto_tx", {**common, "in_addr": tx_ep, "uri": tx_addr, "tx_atten_db": -s.tx_gain_db})]
    if kind == "usrp":
        return [("usrp_rx", {**common, "out_addr": rx_ep, "device_args": rx_addr, "gain_db": s.rx_gain_db}),
                ("usrp_tx", {**common, "in_addr": tx_ep, "device_args": tx_addr, "gain_db": s.tx_gain_db})]
    raise ValueError(f"no GNU Radio link of kind {kind!r}")


def start(kind: str, s: LinkSettings, tx_ep: str, rx_ep: str) -> list[Flowgraph]:
    """Start the flowgraphs of link ``kind``; all of them run when this returns (or none do)."""
    started: list[Flowgraph] = []
    try:
        for name, params in flowgraph_params(kind, s, tx_ep, rx_ep):
            started.append(Flowgraph(name, params).start())
    except BaseException:
        for fg in reversed(started):
            fg.stop()
        raise
    return started
