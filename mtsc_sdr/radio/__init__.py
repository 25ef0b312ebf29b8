"""Radios and GNU Radio: finding a Python with GNU Radio, launching flowgraphs, radio discovery."""
