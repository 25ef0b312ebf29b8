"""mtsc-sdr: a testbed for multi-task semantic communication with large AI models over SDRs.

Heavy dependencies (torch, transformers, faiss, flwr) are imported lazily inside the modules that
need them, so ``mtsc-sdr --help`` and the channel process start fast.
"""

__version__ = "0.1.0"
