"""The processes: base station (:mod:`.bs`), client (:mod:`.client`), the software channel
(:mod:`.channel`), the orchestrator (:mod:`.run`, :mod:`.demo`), evaluation (:mod:`.evaluate`),
replay of recordings (:mod:`.replay`) and the link test (:mod:`.link_test`).

Importing this package imports nothing: each command's module is imported when it runs, so the
channel process starts without torch.
"""
