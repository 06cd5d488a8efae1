"""OpenVINO (``pip install 'hwnas[openvino]'``) on the CPU: it reads the ONNX file directly and ships its IR.

Measurement compiles the ONNX model for the ``CPU`` device with a latency configuration (one stream,
``INFERENCE_NUM_THREADS`` = the run's threads, ``f32`` inference precision, so that a CPU with bf16/AMX units
does not quietly measure another precision than the file's). An export writes the IR (``model.xml`` +
``model.bin``, weights kept in float32) converted from the ONNX file.
"""

from __future__ import annotations

import numpy as np

from hwnas.runtimes.base import RUNTIMES, ModelFiles, ProviderError, Runtime, RuntimeFailure, Session

_NUMPY_TYPES = {"f32": np.float32, "f16": np.float16, "u8": np.uint8, "f64": np.float64}


def _openvino():
    try:
        import openvino
    except ImportError:
        return None
    return openvino


class OpenVinoSession(Session):
    def __init__(self, compiled) -> None:
        self.check_one_input(len(compiled.inputs))
        port = compiled.inputs[0]
        self.input_shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        self.input_dtype = _NUMPY_TYPES.get(port.get_element_type().get_type_name(), np.float32)
        self.request = compiled.create_infer_request()
        self.output = compiled.outputs[0]

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self.request.infer({0: inputs})[self.output]


@RUNTIMES.register("openvino")
class OpenVino(Runtime):
    """OpenVINO's CPU plugin."""

    name = "openvino"
    package = "openvino"
    extra = "openvino"
    ship_suffixes = (".xml", ".bin")
    precisions = ("fp32",)  # compiled with f32 inference precision: an fp16 file would be measured as f32
    runs_int8_onnx = True

    def version(self) -> str | None:
        ov = _openvino()
        return None if ov is None else str(ov.__version__).split("-")[0]

    def _read(self, files: ModelFiles):
        ov = _openvino()
        if ov is None:
            raise ProviderError(f"runtime openvino is not installed: {self.install_line()}")
        core = ov.Core()
        try:
            if ".xml" in files:
                return core, core.read_model(model=files[".xml"], weights=files.get(".bin", b""))
            if ".onnx" in files:
                return core, core.read_model(model=files[".onnx"], weights=b"")
        except Exception as exc:  # OpenVINO raises RuntimeError with long messages
            raise RuntimeFailure(f"OpenVINO cannot read the model: {exc}".splitlines()[0]) from exc
        raise RuntimeFailure(f"OpenVINO runs an ONNX file or its IR (.xml + .bin), not {', '.join(files)}")

    def load(self, files: ModelFiles, *, provider: str = "cpu", threads: int = 1) -> Session:
        self.require(provider)
        core, model = self._read(files)
        config = {"INFERENCE_NUM_THREADS": int(threads), "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32"}
        try:
            return OpenVinoSession(core.compile_model(model, "CPU", config))
        except RuntimeFailure:
            raise
        except Exception as exc:
            raise RuntimeFailure(f"OpenVINO cannot compile the model: {exc}".splitlines()[0]) from exc

    def ship(self, module, onnx_bytes: bytes, *, input_shape, batch_size: int,
             input_dtype: str = "float32") -> dict[str, bytes]:
        import os
        import tempfile

        ov = _openvino()
        _, model = self._read({".onnx": onnx_bytes})
        with tempfile.TemporaryDirectory(prefix="hwnas-ir-") as folder:
            xml = os.path.join(folder, "model.xml")
            try:
                ov.save_model(model, xml, compress_to_fp16=False)
            except Exception as exc:
                raise RuntimeFailure(f"OpenVINO cannot write the IR: {exc}".splitlines()[0]) from exc
            with open(xml, "rb") as handle, open(os.path.join(folder, "model.bin"), "rb") as weights:
                return {".xml": handle.read(), ".bin": weights.read()}
