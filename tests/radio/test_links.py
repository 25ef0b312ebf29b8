"""mtsc_sdr.radio.links: one LinkConfig for run configs, link-test options and the software channel."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from mtsc_sdr.config import ConfigError, from_dict
from mtsc_sdr.radio.links import CHANNELS, RADIO_KINDS, LinkConfig, software_channel_argv


def _parse(module, argv):
    from mtsc_sdr.cli import build_parser

    parser, subparsers = build_parser()
    name = {"mtsc_sdr.runtime.link_test": "link-test", "mtsc_sdr.runtime.channel": "channel"}[module.__name__]
    module.add_arguments(subparsers[name])
    return parser.parse_args([name, *argv])


def test_run_yaml_and_link_test_options_give_the_same_link(tmp_path):
    from mtsc_sdr.runtime import link_test
    from mtsc_sdr.runtime.run import load_config

    yaml = tmp_path / "run.yaml"
    yaml.write_text("name: t\nchannel: gnuradio-sim\nsnr_db: [7.5]\nseed: 3\ncfo_hz: 1500\nsro_ppm: 2.0\n"
                    "k_factor_db: 6\nsample_rate_hz: 2.0e6\nlo_freq_hz: 915e6\ntx_gain_db: -20\nrx_gain_db: 40\n"
                    "radio_args: ip:192.168.2.1\n")
    run = load_config(str(yaml))
    args = _parse(link_test, ["--channel", "gnuradio-sim", "--snr-db", "7.5", "--seed", "3", "--cfo-hz", "1500",
                              "--sro-ppm", "2", "--k-factor-db", "6", "--sample-rate-hz", "2e6",
                              "--lo-freq-hz", "915e6", "--tx-gain-db", "-20", "--rx-gain-db", "40",
                              "--radio-args", "ip:192.168.2.1"])
    from_options = link_test.config_from_args(args).link()
    assert run.link(snr_db=run.snr_db[0]) == from_options
    assert type(from_options) is LinkConfig
    assert run.link_config("gnuradio-sim", 7.5, session=2) == dataclasses.replace(from_options, seed=2003)


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"channel: expected one of \['software', 'gnuradio-sim', 'pluto', "
                                          r"'usrp'\], got 'hackrf'"):
        from_dict(LinkConfig, {"channel": "hackrf"})
    assert CHANNELS == ("software", "gnuradio-sim", *RADIO_KINDS) and RADIO_KINDS == ("pluto", "usrp")


def test_link_errors_name_the_field():
    with pytest.raises(ConfigError, match="cfo_hz: must be within"):
        from_dict(LinkConfig, {"cfo_hz": 6e5})
    with pytest.raises(ConfigError, match="snr_db: must be finite"):
        from_dict(LinkConfig, {"snr_db": float("nan")})


def test_software_channel_gets_the_set_fields_as_its_options():
    from mtsc_sdr.runtime import channel

    argv = software_channel_argv(LinkConfig(snr_db=12.0, seed=0, cfo_hz=0.0, k_factor_db=0.0, profile="p.yaml"),
                                 "tcp://a", "tcp://b")
    assert argv[:7] == [sys.executable, "-m", "mtsc_sdr.cli", "channel", "--in", "tcp://a", "--out"]
    assert argv[8:] == ["--snr-db", "12.0", "--seed", "0", "--rate-sps", "1000000.0", "--k-factor-db", "0.0",
                        "--profile", "p.yaml"]                   # cfo 0 and sro 0 are off: the profile's hold
    args = _parse(channel, argv[4:])                             # the channel takes every one of them
    assert (args.snr_db, args.seed, args.rate_sps, args.k_factor_db, args.profile) == (12.0, 0, 1e6, 0.0, "p.yaml")
    assert channel.profile_from_args(_parse(channel, argv[4:6] + argv[6:8] + argv[8:10])).awgn.snr_db == 12.0
