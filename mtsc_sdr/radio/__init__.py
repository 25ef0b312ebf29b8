"""Radios and GNU Radio: finding a Python with GNU Radio, launching flowgraphs, radio discovery.

* :mod:`.grpython` - the Python interpreter that has GNU Radio (``MTSC_GR_PYTHON`` overrides).
* :mod:`.flowgraph` - the registry of ``flowgraphs/*.grc`` (:data:`~.flowgraph.FLOWGRAPHS`) and
  :class:`~.flowgraph.Flowgraph`, which runs one as a subprocess, stops it and reports failures.
* :mod:`.discovery` - :func:`~.discovery.find_radios`: attached PlutoSDRs / USRPs, and what was searched.
* :mod:`.cli` - ``mtsc-sdr flowgraph``.

Nothing here imports ``gnuradio``; submodules are imported on use.
"""
