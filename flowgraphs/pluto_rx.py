#!/usr/bin/env python3
# -*- coding: utf-8 -*-

#
# SPDX-License-Identifier: GPL-3.0
#
# GNU Radio Python Flow Graph
# Title: mtsc-sdr PlutoSDR receiver
# Author: mtsc-sdr
# Description: PlutoSDR (gr-iio fmcomms2 source, manual gain, fc32) -> ZMQ out
# GNU Radio version: 3.10.5.1

from gnuradio import gr
from gnuradio.filter import firdes
from gnuradio.fft import window
import sys
import signal
from argparse import ArgumentParser
from gnuradio.eng_arg import eng_float, intx
from gnuradio import eng_notation
from gnuradio import iio
from gnuradio import zeromq


def snipfcn_announce_running(self):
    print('mtsc-sdr: flowgraph running', flush=True)


def snippets_main_after_start(tb):
    snipfcn_announce_running(tb)


class pluto_rx(gr.top_block):

    def __init__(self, bandwidth_hz=0, buffer_size=32768, lo_freq_hz=2.4e9, out_addr='tcp://127.0.0.1:5556', rate_sps=1e6, rx_gain_db=30.0, uri='ip:192.168.2.1'):
        gr.top_block.__init__(self, "mtsc-sdr PlutoSDR receiver", catch_exceptions=True)

        ##################################################
        # Parameters
        ##################################################
        self.bandwidth_hz = bandwidth_hz
        self.buffer_size = buffer_size
        self.lo_freq_hz = lo_freq_hz
        self.out_addr = out_addr
        self.rate_sps = rate_sps
        self.rx_gain_db = rx_gain_db
        self.uri = uri

        ##################################################
        # Variables
        ##################################################
        self.rf_bandwidth = rf_bandwidth = int(bandwidth_hz or rate_sps)

        ##################################################
        # Blocks
        ##################################################

        self.zmq_out = zeromq.push_sink(gr.sizeof_gr_complex, 1, out_addr, 100, False, (-1))
        self.pluto_source = iio.fmcomms2_source_fc32(uri if uri else iio.get_pluto_uri(), [True, True], buffer_size)
        self.pluto_source.set_len_tag_key('')
        self.pluto_source.set_frequency(int(lo_freq_hz))
        self.pluto_source.set_samplerate(int(rate_sps))
        self.pluto_source.set_gain_mode(0, 'manual')
        self.pluto_source.set_gain(0, rx_gain_db)
        self.pluto_source.set_quadrature(True)
        self.pluto_source.set_rfdc(True)
        self.pluto_source.set_bbdc(True)
        self.pluto_source.set_filter_params('Auto', '', 0, 0)


        ##################################################
        # Connections
        ##################################################
        self.connect((self.pluto_source, 0), (self.zmq_out, 0))


    def get_bandwidth_hz(self):
        return self.bandwidth_hz

    def set_bandwidth_hz(self, bandwidth_hz):
        self.bandwidth_hz = bandwidth_hz
        self.set_rf_bandwidth(int(self.bandwidth_hz or self.rate_sps))

    def get_buffer_size(self):
        return self.buffer_size

    def set_buffer_size(self, buffer_size):
        self.buffer_size = buffer_size

    def get_lo_freq_hz(self):
        return self.lo_freq_hz

    def set_lo_freq_hz(self, lo_freq_hz):
        self.lo_freq_hz = lo_freq_hz
        self.pluto_source.set_frequency(int(self.lo_freq_hz))

    def get_out_addr(self):
        return self.out_addr

    def set_out_addr(self, out_addr):
        self.out_addr = out_addr

    def get_rate_sps(self):
        return self.rate_sps

    def set_rate_sps(self, rate_sps):
        self.rate_sps = rate_sps
        self.set_rf_bandwidth(int(self.bandwidth_hz or self.rate_sps))
        self.pluto_source.set_samplerate(int(self.rate_sps))

    def get_rx_gain_db(self):
        return self.rx_gain_db

    def set_rx_gain_db(self, rx_gain_db):
        self.rx_gain_db = rx_gain_db
        self.pluto_source.set_gain(0, self.rx_gain_db)

    def get_uri(self):
        return self.uri

    def set_uri(self, uri):
        self.uri = uri

    def get_rf_bandwidth(self):
        return self.rf_bandwidth

    def set_rf_bandwidth(self, rf_bandwidth):
        self.rf_bandwidth = rf_bandwidth



def argument_parser():
    description = 'PlutoSDR (gr-iio fmcomms2 source, manual gain, fc32) -> ZMQ out'
    parser = ArgumentParser(description=description)
    parser.add_argument(
        "--bandwidth-hz", dest="bandwidth_hz", type=eng_float, default=eng_notation.num_to_str(float(0)),
        help="Set RF bandwidth (Hz; 0: the sample rate) [default=%(default)r]")
    parser.add_argument(
        "--buffer-size", dest="buffer_size", type=intx, default=32768,
        help="Set IIO buffer size (samples) [default=%(default)r]")
    parser.add_argument(
        "--lo-freq-hz", dest="lo_freq_hz", type=eng_float, default=eng_notation.num_to_str(float(2.4e9)),
        help="Set LO frequency (Hz) [default=%(default)r]")
    parser.add_argument(
        "--out-addr", dest="out_addr", type=str, default='tcp://127.0.0.1:5556',
        help="Set Output ZMQ endpoint (we bind) [default=%(default)r]")
    parser.add_argument(
        "--rate-sps", dest="rate_sps", type=eng_float, default=eng_notation.num_to_str(float(1e6)),
        help="Set Sample rate (samples/s) [default=%(default)r]")
    parser.add_argument(
        "--rx-gain-db", dest="rx_gain_db", type=eng_float, default=eng_notation.num_to_str(float(30.0)),
        help="Set RX gain (dB, manual gain mode) [default=%(default)r]")
    parser.add_argument(
        "--uri", dest="uri", type=str, default='ip:192.168.2.1',
        help="Set Pluto IIO context URI (empty: first Pluto found) [default=%(default)r]")
    return parser


def main(top_block_cls=pluto_rx, options=None):
    if options is None:
        options = argument_parser().parse_args()
    tb = top_block_cls(bandwidth_hz=options.bandwidth_hz, buffer_size=options.buffer_size, lo_freq_hz=options.lo_freq_hz, out_addr=options.out_addr, rate_sps=options.rate_sps, rx_gain_db=options.rx_gain_db, uri=options.uri)

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
