"""SigMF capture of IQ streams (replaying a recording is :mod:`mtsc_sdr.runtime.replay`).

* :mod:`.sigmf_io` - :class:`SigMFWriter` streams complex64 chunks into ``NAME.sigmf-data`` /
  ``NAME.sigmf-meta`` as they arrive (intact after an error or a kill); :func:`read_recording`
  checks and opens one; :func:`record` drains a chunk iterator (a radio's stream) into a writer.
* :mod:`.hooks` - :class:`RecordingReceiver`: a PHY receiver that records its input and annotates
  the frames it decodes and drops (``mtsc-sdr bs --capture``, ``mtsc-sdr link-test --capture``).

The short recordings shipped in ``recordings/`` are made by ``benchmarks/make_recordings.py``.
"""

from .sigmf_io import (DATATYPE, END_COMPLETE, END_OPEN, Recording, RecordingError, SigMFWriter, read_recording,
                       record, recording_paths)

__all__ = ["DATATYPE", "END_COMPLETE", "END_OPEN", "Recording", "RecordingError", "SigMFWriter", "read_recording",
           "record", "recording_paths"]
