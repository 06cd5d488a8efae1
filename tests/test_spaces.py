"""The search-space contract, run over every registered space, plus space-specific checks."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from hwnas.errors import ArchError
from hwnas.onnx_export import export_arch
from hwnas.spaces import SPACES, create_space
from hwnas.spaces.mobilenet import MobileNetSpace

ALL_SPACES = SPACES.names()
SHAPES = [(1, 8, 8), (3, 32, 32)]


@pytest.fixture(params=ALL_SPACES)
def space(request):
    return create_space(request.param)


def test_registry_holds_the_documented_spaces():
    assert {"mobilenet", "nb201"} <= set(ALL_SPACES)


def test_sampling_is_deterministic_for_a_seed(space):
    first = [space.sample(np.random.default_rng(7)).string for _ in range(3)]
    again = [space.sample(np.random.default_rng(7)).string for _ in range(3)]
    assert first == again
    many = {space.sample(np.random.default_rng(s)).string for s in range(30)}
    assert len(many) > 20  # the sampler really varies with the seed


def test_string_round_trip(space, rng):
    for _ in range(50):
        arch = space.sample(rng)
        again = space.parse(arch.string)
        assert again == arch and again.string == arch.string and again.id == arch.id
        assert space.from_mapping(arch.to_dict()) == arch
        assert space.format(arch.to_dict()) == arch.string


def test_mutate_changes_exactly_one_active_decision_or_the_structure(space, rng):
    for _ in range(50):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert child != arch
        assert space.parse(child.string) == child
        common = set(arch) & set(child)
        changed = [label for label in common if arch[label] != child[label]]
        assert len(changed) == 1


def test_neighbours_are_every_single_decision_change_and_include_every_mutation(space, rng):
    for _ in range(10):
        arch = space.sample(rng)
        moves = space.neighbours(arch, rng)
        active = space.active_decisions(arch)
        assert len(moves) == sum(len(d.choices) - 1 for d in active)
        assert len({m.string for m in moves}) == len(moves) and arch not in moves
        for move in moves:
            assert space.parse(move.string) == move
            changed = [label for label in set(arch) & set(move) if arch[label] != move[label]]
            assert len(changed) == 1
        # a mutation keeps the untouched decisions, so it differs from some neighbour only where a decision
        # became active (sampled); on nb201, where none does, it is one of them
        if space.name == "nb201":
            assert space.mutate(arch, rng).string in {m.string for m in moves}


def test_encoding_is_one_hot_per_active_decision(space, rng):
    names = space.encoding_names()
    for _ in range(20):
        arch = space.sample(rng)
        vec = space.encode(arch)
        assert vec.shape == (len(names),)
        assert set(np.unique(vec)) <= {0.0, 1.0}
        assert int(vec.sum()) == len(arch)
        hot = {names[i] for i in np.flatnonzero(vec)}
        assert hot == {f"{label}={value}" for label, value in arch.items()}


def test_unknown_label_or_value_is_rejected(space, rng):
    arch = space.sample(rng)
    mapping = arch.to_dict()
    with pytest.raises(ArchError, match="unknown decision"):
        space.from_mapping({**mapping, "bogus": 1})
    label = next(iter(mapping))
    with pytest.raises(ArchError, match=label.replace(".", r"\.")):
        space.from_mapping({**mapping, label: "not-a-choice"})
    with pytest.raises(ArchError, match="missing decision"):
        space.from_mapping({k: v for k, v in mapping.items() if k != label})


@pytest.mark.parametrize("shape", SHAPES)
def test_build_forward_and_features(space, rng, shape):
    arch = space.sample(rng)
    model = space.build(arch, shape, 7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    stats = space.features(arch, shape, 7)
    assert stats["params"] == sum(p.numel() for p in model.parameters())
    assert stats["macs"] > stats["params"] * 0.5 > 0
    assert stats["activation_elems"] >= stats["peak_activation_elems"] > 0


@pytest.mark.parametrize("shape", SHAPES)
def test_onnx_export_and_parity(space, rng, shape, tmp_path):
    arch = space.sample(rng)
    path = tmp_path / "m.onnx"
    _, report = export_arch(space, arch, shape, 10, path)
    assert path.is_file() and report.parity.ok and report.parity.max_abs_error < 1e-3


def test_tiny_inputs_are_not_reduced_below_one_pixel(space, rng):
    arch = space.sample(rng)
    for shape in [(1, 1, 1), (1, 2, 2), (1, 3, 5)]:
        with torch.no_grad():
            assert space.build(arch, shape, 3).eval()(torch.randn(1, *shape)).shape == (1, 3)


# --- nb201 ------------------------------------------------------------------------------------------------

NB201_STRINGS = [
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]


@pytest.mark.parametrize("string", NB201_STRINGS)
def test_nb201_paper_strings_round_trip_character_for_character(string):
    assert create_space("nb201").parse(string).string == string


def test_nb201_has_exactly_15625_distinct_architectures():
    space = create_space("nb201")
    assert space.size() == 15625
    assert len({a.string for a in space.enumerate()}) == 15625


@pytest.mark.parametrize("bad, part", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "3 nodes"),
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "conv_5x5"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "none~1"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1"),
    ("", "empty"),
])
def test_nb201_malformed_strings_name_the_bad_part(bad, part):
    with pytest.raises(ArchError, match=part):
        create_space("nb201").parse(bad)


def test_nb201_skeleton_matches_the_paper():
    space = create_space("nb201")
    model = space.build(space.parse(NB201_STRINGS[1]), (3, 32, 32), 10)
    cells = [m for m in model.modules() if type(m).__name__ == "Cell"]
    reductions = [m for m in model.modules() if type(m).__name__ == "ResidualReduction"]
    assert len(cells) == 15 and len(reductions) == 2
    assert model[-1][-1].in_features == 64  # 4C with C = 16
    small = create_space("nb201", channels=8, cells_per_stage=1)
    small_model = small.build(small.parse(NB201_STRINGS[1]), (3, 32, 32), 10)
    assert len([m for m in small_model.modules() if type(m).__name__ == "Cell"]) == 3


# --- mobilenet --------------------------------------------------------------------------------------------

def test_mobilenet_size_matches_enumeration_on_a_small_config():
    space = MobileNetSpace(widths=((8, 16), (16,)), depths=(1, 2), kernels=(3, 5), expansions=(1, 3),
                           strides=(1, 2))
    archs = list(space.enumerate())
    assert len(archs) == len({a.string for a in archs}) == space.size() == (2 * (8 + 64)) * (1 * (8 + 64))


def test_mobilenet_default_size_formula():
    space = create_space("mobilenet")
    per_stage = sum(18 ** d for d in space.depths)
    assert space.size() == np.prod([len(w) * per_stage for w in space.widths], dtype=object)


def test_mobilenet_strides_adapt_to_the_input():
    space = create_space("mobilenet")
    assert space.stage_strides((1, 8, 8)) == (1, [1, 2, 2, 2])  # 8 -> 8 -> 4 -> 2 -> 1
    assert space.stage_strides((1, 2, 2)) == (1, [1, 2, 1, 1])
    assert space.stage_strides((3, 224, 224)) == (2, [1, 2, 2, 2])


@pytest.mark.parametrize("bad, part", [
    ("16:k3e1/24:k5e3/32:k7e6", "4 stages"),
    ("16:k3e1/24:k4e3/32:k7e6/48:k3e3", "stage 1 block 0 kernel 4"),
    ("16:k3e1/24:k5e2/32:k7e6/48:k3e3", "stage 1 block 0 expansion 2"),
    ("16:k3e1/25:k5e3/32:k7e6/48:k3e3", "stage 1 width 25"),
    ("16:k3e1/24:k5e3.k5e3.k5e3.k5e3/32:k7e6/48:k3e3", "stage 1 has 4 blocks"),
    ("16:k3e1/24:/32:k7e6/48:k3e3", "stage 1 has 0 blocks"),
    ("16:k3e1/24:k5x3/32:k7e6/48:k3e3", "stage 1 block 0 'k5x3'"),
    ("16k3e1/24:k5e3/32:k7e6/48:k3e3", "stage 0"),
])
def test_mobilenet_malformed_strings_name_the_bad_part(bad, part):
    with pytest.raises(ArchError, match=part):
        create_space("mobilenet").parse(bad)


def test_mobilenet_inactive_blocks_are_not_part_of_the_architecture():
    space = create_space("mobilenet")
    arch = space.parse("16:k3e1/24:k5e3/32:k7e6/48:k3e3")
    assert "s0.b1.kernel" not in arch
    with pytest.raises(ArchError, match="not used"):
        space.from_mapping({**arch.to_dict(), "s0.b1.kernel": 3, "s0.b1.expand": 1, "s0.b1.se": False})


def test_mobilenet_blocks_follow_their_decisions():
    space = create_space("mobilenet")
    model = space.build(space.parse("16:k7e6se/24:k5e1/32:k3e3/48:k3e3"), (1, 8, 8), 10)
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert [m.kernel_size[0] for m in depthwise] == [7, 5, 3, 3]
    assert depthwise[0].in_channels == 16 * 6  # expansion 6 of the 16-channel stem
    assert any(type(m).__name__ == "SqueezeExcite" for m in model.modules())


def test_odd_input_sizes_export_with_parity(space, rng):
    _, report = export_arch(space, space.sample(rng), (1, 7, 5), 4, None)
    assert report.parity.ok


def test_sample_distinct_keeps_draw_order_skips_exclusions_and_stops_when_the_space_runs_out(rng):
    space = create_space("nb201")
    first = space.sample(np.random.default_rng(7))
    drawn = space.sample_distinct(20, np.random.default_rng(7))
    assert drawn[0] == first and len({a.string for a in drawn}) == 20
    others = space.sample_distinct(20, np.random.default_rng(7), exclude={first.string})
    assert first not in others and len(others) == 20
    tiny = create_space("mobilenet", widths=[[8, 16]], depths=[1], kernels=[3, 5], expansions=[1], strides=[1])
    assert len(tiny.sample_distinct(50, rng)) == 8
    assert tiny.sample_distinct(50, rng, exclude={a.string for a in tiny.enumerate()}) == []


def test_equivalence_key_is_an_architecture_of_the_space_and_its_own_key(space, rng):
    for _ in range(30):
        key = space.equivalence_key(space.sample(rng))
        assert space.equivalence_key(space.parse(key)) == key


def test_mobilenet_has_no_equivalences(rng):
    space = create_space("mobilenet")
    archs = [space.sample(rng) for _ in range(10)]
    assert [space.equivalence_key(a) for a in archs] == [a.string for a in archs]


def test_nb201_equivalence_key_is_the_effective_cell():
    space = create_space("nb201")
    # node 1 reaches nothing and node 2 is reached by nothing: only the 3<-0 skip computes
    dead = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    also_dead = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    pruned = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert space.equivalence_key(space.parse(dead)) == space.equivalence_key(space.parse(also_dead)) == pruned
    assert space.equivalence_key(space.parse(pruned)) == pruned
    # the same edge made live (3<-1) is another function
    live = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    assert space.equivalence_key(space.parse(live)) == live
    # one key per distinct structure vector (the predictors' view of the effective cell), over the whole space
    keys, rows = {}, {}
    for arch in space.enumerate():
        key = space.equivalence_key(arch)
        row = space.structure(arch).tobytes()
        assert keys.setdefault(key, row) == row
        assert rows.setdefault(row, key) == key
    assert len(keys) < 15625
