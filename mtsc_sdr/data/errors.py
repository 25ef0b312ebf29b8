"""Errors raised by :mod:`mtsc_sdr.data`.

Every error says what was expected and where, so a lab pointing the loaders at a local copy of a
data set can fix its directory layout without reading the code.
"""

from __future__ import annotations


class DataError(Exception):
    """Base class of every error raised by :mod:`mtsc_sdr.data`."""


class DatasetNotFound(DataError, FileNotFoundError):
    """A data set directory or one of its required files is missing.

    The message names the data set, the root that was searched and every path that was expected.
    """


class MalformedDataset(DataError, ValueError):
    """A data set file exists but does not have the official structure (JSON keys, CSV columns...)."""


class UnsafePickle(MalformedDataset):
    """A pickle file asked for something other than the plain data its format allows."""


class UnsupportedMedia(DataError, ValueError):
    """An image, audio or video file (or array) of an unsupported format, size or sample rate."""
