import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from hwnas import __version__
from hwnas.errors import ExportError
from hwnas.onnx_export import (check_onnx, export_arch, random_inputs, read_metadata, seeded_model, to_onnx_bytes,
                          verify_parity)
from hwnas.spaces import create_space

ARCH = "16:k3e3/24:k5e3se/32:k3e6/48:k7e1"


@pytest.fixture
def space():
    return create_space("mobilenet")


def test_metadata_carries_arch_space_and_version(space, tmp_path):
    arch = space.parse(ARCH)
    export_arch(space, arch, (1, 8, 8), 10, tmp_path / "m.onnx")
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["arch"] == ARCH and meta["space"] == "mobilenet" and meta["hwnas_version"] == __version__
    assert meta["arch_id"] == arch.id and meta["input_shape"] == "1x8x8" and meta["num_classes"] == "10"


def test_parity_check_detects_a_wrong_model(space):
    arch = space.parse(ARCH)
    model = seeded_model(space, arch, (1, 8, 8), 10)
    proto = onnx.load_from_string(to_onnx_bytes(model, (1, 8, 8)))
    weight = next(init for init in proto.graph.initializer if numpy_helper.to_array(init).ndim == 4)
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.5, weight.name))
    with pytest.raises(ExportError, match="differs from PyTorch"):
        verify_parity(model, proto.SerializeToString(), random_inputs((1, 8, 8), 4))


def test_untrained_outputs_depend_on_the_input(space):
    # Parity on a near-constant output would prove nothing: BN calibration keeps the signal alive.
    model = seeded_model(space, space.parse(ARCH), (1, 8, 8), 10)
    import torch

    out = model(torch.from_numpy(random_inputs((1, 8, 8), 16))).detach().numpy()
    assert out.std(axis=0).mean() > 0.05


def test_checker_rejects_a_broken_model(space):
    proto = onnx.load_from_string(to_onnx_bytes(seeded_model(space, space.parse(ARCH), (1, 8, 8), 10), (1, 8, 8)))
    proto.graph.node[0].input[0] = "does_not_exist"
    with pytest.raises(ExportError, match="onnx.checker"):
        check_onnx(proto.SerializeToString())


def test_dynamic_batch_export_runs_any_batch(space):
    from hwnas.onnx_export import cpu_session

    data, _ = export_arch(space, space.parse(ARCH), (1, 8, 8), 10, None, dynamic_batch=True)
    out = cpu_session(data).run(None, {"input": random_inputs((1, 8, 8), 5)})[0]
    assert out.shape == (5, 10)


def test_unwritable_destination_fails_cleanly_and_leaves_nothing(space, tmp_path):
    with pytest.raises(ExportError, match="not an existing folder"):
        export_arch(space, space.parse(ARCH), (1, 8, 8), 10, tmp_path / "missing" / "m.onnx")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ExportError, match="not an existing folder"):
        export_arch(space, space.parse(ARCH), (1, 8, 8), 10, tmp_path / "a_file" / "m.onnx")
    (tmp_path / "a_dir.onnx").mkdir()
    with pytest.raises(ExportError, match="cannot write"):
        export_arch(space, space.parse(ARCH), (1, 8, 8), 10, tmp_path / "a_dir.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir.onnx", "a_file"]
    assert list((tmp_path / "a_dir.onnx").iterdir()) == []


def test_failed_export_keeps_the_previous_file(space, tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    monkeypatch.setattr("hwnas.onnx_export.verify_parity", _raise_parity)
    with pytest.raises(ExportError):
        export_arch(space, space.parse(ARCH), (1, 8, 8), 10, path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def _raise_parity(*args, **kwargs):
    raise ExportError("onnxruntime output differs from PyTorch")


def test_export_emits_no_warnings(space, recwarn):
    warnings.simplefilter("always")
    export_arch(space, space.parse(ARCH), (1, 8, 8), 10, None)
    assert [str(w.message) for w in recwarn] == []


def test_same_seed_same_weights(space):
    a, _ = export_arch(space, space.parse(ARCH), (1, 8, 8), 10, None, seed=3)
    b, _ = export_arch(space, space.parse(ARCH), (1, 8, 8), 10, None, seed=3)
    c, _ = export_arch(space, space.parse(ARCH), (1, 8, 8), 10, None, seed=4)
    assert a == b and a != c
    assert np.random.default_rng(0).random() == np.random.default_rng(0).random()
