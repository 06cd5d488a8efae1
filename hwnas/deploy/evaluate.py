"""Accuracy of an exported model file, run by its runtime (onnxruntime for ONNX) over a data set's test split,
or over every example of a data set.

This is the proof that the *file* -- not the PyTorch model it came from -- has the accuracy claimed: the
file's metadata names its data set (a registered name, or a user's folder or file by its name and key, never
its path) and split seed, so :func:`evaluate_file` uses the very test images the exporter measured.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hwnas.data.preprocess import Preprocess
from hwnas.errors import HwnasError
from hwnas.deploy.target import DeployError, load_dataset
from hwnas.runtimes import DEFAULT_RUNTIME, ModelFiles, RuntimeFailure, as_files, get_runtime
from hwnas.shapes import format_input_shape

logger = logging.getLogger(__name__)

#: Inputs per onnxruntime call for a model with a dynamic batch dimension.
CHUNK = 256
#: What :func:`evaluate_file` scores: the test split, or every example of the data set.
SPLITS = ("test", "all")


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of an ONNX model over a split of a data set.

    Attributes:
        accuracy: Top-1 accuracy in [0, 1].
        correct: Correctly classified images.
        total: Images evaluated.
        predictions: Predicted class of each image.
        split: What was scored: ``"test"`` (the test split) or ``"all"`` (every example of the data set).
    """

    accuracy: float
    correct: int
    total: int
    predictions: np.ndarray
    split: str = "test"


def read_model(path: str | os.PathLike) -> tuple[bytes, dict[str, str]]:
    """The bytes and metadata of an ONNX file.

    Raises:
        DeployError: the file is missing or is not an ONNX model.
    """
    import onnx

    target = Path(path)
    if not target.is_file():
        raise DeployError(f"model file {target} does not exist")
    try:
        data = target.read_bytes()
        proto = onnx.load_from_string(data)
    except OSError as exc:
        raise DeployError(f"cannot read {target}: {exc.strerror or exc}") from None
    except Exception as exc:  # protobuf's DecodeError and friends
        raise DeployError(f"{target} is not an ONNX model ({type(exc).__name__})") from None
    if not proto.graph.node:
        raise DeployError(f"{target} is not an ONNX model (no graph)")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        # hwnas writes every weight into the file; an external reference could read any file of the machine
        raise DeployError(f"{target} keeps weights in external files; hwnas models hold them inside the file "
                          f"(re-export it)")
    metadata = {p.key: p.value for p in proto.metadata_props}
    _check_metadata(target, metadata)
    return data, metadata


#: Metadata an export writes as numbers, and the range each must lie in (inclusive; None: unbounded).
_NUMERIC_METADATA = {"split_seed": (int, 0, 2**63 - 1), "test_accuracy": (float, 0.0, 1.0),
                     "latency_ms": (float, 1e-6, 1e6), "latency_budget_ms": (float, 1e-6, 1e6)}


def _check_metadata(target: Path, metadata: Mapping[str, str]) -> None:
    """Refuses a numeric metadata field that does not parse or lies out of its range (a tampered file), naming
    the field, before it is used."""
    import math

    for key, (kind, low, high) in _NUMERIC_METADATA.items():
        text = metadata.get(key)
        if text is None or text in ("", "none", "None"):  # not measured (an export without a latency)
            continue
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not low <= value <= high:
            shown = text if len(text) <= 24 else text[:24] + "..."
            raise DeployError(f"{target}: metadata field {key!r} is {shown!r}, not a "
                              f"{'whole number' if kind is int else 'number'} in [{low}, {high}]; the file was "
                              f"edited or is not an hwnas export")


def file_digest(data: bytes) -> str:
    """The SHA-256 of a shipped file, recorded in the ONNX file's ``runtime_files`` metadata."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


def read_shipped(path: str | os.PathLike) -> tuple[dict[str, bytes], dict[str, str], str]:
    """``(files, metadata, runtime)`` of a shipped model: an ONNX file (run by onnxruntime unless told
    otherwise), or a runtime's own file (``model.xml`` of OpenVINO), whose metadata is its ONNX sibling's
    (``model.onnx``, written beside it by ``hwnas export --runtime``; its ``runtime_files`` entry vouches for
    the runtime's files by their SHA-256).

    Raises:
        DeployError: a file is missing, unreadable, or not the one the ONNX file's metadata names.
    """
    from hwnas.runtimes import runtime_for_file

    from hwnas.runtimes import get_runtime

    target = Path(path)
    runtime = runtime_for_file(target.suffix)
    if runtime is None:  # an ONNX file, whatever its name
        data, metadata = read_model(target)
        return {".onnx": data}, metadata, DEFAULT_RUNTIME
    if not target.is_file():
        raise DeployError(f"model file {target} does not exist")
    onnx_file = target.with_suffix(".onnx")
    if not onnx_file.is_file():
        raise DeployError(f"{target} needs its ONNX sibling {onnx_file.name} (written beside it by hwnas export), "
                          f"which holds its metadata")
    _, metadata = read_model(onnx_file)
    try:
        recorded = json.loads(metadata.get("runtime_files") or "{}")
    except ValueError:
        recorded = None
    if metadata.get("runtime") != runtime or not isinstance(recorded, dict) or not recorded:
        raise DeployError(f"{onnx_file.name} was not exported for {runtime} (its metadata names no {runtime} "
                          f"files): export with --runtime {runtime}")
    suffixes = get_runtime(runtime).ship_suffixes
    if set(recorded) != set(suffixes) or not all(isinstance(d, str) for d in recorded.values()):
        raise DeployError(f"{onnx_file.name}'s metadata lists {runtime} files {sorted(recorded)}, not "
                          f"{list(suffixes)}: a tampered or foreign file")
    files = {}
    for suffix, digest in recorded.items():
        part = target.with_suffix(suffix)
        try:
            files[suffix] = part.read_bytes()
        except OSError as exc:
            raise DeployError(f"cannot read {part}: {exc.strerror or exc}") from None
        if file_digest(files[suffix]) != digest:
            raise DeployError(f"{part.name} is not the file exported with {onnx_file.name} (its SHA-256 differs "
                              f"from the one recorded there)")
    return files, metadata, runtime


def predict(model_bytes: bytes | ModelFiles, inputs, *, threads: int = 1,
            runtime: str = DEFAULT_RUNTIME) -> np.ndarray:
    """Logits of ``inputs`` (an array, or a lazy one read chunk by chunk) from ``runtime`` on the CPU (ONNX
    bytes or the runtime's files), batched as the model's input allows.

    A model exported with a fixed batch size ``B`` gets chunks of ``B``; the last chunk is padded with
    zeros and the padding's outputs are dropped (each image is classified independently in eval mode).
    """
    try:
        session = get_runtime(runtime).load(as_files(model_bytes), threads=threads)
    except RuntimeFailure as exc:
        raise DeployError(str(exc)) from None
    batch = session.input_shape[0] if session.input_shape else None
    step = batch if isinstance(batch, int) and batch > 0 else CHUNK
    dtype = session.input_dtype
    outputs = []
    for begin in range(0, len(inputs), step):  # chunk by chunk: a streamed split is read as it is scored
        chunk = np.ascontiguousarray(inputs[begin:begin + step], dtype=dtype)
        real = len(chunk)
        if isinstance(batch, int) and real < step:
            chunk = np.concatenate([chunk, np.zeros((step - real, *chunk.shape[1:]), dtype=dtype)])
        outputs.append(np.asarray(session.run(chunk))[:real])
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32)


def accuracy_of(model_bytes: bytes | ModelFiles, inputs: np.ndarray, labels: np.ndarray, *,
                threads: int = 1, runtime: str = DEFAULT_RUNTIME, split: str = "test") -> Evaluation:
    """Top-1 accuracy of the model (ONNX, or ``runtime``'s files) on ``(inputs, labels)``, the ``split`` named."""
    if len(labels) == 0:
        raise DeployError(f"no images to evaluate (the {'test split' if split == 'test' else 'data set'} is empty)")
    predictions = predict(model_bytes, inputs, threads=threads, runtime=runtime).argmax(axis=1)
    correct = int((predictions == np.asarray(labels)).sum())
    return Evaluation(accuracy=correct / len(labels), correct=correct, total=int(len(labels)),
                      predictions=predictions, split=split)


def split_seed_of(metadata: Mapping[str, str], default: int = 0) -> int:
    """The split seed recorded by the exporter (``default`` for files without one)."""
    try:
        return int(metadata.get("split_seed", default))
    except ValueError:
        raise DeployError(f"the model's metadata has an unreadable split_seed "
                          f"{metadata['split_seed']!r}") from None


def recorded_dataset(metadata: Mapping[str, str]):
    """The data set the exporter trained on, with its options (``-D``) and an image folder's shape.

    Raises:
        DeployError: the model names its data set by name and key only (a user's folder or file, whose path
            an export does not record): it must be given (``--dataset PATH``).
    """
    from hwnas.data.resolve import DatasetSpec

    options, shape = _recorded_options(metadata)
    if metadata.get("dataset_source") == "path":
        raise DeployError(f"the model was trained on the user's data set {metadata['dataset']!r} (key "
                          f"{metadata.get('dataset_key', '?')}), whose path the model does not record: give it "
                          f"with --dataset PATH")
    return DatasetSpec(str(metadata["dataset"]), options, shape)


def _recorded_options(metadata: Mapping[str, str]) -> tuple[dict, tuple[int, int, int] | None]:
    """The recorded data set's options (``-D``) and an image folder's shape."""
    from hwnas.shapes import parse_input_shape

    try:
        options = json.loads(metadata.get("dataset_options") or "{}")
        shape = parse_input_shape(metadata["dataset_input_shape"]) if metadata.get("dataset_input_shape") else None
    except (ValueError, HwnasError) as exc:
        raise DeployError(f"the model's metadata has an unreadable data-set option: {exc}") from None
    if not isinstance(options, dict):
        raise DeployError("the model's metadata has unreadable data-set options")
    return options, shape


def _recorded_names(metadata: Mapping[str, str]) -> set[str]:
    """Names the recorded data set goes by: its name, or of an old model's recorded path its folder's or file's."""
    from hwnas.data.resolve import path_dataset

    recorded = str(metadata.get("dataset") or "")
    if metadata.get("dataset_source") == "path":
        return {recorded}
    release, text = path_dataset(recorded)
    path = Path(text)
    return {release} if release else {recorded, path.name, path.stem}


def _given_dataset(given: str, metadata: Mapping[str, str]):
    """The data set ``--dataset`` names: built with the recorded options and shape when it is (by name) the one the
    model was trained on, else an image folder at the model's input shape."""
    from hwnas.data.folder import ImageFolderDataset
    from hwnas.data.resolve import DatasetSpec
    from hwnas.shapes import parse_input_shape

    data = load_dataset(given)
    options, shape = _recorded_options(metadata)
    if data.name in _recorded_names(metadata):
        if options or shape:
            data = load_dataset(DatasetSpec(given, options, shape))
    elif isinstance(data, ImageFolderDataset) and metadata.get("input_shape"):
        try:
            wanted = tuple(parse_input_shape(metadata["input_shape"]))
        except HwnasError:
            return data
        if wanted != tuple(data.input_shape) and wanted[0] in (1, 3):
            data = load_dataset(DatasetSpec(given, {}, wanted))  # type: ignore[arg-type]
    return data


def _all_examples(splits):
    """Every example of a data set: its train, validation and test splits one after another."""
    from hwnas.data.lazy import concatenate

    parts = [(splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)]
    parts = [(x, y) for x, y in parts if len(y)]
    return concatenate([x for x, _ in parts]), np.concatenate([np.asarray(y) for _, y in parts])


def evaluate_file(model_bytes: bytes | ModelFiles, metadata: Mapping[str, str], *, dataset: str | None = None,
                  split_seed: int | None = None, split: str | None = None, threads: int = 1,
                  runtime: str = DEFAULT_RUNTIME) -> tuple[Evaluation, dict[str, Any]]:
    """Runs the model (ONNX, or ``runtime``'s files) over the test split, or every example (``split="all"``), of
    ``dataset`` (default: the one in its metadata).

    ``split`` defaults to ``"test"`` when the data set is the one the model was trained on (the same key as its
    metadata's ``dataset_key``) and to ``"all"`` for other data. A model trained on the user's own folder or file
    records its name and key, not its path: ``dataset`` must then name it (an old model's recorded path is still
    read). Given the data set the model was trained on (by name), it is built with the recorded options
    (``-D``) and input shape; another image folder is read at the model's input shape.

    The inputs are fed as the model's ``preprocess`` metadata says (float NCHW, or uint8 NHWC pixels for a
    raw-input model); a file without that entry (exported before it existed) takes float NCHW.

    Returns:
        The evaluation, and ``{"dataset", "dataset_key", "split_seed", "split", "examples", "same_data",
        "preprocess"}``: ``examples`` is the data set's size (all splits); ``same_data`` says whether the images
        are the ones the exporter tested on (same data set content and split seed, the test split), i.e. whether
        the stored ``test_accuracy`` is comparable; ``preprocess`` is the model's entry (a dict, or None).

    Raises:
        DeployError: no data set given or recorded (or only by name), an unknown split, or the data set's
            inputs, classes or preprocessing do not fit the model.
    """
    if split is not None and split not in SPLITS:
        raise DeployError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    spec = dataset or metadata.get("dataset")
    if not spec:
        raise DeployError("the model's metadata names no data set; give one with --dataset")
    seed = split_seed_of(metadata) if split_seed is None else int(split_seed)
    data = load_dataset(recorded_dataset(metadata)) if not dataset else _given_dataset(dataset, metadata)
    shape = tuple(int(d) for d in data.input_shape)
    if metadata.get("input_shape") and metadata["input_shape"] != format_input_shape(shape):
        raise DeployError(f"data set {spec!r} gives {format_input_shape(shape)} inputs but the model takes "
                          f"{metadata['input_shape']}")
    if metadata.get("num_classes") and int(metadata["num_classes"]) != data.num_classes:
        raise DeployError(f"data set {spec!r} has {data.num_classes} classes but the model predicts "
                          f"{metadata['num_classes']}")
    preprocess = Preprocess.from_metadata(metadata)
    given = data.preprocess()
    if preprocess is not None and not preprocess.same_inputs(given):
        raise DeployError(f"the model takes inputs scaled as {preprocess.formula} from {preprocess.colour_mode} "
                          f"{preprocess.height}x{preprocess.width} images, but data set {spec!r} gives "
                          f"{given.formula} from {given.colour_mode} {given.height}x{given.width} "
                          f"({given.source})")
    recorded_key = metadata.get("dataset_key")
    trained_on = data.key == recorded_key if recorded_key else not dataset or dataset == metadata.get("dataset")
    split = split or ("test" if trained_on else "all")
    splits = data.splits(seed)
    x, y = (splits.x_test, splits.y_test) if split == "test" else _all_examples(splits)
    inputs = (preprocess or given).model_inputs(x)
    evaluation = accuracy_of(model_bytes, inputs, y, threads=threads, runtime=runtime, split=split)
    same = (split == "test" and metadata.get("dataset_key", data.key) == data.key and split_seed_of(metadata) == seed
            and _class_names(metadata) in (None, list(data.class_names)))
    return evaluation, {"dataset": spec, "dataset_key": data.key, "split_seed": seed, "split": split,
                        "examples": int(sum(splits.sizes())), "same_data": same,
                        "preprocess": None if preprocess is None else preprocess.to_dict()}


def _class_names(metadata: Mapping[str, str]) -> list[str] | None:
    try:
        return json.loads(metadata["class_names"]) if "class_names" in metadata else None
    except ValueError:
        return None
