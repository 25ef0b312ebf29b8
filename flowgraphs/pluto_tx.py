#!/usr/bin/env python3
# -*- coding: utf-8 -*-

#
# SPDX-License-Identifier: GPL-3.0
#
# GNU Radio Python Flow Graph
# Title: mtsc-sdr PlutoSDR transmitter
# Author: mtsc-sdr
# Description: ZMQ in -> PlutoSDR (gr-iio fmcomms2 sink, fc32 full scale +-1.0)
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


class pluto_tx(gr.top_block):

    def __init__(self, bandwidth_hz=0, buffer_size=32768, in_addr='tcp://127.0.0.1:5555', lo_freq_hz=2.4e9, rate_sps=1e6, tx_atten_db=10.0, uri='ip:192.168.2.1'):
        gr.top_block.__init__(self, "mtsc-sdr PlutoSDR transmitter", catch_exceptions=True)

        ##################################################
        # Parameters
        ##################################################
        self.bandwidth_hz = bandwidth_hz
        self.buffer_size = buffer_size
        self.in_addr = in_addr
        self.lo_freq_hz = lo_freq_hz
        self.rate_sps = rate_sps
        self.tx_atten_db = tx_atten_db
        self.uri = uri

        ##################################################
        # Variables
        ##################################################
        self.rf_bandwidth = rf_bandwidth = int(bandwidth_hz or rate_sps)

        ##################################################
        # Blocks
        ##################################################

        self.zmq_in = zeromq.pull_source(gr.sizeof_gr_complex, 1, in_addr, 100, False, (-1))
        self.pluto_sink = iio.fmcomms2_sink_fc32(uri if uri else iio.get_pluto_uri(), [True, True], buffer_size, False)
        self.pluto_sink.set_len_tag_key('')
        self.pluto_sink.set_bandwidth(rf_bandwidth)
        self.pluto_sink.set_frequency(int(lo_freq_hz))
        self.pluto_sink.set_samplerate(int(rate_sps))
        self.pluto_sink.set_attenuation(0, tx_atten_db)
        self.pluto_sink.set_filter_params('Auto', '', 0, 0)


        ##################################################
        # Connections
        ##################################################
        self.connect((self.zmq_in, 0), (self.pluto_sink, 0))


    def get_bandwidth_hz(self):
        return self.bandwidth_hz

    def set_bandwidth_hz(self, bandwidth_hz):
        self.bandwidth_hz = bandwidth_hz
        self.set_rf_bandwidth(int(self.bandwidth_hz or self.rate_sps))

    def get_buffer_size(self):
        return self.buffer_size

    def set_buffer_size(self, buffer_size):
        self.buffer_size = buffer_size

    def get_in_addr(self):
        return self.in_addr

    def set_in_addr(self, in_addr):
        self.in_addr = in_addr

    def get_lo_freq_hz(self):
        return self.lo_freq_hz

    def set_lo_freq_hz(self, lo_freq_hz):
        self.lo_freq_hz = lo_freq_hz
        self.pluto_sink.set_frequency(int(self.lo_freq_hz))

    def get_rate_sps(self):
        return self.rate_sps

    def set_rate_sps(self, rate_sps):
        self.rate_sps = rate_sps
        self.set_rf_bandwidth(int(self.bandwidth_hz or self.rate_sps))
        self.pluto_sink.set_samplerate(int(self.rate_sps))

    def get_tx_atten_db(self):
        return self.tx_atten_db

    def set_tx_atten_db(self, tx_atten_db):
        self.tx_atten_db = tx_atten_db
        self.pluto_sink.set_attenuation(0,self.tx_atten_db)

    def get_uri(self):
        return self.uri

    def set_uri(self, uri):
        self.uri = uri

    def get_rf_bandwidth(self):
        return self.rf_bandwidth

    def set_rf_bandwidth(self, rf_bandwidth):
        self.rf_bandwidth = rf_bandwidth
        self.pluto_sink.set_bandwidth(self.rf_bandwidth)



def argument_parser():
    description = 'ZMQ in -> PlutoSDR (gr-iio fmcomms2 sink, fc32 full scale +-1.0)'
    parser = ArgumentParser(description=description)
    parser.add_argument(
        "--bandwidth-hz", dest="bandwidth_hz", type=eng_float, default=eng_notation.num_to_str(float(0)),
        help="Set RF bandwidth (Hz; 0: the sample rate) [default=%(default)r]")
    parser.add_argument(
        "--buffer-size", dest="buffer_size", type=intx, default=32768,
        help="Set IIO buffer size (samples) [default=%(default)r]")
    parser.add_argument(
        "--in-addr", dest="in_addr", type=str, default='tcp://127.0.0.1:5555',
        help="Set Input ZMQ endpoint (upstream binds, we connect) [default=%(default)r]")
    parser.add_argument(
        "--lo-freq-hz", dest="lo_freq_hz", type=eng_float, default=eng_notation.num_to_str(float(2.4e9)),
        help="Set LO frequency (Hz) [default=%(default)r]")
    parser.add_argument(
        "--rate-sps", dest="rate_sps", type=eng_float, default=eng_notation.num_to_str(float(1e6)),
        help="Set Sample rate (samples/s) [default=%(default)r]")
    parser.add_argument(
        "--tx-atten-db", dest="tx_atten_db", type=eng_float, default=eng_notation.num_to_str(float(10.0)),
        help="Set TX attenuation (dB, 0 to 89.75) [default=%(default)r]")
    parser.add_argument(
        "--uri", dest="uri", type=str, default='ip:192.168.2.1',
        help="Set Pluto IIO context URI (empty: first Pluto found) [default=%(default)r]")
    return parser


def main(top_block_cls=pluto_tx, options=None):
    if options is None:
        options = argument_parser().parse_args()
    tb = top_block_cls(bandwidth_hz=options.bandwidth_hz, buffer_size=options.buffer_size, in_addr=options.in_addr, lo_freq_hz=options.lo_freq_hz, rate_sps=options.rate_sps, tx_atten_db=options.tx_atten_db, uri=options.uri)

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
