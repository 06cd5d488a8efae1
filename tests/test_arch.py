import hashlib

import pytest

from hwnas.arch import Arch, arch_id
from hwnas.spaces import create_space

NB201_EXAMPLE = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def test_id_is_stable_across_versions():
    # Stored profiles and evaluation records are keyed by this id: it must never change.
    expected = hashlib.sha1(f"nb201:{NB201_EXAMPLE}".encode()).hexdigest()[:12]
    assert arch_id("nb201", NB201_EXAMPLE) == expected == "338dbb89b855"
    assert create_space("nb201").parse(NB201_EXAMPLE).id == "338dbb89b855"
    assert create_space("mobilenet").parse("16:k3e1/24:k5e3.k3e6se/32:k7e6/48:k3e3se.k3e3").id == "1b9985e4503c"


def test_arch_is_an_immutable_mapping():
    arch = create_space("nb201").parse(NB201_EXAMPLE)
    assert arch["1<-0"] == "avg_pool_3x3"
    assert len(arch) == 6
    with pytest.raises(AttributeError):
        arch.string = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        arch["1<-0"] = "none"  # type: ignore[index]


def test_equality_and_hash_follow_the_canonical_string():
    space = create_space("nb201")
    a, b = space.parse(NB201_EXAMPLE), space.from_mapping(space.parse(NB201_EXAMPLE).to_dict())
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Arch("other", a.to_dict(), a.string)


def test_arch_survives_copy_and_pickle():
    import copy
    import pickle

    arch = create_space("nb201").parse(NB201_EXAMPLE)
    for clone in (copy.copy(arch), copy.deepcopy(arch), pickle.loads(pickle.dumps(arch))):
        assert clone == arch and clone.to_dict() == arch.to_dict() and clone.id == arch.id
