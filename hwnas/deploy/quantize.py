"""``--quantize int8``: static int8 quantization with onnxruntime's tools, calibrated on training images.

Static (not dynamic) quantization suits convolutional networks: activation ranges are fixed ahead of time
from calibration data, so every Conv runs on int8 inputs. The model is first prepared with
``quant_pre_process`` (onnxruntime's graph optimisation and shape inference, which e.g. folds BatchNorm into
Conv), then quantized in the QDQ format (onnxruntime's recommended format on CPU) with per-channel int8
weights -- depthwise convolutions, whose channels differ widely in range, lose much accuracy with one scale
per tensor -- and unsigned int8 activations, calibrated with min/max over up to :data:`CALIBRATION_INPUTS`
training images.

The quantized model's accuracy and latency are never assumed: the exporter measures both (see
:mod:`hwnas.cli.export_cmds`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from hwnas.deploy.target import DeployError
from hwnas.onnx_export import quiet

logger = logging.getLogger(__name__)

QUANTIZATIONS = ("int8",)
#: Training images used to calibrate activation ranges.
CALIBRATION_INPUTS = 256


class _Calibration:
    """onnxruntime ``CalibrationDataReader``: the calibration images, ``batch`` at a time."""

    def __init__(self, input_name: str, inputs: np.ndarray, batch: int) -> None:
        self._feeds = [{input_name: inputs[i:i + batch]} for i in range(0, len(inputs) - batch + 1, batch)]
        self._index = 0

    def get_next(self) -> dict | None:
        if self._index >= len(self._feeds):
            return None
        self._index += 1
        return self._feeds[self._index - 1]

    def rewind(self) -> None:
        self._index = 0


def calibration_inputs(x_train: np.ndarray, *, count: int = CALIBRATION_INPUTS, seed: int = 0) -> np.ndarray:
    """Up to ``count`` training images drawn without replacement from a seeded generator."""
    rng = np.random.default_rng([int(seed), 0xCA1])
    index = np.sort(rng.permutation(len(x_train))[: min(count, len(x_train))])
    return np.ascontiguousarray(x_train[index], dtype=np.float32)


def quantize_int8(model_bytes: bytes, calibration: np.ndarray, *,
                  metadata: Mapping[str, str] | None = None) -> bytes:
    """Static int8 quantization (QDQ, per-channel weights) of an fp32 ONNX model.

    Args:
        model_bytes: The float32 ONNX model.
        calibration: Representative inputs (training images), ``(N, C, H, W)`` float32.
        metadata: Entries for the quantized model's ``metadata_props``.

    Returns:
        The quantized model, serialised and checked with ``onnx.checker``.

    Raises:
        DeployError: the model is not float32, there are no calibration inputs, or quantization failed.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from hwnas.onnx_export import check_onnx, set_metadata

    proto = onnx.load_from_string(model_bytes)
    graph_input = proto.graph.input[0]
    if graph_input.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise DeployError("--quantize int8 needs a float32 model (the run's precision is fp16)")
    dims = graph_input.type.tensor_type.shape.dim
    batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") else min(32, max(1, len(calibration)))
    if len(calibration) < batch:
        raise DeployError(f"{len(calibration)} calibration input(s): too few for batch size {batch}")
    reader = _Calibration(graph_input.name, np.ascontiguousarray(calibration, dtype=np.float32), batch)
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as folder, \
            quiet("onnxruntime", capture_stdout=True, ignore_warnings=False):
        source, prepared, output = (Path(folder) / name for name in ("fp32.onnx", "prep.onnx", "int8.onnx"))
        source.write_bytes(model_bytes)
        try:
            quant_pre_process(str(source), str(prepared))
            quantize_static(str(prepared), str(output), reader, quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=False, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
            quantized = onnx.load(str(output))
        except Exception as exc:  # onnxruntime's tools raise many types
            message = f"int8 quantization failed: {type(exc).__name__}: {exc}".splitlines()[0]
            raise DeployError(message) from exc
    if metadata:
        set_metadata(quantized, metadata)
    data = quantized.SerializeToString()
    check_onnx(data)
    return data


