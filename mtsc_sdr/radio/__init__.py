"""Radios and GNU Radio: finding a Python with GNU Radio, launching flowgraphs, radio discovery.

* :mod:`.grpython` - the Python interpreter that has GNU Radio (``MTSC_GR_PYTHON`` overrides).
* :mod:`.flowgraph` - the registry of ``flowgraphs/*.grc`` (:data:`~.flowgraph.FLOWGRAPHS`) and
  :class:`~.flowgraph.Flowgraph`, which runs one as a subprocess, stops it and reports failures.
* :mod:`.discovery` - :func:`~.discovery.find_radios`: attached PlutoSDRs / USRPs, and what was searched.
* :mod:`.driver` - the :class:`~.driver.Radio` interface of the direct drivers (:mod:`.pluto`,
  :mod:`.usrp`, :mod:`.sim`) and :func:`~.driver.open_radio`, which finds a kind's driver through
  :mod:`.registry` (kind -> driver import path and default profile: one line per radio kind).
* :mod:`.profiles` - radio and client-device profiles; :mod:`.calibration` - calibration records
  and the software channel they describe.
* :mod:`.cli` - ``mtsc-sdr flowgraph``.

Nothing here imports ``gnuradio``; submodules are imported on use.
"""
