#!/usr/bin/env python3
# -*- coding: utf-8 -*-

#
# SPDX-License-Identifier: GPL-3.0
#
# GNU Radio Python Flow Graph
# Title: mtsc-sdr USRP receiver
# Author: mtsc-sdr
# Description: USRP (gr-uhd usrp_source, fc32) -> ZMQ out
# GNU Radio version: 3.10.5.1

from gnuradio import gr
from gnuradio.filter import firdes
from gnuradio.fft import window
import sys
import signal
from argparse import ArgumentParser
from gnuradio.eng_arg import eng_float, intx
from gnuradio import eng_notation
from gnuradio import uhd
import time
from gnuradio import zeromq


def snipfcn_announce_running(self):
    print('mtsc-sdr: flowgraph running', flush=True)


def snippets_main_after_start(tb):
    snipfcn_announce_running(tb)


class usrp_rx(gr.top_block):

    def __init__(self, antenna='RX2', device_args='', gain_db=30.0, lo_freq_hz=2.4e9, out_addr='tcp://127.0.0.1:5556', rate_sps=1e6):
        gr.top_block.__init__(self, "mtsc-sdr USRP receiver", catch_exceptions=True)

        ##################################################
        # Parameters
        ##################################################
        self.antenna = antenna
        self.device_args = device_args
        self.gain_db = gain_db
        self.lo_freq_hz = lo_freq_hz
        self.out_addr = out_addr
        self.rate_sps = rate_sps

        ##################################################
        # Blocks
        ##################################################

        self.zmq_out = zeromq.push_sink(gr.sizeof_gr_complex, 1, out_addr, 100, False, (-1))
        self.usrp_source = uhd.usrp_source(
            ",".join((device_args, '')),
            uhd.stream_args(
                cpu_format="fc32",
                args='',
                channels=list(range(0,1)),
            ),
        )
        self.usrp_source.set_samp_rate(rate_sps)
        # No synchronization enforced.

        self.usrp_source.set_center_freq(lo_freq_hz, 0)
        self.usrp_source.set_antenna(antenna, 0)
        self.usrp_source.set_gain(gain_db, 0)


        ##################################################
        # Connections
        ##################################################
        self.connect((self.usrp_source, 0), (self.zmq_out, 0))


    def get_antenna(self):
        return self.antenna

    def set_antenna(self, antenna):
        self.antenna = antenna
        self.usrp_source.set_antenna(self.antenna, 0)

    def get_device_args(self):
        return self.device_args

    def set_device_args(self, device_args):
        self.device_args = device_args

    def get_gain_db(self):
        return self.gain_db

    def set_gain_db(self, gain_db):
        self.gain_db = gain_db
        self.usrp_source.set_gain(self.gain_db, 0)

    def get_lo_freq_hz(self):
        return self.lo_freq_hz

    def set_lo_freq_hz(self, lo_freq_hz):
        self.lo_freq_hz = lo_freq_hz
        self.usrp_source.set_center_freq(self.lo_freq_hz, 0)

    def get_out_addr(self):
        return self.out_addr

    def set_out_addr(self, out_addr):
        self.out_addr = out_addr

    def get_rate_sps(self):
        return self.rate_sps

    def set_rate_sps(self, rate_sps):
        self.rate_sps = rate_sps
        self.usrp_source.set_samp_rate(self.rate_sps)



def argument_parser():
    description = 'USRP (gr-uhd usrp_source, fc32) -> ZMQ out'
    parser = ArgumentParser(description=description)
    parser.add_argument(
        "--antenna", dest="antenna", type=str, default='RX2',
        help="Set RX antenna [default=%(default)r]")
    parser.add_argument(
        "--device-args", dest="device_args", type=str, default='',
        help="Set UHD device arguments (e.g. type=b200; empty: first found) [default=%(default)r]")
    parser.add_argument(
        "--gain-db", dest="gain_db", type=eng_float, default=eng_notation.num_to_str(float(30.0)),
        help="Set RX gain (dB) [default=%(default)r]")
    parser.add_argument(
        "--lo-freq-hz", dest="lo_freq_hz", type=eng_float, default=eng_notation.num_to_str(float(2.4e9)),
        help="Set LO frequency (Hz) [default=%(default)r]")
    parser.add_argument(
        "--out-addr", dest="out_addr", type=str, default='tcp://127.0.0.1:5556',
        help="Set Output ZMQ endpoint (we bind) [default=%(default)r]")
    parser.add_argument(
        "--rate-sps", dest="rate_sps", type=eng_float, default=eng_notation.num_to_str(float(1e6)),
        help="Set Sample rate (samples/s) [default=%(default)r]")
    return parser


def main(top_block_cls=usrp_rx, options=None):
    if options is None:
        options = argument_parser().parse_args()
    tb = top_block_cls(antenna=options.antenna, device_args=options.device_args, gain_db=options.gain_db, lo_freq_hz=options.lo_freq_hz, out_addr=options.out_addr, rate_sps=options.rate_sps)

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
