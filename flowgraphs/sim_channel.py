#!/usr/bin/env python3
# -*- coding: utf-8 -*-

#
# SPDX-License-Identifier: GPL-3.0
#
# GNU Radio Python Flow Graph
# Title: mtsc-sdr simulated channel
# Author: mtsc-sdr
# Description: ZMQ in -> optional Rician/Rayleigh fading -> channel_model (multipath taps, SRO, AWGN at snr_db Es/N0 on a payload of power payload_power, CFO) -> ZMQ out
# GNU Radio version: 3.10.5.1

from gnuradio import blocks
from gnuradio import channels
from gnuradio.filter import firdes
from gnuradio import gr
from gnuradio.fft import window
import sys
import signal
from argparse import ArgumentParser
from gnuradio.eng_arg import eng_float, intx
from gnuradio import eng_notation
from gnuradio import zeromq


def snipfcn_announce_running(self):
    print('mtsc-sdr: flowgraph running', flush=True)

def snipfcn_check_parameters(self):
    if self.fading not in ('none', 'rician', 'rayleigh'):
        raise ValueError('--fading must be none, rician or rayleigh, got %r' % (self.fading,))
    if not self.rate_sps > 0:
        raise ValueError('--rate-sps must be positive, got %r' % (self.rate_sps,))
    if not self.payload_power > 0:
        raise ValueError('--payload-power must be positive, got %r' % (self.payload_power,))
    if not self.taps_list or not any(self.taps_list):
        raise ValueError('--taps needs at least one non-zero tap, got %r' % (self.taps,))
    if not 0.0 <= self.fdts < 0.5:
        raise ValueError('--doppler-hz must be in [0, rate_sps / 2), got %r' % (self.doppler_hz,))


def snippets_main_after_start(tb):
    snipfcn_announce_running(tb)

def snippets_init_before_blocks(tb):
    snipfcn_check_parameters(tb)


class sim_channel(gr.top_block):

    def __init__(self, cfo_hz=0.0, doppler_hz=10.0, fading='none', in_addr='tcp://127.0.0.1:5555', k_factor_db=6.0, out_addr='tcp://127.0.0.1:5556', payload_power=0.1, rate_sps=1e6, seed=0, snr_db=20.0, sro_ppm=0.0, taps='1.0'):
        gr.top_block.__init__(self, "mtsc-sdr simulated channel", catch_exceptions=True)

        ##################################################
        # Parameters
        ##################################################
        self.cfo_hz = cfo_hz
        self.doppler_hz = doppler_hz
        self.fading = fading
        self.in_addr = in_addr
        self.k_factor_db = k_factor_db
        self.out_addr = out_addr
        self.payload_power = payload_power
        self.rate_sps = rate_sps
        self.seed = seed
        self.snr_db = snr_db
        self.sro_ppm = sro_ppm
        self.taps = taps

        ##################################################
        # Variables
        ##################################################
        self.taps_list = taps_list = [complex(t) for t in taps.replace(' ', '').split(',') if t]
        self.taps_norm = taps_norm = [t / sum(abs(u) ** 2 for u in taps_list) ** 0.5 for t in taps_list]
        self.noise_voltage = noise_voltage = (payload_power * 10.0 ** (-snr_db / 10.0)) ** 0.5
        self.k_linear = k_linear = 0.0 if fading == 'rayleigh' else 10.0 ** (k_factor_db / 10.0)
        self.fdts = fdts = doppler_hz / rate_sps
        self.fading_weight = fading_weight = 0.0 if fading == 'none' else 1.0
        self.epsilon = epsilon = 1.0 + sro_ppm * 1e-6
        self.cfo_norm = cfo_norm = cfo_hz / rate_sps

        ##################################################
        # Blocks
        ##################################################
        snippets_init_before_blocks(self)
        self.zmq_out = zeromq.push_sink(gr.sizeof_gr_complex, 1, out_addr, 100, False, (-1))
        self.zmq_in = zeromq.pull_source(gr.sizeof_gr_complex, 1, in_addr, 100, False, (-1))
        self.unfaded_gain = blocks.multiply_const_cc(1.0 - fading_weight)
        self.select_fading = blocks.add_vcc(1)
        self.fading_model = channels.fading_model( 8, fdts, True, k_linear, (seed + 1) )
        self.faded_gain = blocks.multiply_const_cc(fading_weight)
        self.channel = channels.channel_model(
            noise_voltage=noise_voltage,
            frequency_offset=cfo_norm,
            epsilon=epsilon,
            taps=taps_norm,
            noise_seed=seed,
            block_tags=False)


        ##################################################
        # Connections
        ##################################################
        self.connect((self.channel, 0), (self.zmq_out, 0))
        self.connect((self.faded_gain, 0), (self.select_fading, 0))
        self.connect((self.fading_model, 0), (self.faded_gain, 0))
        self.connect((self.select_fading, 0), (self.channel, 0))
        self.connect((self.unfaded_gain, 0), (self.select_fading, 1))
        self.connect((self.zmq_in, 0), (self.fading_model, 0))
        self.connect((self.zmq_in, 0), (self.unfaded_gain, 0))


    def get_cfo_hz(self):
        return self.cfo_hz

    def set_cfo_hz(self, cfo_hz):
        self.cfo_hz = cfo_hz
        self.set_cfo_norm(self.cfo_hz / self.rate_sps)

    def get_doppler_hz(self):
        return self.doppler_hz

    def set_doppler_hz(self, doppler_hz):
        self.doppler_hz = doppler_hz
        self.set_fdts(self.doppler_hz / self.rate_sps)

    def get_fading(self):
        return self.fading

    def set_fading(self, fading):
        self.fading = fading
        self.set_fading_weight(0.0 if self.fading == 'none' else 1.0)
        self.set_k_linear(0.0 if self.fading == 'rayleigh' else 10.0 ** (self.k_factor_db / 10.0))

    def get_in_addr(self):
        return self.in_addr

    def set_in_addr(self, in_addr):
        self.in_addr = in_addr

    def get_k_factor_db(self):
        return self.k_factor_db

    def set_k_factor_db(self, k_factor_db):
        self.k_factor_db = k_factor_db
        self.set_k_linear(0.0 if self.fading == 'rayleigh' else 10.0 ** (self.k_factor_db / 10.0))

    def get_out_addr(self):
        return self.out_addr

    def set_out_addr(self, out_addr):
        self.out_addr = out_addr

    def get_payload_power(self):
        return self.payload_power

    def set_payload_power(self, payload_power):
        self.payload_power = payload_power
        self.set_noise_voltage((self.payload_power * 10.0 ** (-self.snr_db / 10.0)) ** 0.5)

    def get_rate_sps(self):
        return self.rate_sps

    def set_rate_sps(self, rate_sps):
        self.rate_sps = rate_sps
        self.set_cfo_norm(self.cfo_hz / self.rate_sps)
        self.set_fdts(self.doppler_hz / self.rate_sps)

    def get_seed(self):
        return self.seed

    def set_seed(self, seed):
        self.seed = seed

    def get_snr_db(self):
        return self.snr_db

    def set_snr_db(self, snr_db):
        self.snr_db = snr_db
        self.set_noise_voltage((self.payload_power * 10.0 ** (-self.snr_db / 10.0)) ** 0.5)

    def get_sro_ppm(self):
        return self.sro_ppm

    def set_sro_ppm(self, sro_ppm):
        self.sro_ppm = sro_ppm
        self.set_epsilon(1.0 + self.sro_ppm * 1e-6)

    def get_taps(self):
        return self.taps

    def set_taps(self, taps):
        self.taps = taps

    def get_taps_list(self):
        return self.taps_list

    def set_taps_list(self, taps_list):
        self.taps_list = taps_list
        self.set_taps_norm([t / sum(abs(u) ** 2 for u in self.taps_list) ** 0.5 for t in self.taps_list])

    def get_taps_norm(self):
        return self.taps_norm

    def set_taps_norm(self, taps_norm):
        self.taps_norm = taps_norm
        self.channel.set_taps(self.taps_norm)

    def get_noise_voltage(self):
        return self.noise_voltage

    def set_noise_voltage(self, noise_voltage):
        self.noise_voltage = noise_voltage
        self.channel.set_noise_voltage(self.noise_voltage)

    def get_k_linear(self):
        return self.k_linear

    def set_k_linear(self, k_linear):
        self.k_linear = k_linear
        self.fading_model.set_K(self.k_linear)

    def get_fdts(self):
        return self.fdts

    def set_fdts(self, fdts):
        self.fdts = fdts
        self.fading_model.set_fDTs(self.fdts)

    def get_fading_weight(self):
        return self.fading_weight

    def set_fading_weight(self, fading_weight):
        self.fading_weight = fading_weight
        self.faded_gain.set_k(self.fading_weight)
        self.unfaded_gain.set_k(1.0 - self.fading_weight)

    def get_epsilon(self):
        return self.epsilon

    def set_epsilon(self, epsilon):
        self.epsilon = epsilon
        self.channel.set_timing_offset(self.epsilon)

    def get_cfo_norm(self):
        return self.cfo_norm

    def set_cfo_norm(self, cfo_norm):
        self.cfo_norm = cfo_norm
        self.channel.set_frequency_offset(self.cfo_norm)



def argument_parser():
    description = 'ZMQ in -> optional Rician/Rayleigh fading -> channel_model (multipath taps, SRO, AWGN at snr_db Es/N0 on a payload of power payload_power, CFO) -> ZMQ out'
    parser = ArgumentParser(description=description)
    parser.add_argument(
        "--cfo-hz", dest="cfo_hz", type=eng_float, default=eng_notation.num_to_str(float(0.0)),
        help="Set Carrier frequency offset (Hz at rate_sps) [default=%(default)r]")
    parser.add_argument(
        "--doppler-hz", dest="doppler_hz", type=eng_float, default=eng_notation.num_to_str(float(10.0)),
        help="Set Maximum Doppler frequency (Hz at rate_sps) [default=%(default)r]")
    parser.add_argument(
        "--fading", dest="fading", type=str, default='none',
        help="Set Flat fading: none, rician or rayleigh [default=%(default)r]")
    parser.add_argument(
        "--in-addr", dest="in_addr", type=str, default='tcp://127.0.0.1:5555',
        help="Set Input ZMQ endpoint (upstream binds, we connect) [default=%(default)r]")
    parser.add_argument(
        "--k-factor-db", dest="k_factor_db", type=eng_float, default=eng_notation.num_to_str(float(6.0)),
        help="Set Rician K factor (dB) [default=%(default)r]")
    parser.add_argument(
        "--out-addr", dest="out_addr", type=str, default='tcp://127.0.0.1:5556',
        help="Set Output ZMQ endpoint (we bind) [default=%(default)r]")
    parser.add_argument(
        "--payload-power", dest="payload_power", type=eng_float, default=eng_notation.num_to_str(float(0.1)),
        help="Set Payload power on the wire (linear; mtsc_sdr.conventions.PAYLOAD_POWER) [default=%(default)r]")
    parser.add_argument(
        "--rate-sps", dest="rate_sps", type=eng_float, default=eng_notation.num_to_str(float(1e6)),
        help="Set Sample rate (samples/s) [default=%(default)r]")
    parser.add_argument(
        "--seed", dest="seed", type=intx, default=0,
        help="Set Seed (noise: seed, fading: seed + 1) [default=%(default)r]")
    parser.add_argument(
        "--snr-db", dest="snr_db", type=eng_float, default=eng_notation.num_to_str(float(20.0)),
        help="Set SNR (dB, Es/N0 per complex symbol on the payload) [default=%(default)r]")
    parser.add_argument(
        "--sro-ppm", dest="sro_ppm", type=eng_float, default=eng_notation.num_to_str(float(0.0)),
        help="Set Sample-rate offset (ppm) [default=%(default)r]")
    parser.add_argument(
        "--taps", dest="taps", type=str, default='1.0',
        help="Set Multipath taps, comma-separated complex (normalised to unit energy) [default=%(default)r]")
    return parser


def main(top_block_cls=sim_channel, options=None):
    if options is None:
        options = argument_parser().parse_args()
    tb = top_block_cls(cfo_hz=options.cfo_hz, doppler_hz=options.doppler_hz, fading=options.fading, in_addr=options.in_addr, k_factor_db=options.k_factor_db, out_addr=options.out_addr, payload_power=options.payload_power, rate_sps=options.rate_sps, seed=options.seed, snr_db=options.snr_db, sro_ppm=options.sro_ppm, taps=options.taps)

    def sig_handler(sig=None, frame=None):
        tb.stop()
        tb.wait()

        sys.exit(0)

    signal.signal(signal.SIGINT, sig_handler)
    signal.signal(signal.SIGTERM, sig_handler)

    tb.start()
    snippets_main_after_start(tb)
    tb.wait()


if __name__ == '__main__':
    main()
