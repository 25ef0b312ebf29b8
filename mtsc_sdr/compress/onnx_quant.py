"""Quantization of the client's encode graphs (:mod:`.graph`) with ONNX Runtime's tools.

Each method reads an fp32 graph and writes a quantized one:

* ``int8-weight-only``: ``MatMulNBitsQuantizer`` with 8 bits, symmetric, one scale per block of
  32 input channels of every constant-weight MatMul. ORT's maintained weight-only path
  (``MatMulNBits`` kernels dequantize inside the product), made for transformer weights;
  convolutions and the rest stay fp32.
* ``int8-dynamic``: ``quantize_dynamic`` after ``quant_pre_process``, int8 weights per output
  channel, activations quantized per call from their observed range (``DynamicQuantizeLinear``
  -> ``MatMulInteger``). No calibration data; the quick default for MatMul-heavy graphs on CPUs.
* ``int8-static``: ``quantize_static`` in QDQ format (explicit QuantizeLinear / DequantizeLinear
  pairs, which TensorRT 10 builds int8 engines from; its implicit calibrators are deprecated),
  weights int8 per channel, activations int8 with ranges calibrated on validation items of the
  graph's task (symmetric, zero points 0, biases fp32: what TensorRT's ONNX parser takes),
  after ORT's ``quant_pre_process`` (shape inference and graph optimisation, as
  its docs ask).
* ``fp16``: ``onnxruntime.transformers.float16.convert_float_to_float16`` with fp32 inputs and
  outputs kept: for the CUDA and TensorRT execution providers (the CPU provider has few fp16
  kernels and inserts casts).

Only products are quantized (``MatMul``, ``Gemm``, ``Conv``; for the dynamic and static methods
also ``Gather``, the question's token embedding table): what remains (rate choice, top-k, the
scatter into slots and the power normalisation at the end of every graph) is integer logic and
cheap float arithmetic that quantization would only make wrong. The analog image code's graph
(``products_only``) quantizes its projection alone, in every method including fp16: the rest is
a few elementwise operations on (B, C) values, nothing to gain, and it looks its per-rate
constants (power allocation, sawtooth rates) up with ``Gather``, which the int8 methods would
otherwise quantize like an embedding table.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .graph import quiet

#: Graph quantization methods (see the module docstring).
METHODS = ("int8-weight-only", "int8-dynamic", "int8-static", "fp16")
PRODUCTS = ["MatMul", "Gemm", "Conv"]
#: Operators the fp16 graph keeps in fp32 besides ORT's own list: IsInf has no fp16 kernel, and
#: the rate choice, ranking and power normalisation stay exact.
FP32_ONLY = ["IsInf", "TopK", "ReduceSum", "Sqrt", "Div", "ScatterElements", "CumSum"]


class CalibrationFeeds:
    """ONNX Runtime's CalibrationDataReader protocol over a list of feeds ({input name: array})."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]):
        self._feeds: Iterator = iter(list(feeds))

    def get_next(self):
        return next(self._feeds, None)


@contextlib.contextmanager
def _preprocessed(src: str):
    """ORT's ``quant_pre_process`` (shape inference, graph optimisation) of ``src`` into a
    temporary file, as its quantization docs ask before quantizing."""
    from onnxruntime import quantization as q

    with tempfile.TemporaryDirectory() as tmp:
        pre = str(Path(tmp) / "pre.onnx")
        q.quant_pre_process(src, pre, skip_symbolic_shape=True)
        yield pre


def quantize_graph(src: str | Path, dst: str | Path, method: str,
                   calibration: Iterable[dict[str, np.ndarray]] | None = None, products_only: bool = False) -> None:
    """Write ``src``'s graph quantized by ``method`` to ``dst``.

    Args:
        calibration: feeds of validation inputs (``int8-static`` only; required there).
        products_only: quantize (or convert to fp16) nothing but the products.
    """
    import onnx
    from onnxruntime import quantization as q

    src, dst = str(src), str(dst)
    ops = PRODUCTS if products_only else PRODUCTS + ["Gather"]
    if method == "int8-weight-only":
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        quantizer = MatMulNBitsQuantizer(onnx.load(src), bits=8, block_size=32, is_symmetric=True)
        with quiet("onnxruntime.quantization.matmul_nbits_quantizer"):   # a line per node otherwise
            quantizer.process()
        quantizer.model.save_model_to_file(dst, use_external_data_format=False)
    elif method == "int8-dynamic":
        with _preprocessed(src) as pre:
            q.quantize_dynamic(pre, dst, weight_type=q.QuantType.QInt8, per_channel=True,
                               op_types_to_quantize=ops)
    elif method == "int8-static":
        if calibration is None:
            raise ValueError("int8-static needs calibration feeds (validation items)")
        with _preprocessed(src) as pre:
            q.quantize_static(pre, dst, CalibrationFeeds(calibration), quant_format=q.QuantFormat.QDQ,
                              per_channel=True, activation_type=q.QuantType.QInt8,
                              weight_type=q.QuantType.QInt8, op_types_to_quantize=ops,
                              calibrate_method=q.CalibrationMethod.MinMax,
                              # what TensorRT's parser takes: zero points of 0, biases left fp32
                              extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                             "QuantizeBias": False})
    elif method == "fp16":
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

        model = onnx.load(src)
        keep_fp32 = DEFAULT_OP_BLOCK_LIST + FP32_ONLY
        if products_only:
            keep_fp32 = sorted({n.op_type for n in model.graph.node} - set(PRODUCTS))
        onnx.save(convert_float_to_float16(model, keep_io_types=True, op_block_list=keep_fp32), dst)
    else:
        raise ValueError(f"quantization method must be one of {METHODS}, got {method!r}")
