"""Compressed clients: techniques, artifacts, runtimes, measurement and the planner.

* Techniques, each producing an artifact a client loads (:mod:`.artifact`):
  quantization of the exported encode graphs with ONNX Runtime's tools (:mod:`.onnx_quant`:
  int8 weight-only, int8 dynamic, int8 static QDQ with calibration, fp16) or torch's own int8
  modules (:mod:`.quantize`); structured pruning of heads, FFN and convolution channels with a
  recovery fine-tune (:mod:`.prune`); distillation of a shallower client encoder (:mod:`.distill`).
* The encode as ONNX graphs (:mod:`.graph`), run by a runtime the client names (:mod:`.runtimes`:
  torch, ONNX Runtime, TensorRT engines built on the device, :mod:`.tensorrt`).
* Measurement into the artifact's manifest (:mod:`.measure`), and the planner that picks an
  artifact per device by exact optimization (:mod:`.planner`). ``mtsc-sdr compress`` (:mod:`.cli`).
"""
