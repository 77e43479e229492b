"""Tests for fnnet.tree: flatten/unflatten, map and its errors, paths, get, leafwise arithmetic."""

import collections
import pickle
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnnet import tree
from fnnet.tree import _compiled, _structure

Point = collections.namedtuple("Point", ["x", "y"])


class Tracer:
    """A stand-in for an autodiff tracer: an arbitrary object that must be treated as a leaf."""

    def __init__(self, value):
        self.value = value


def model_params():
    return {
        "layers": [
            {"weight": np.ones((3, 2), np.float32), "bias": np.zeros(2, np.float32)},
            {"weight": np.full((2, 1), 2.0, np.float32), "bias": np.zeros(1, np.float32)},
        ],
        "scale": np.array(0.5, np.float32),
    }


# ------------------------------------------------------------------------------------------ flatten

ROUND_TRIP_CASES = [
    ("leaf", np.arange(3.0)),
    ("scalar", 1.5),
    ("none", None),
    ("empty dict", {}),
    ("empty list", []),
    ("empty tuple", ()),
    ("dict", {"b": 1, "a": 2}),
    ("nested", model_params()),
    ("tuple of one", (np.zeros(1),)),
    ("none inside", {"a": None, "b": [None, 1]}),
    ("namedtuple", Point(1, [2, 3])),
    ("ordered dict", collections.OrderedDict([("z", 1), ("y", 2)])),
    ("tracer", {"w": Tracer(3)}),
    ("int keys", {2: "x", 1: "y"}),
    ("mixed keys", {1: "a", "b": 2}),
]


@pytest.mark.parametrize("name,value", ROUND_TRIP_CASES, ids=[c[0] for c in ROUND_TRIP_CASES])
def test_flatten_unflatten_round_trip(name, value):
    leaves, treedef = tree.flatten(value)
    rebuilt = tree.unflatten(treedef, leaves)
    assert tree.structure(rebuilt) == treedef
    assert type(rebuilt) is type(value)
    assert treedef.num_leaves == len(leaves)
    for a, b in zip(tree.leaves(rebuilt), leaves):
        assert a is b


def test_none_is_an_empty_subtree():
    leaves, treedef = tree.flatten({"a": None, "b": 1})
    assert leaves == [1]
    assert repr(treedef) == "{'a': None, 'b': *}"
    assert tree.map(lambda x: x + 1, {"a": None, "b": 1}) == {"a": None, "b": 2}


def test_dict_order_is_sorted_and_insertion_independent():
    a = {"weight": 1, "bias": 2}
    b = {"bias": 2, "weight": 1}
    assert tree.leaves(a) == [2, 1]
    assert tree.structure(a) == tree.structure(b)
    assert hash(tree.structure(a)) == hash(tree.structure(b))


@pytest.mark.parametrize("value,expected", [
    ({"weight": 1, "bias": 2}, "{'bias': *, 'weight': *}"),
    ([1, (2,), ()], "[*, (*,), ()]"),
    (Point(1, 2), "Point(x=*, y=*)"),
    (5, "*"),
    (None, "None"),
])
def test_treedef_repr(value, expected):
    assert repr(tree.structure(value)) == expected


def test_treedef_equality_distinguishes_containers():
    assert tree.structure([1, 2]) != tree.structure((1, 2))
    assert tree.structure({"a": 1}) != tree.structure({"b": 1})
    assert tree.structure([1, [2]]) != tree.structure([1, 2])
    assert tree.structure([np.zeros(3)]) == tree.structure([Tracer(1)])


def test_unflatten_errors():
    treedef = tree.structure({"a": 1, "b": 2})
    with pytest.raises(ValueError, match="has 2 leaves, got 3"):
        tree.unflatten(treedef, [1, 2, 3])
    with pytest.raises(TypeError, match="treedef must be a TreeDef"):
        tree.unflatten({"a": 1}, [1])


def test_is_leaf_stops_recursion():
    value = {"a": (1, 2), "b": [3]}
    leaves = tree.leaves(value, is_leaf=lambda x: isinstance(x, tuple))
    assert leaves == [(1, 2), 3]
    assert tree.map(lambda t: sum(t) if isinstance(t, tuple) else t, value,
                    is_leaf=lambda x: isinstance(x, tuple)) == {"a": 3, "b": [3]}


nested = st.recursive(
    st.integers() | st.none(),
    lambda children: (st.lists(children, max_size=3) | st.tuples(children, children)
                      | st.dictionaries(st.text("abc", min_size=1, max_size=2), children, max_size=3)),
    max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(nested)
def test_round_trip_property(value):
    leaves, treedef = tree.flatten(value)
    assert tree.unflatten(treedef, leaves) == value
    assert len(tree.paths(value)) == len(leaves) == treedef.num_leaves
    assert tree.map(lambda x: x, value) == value
    for path, leaf in zip(tree.paths(value), leaves):
        assert tree.get(value, path) == leaf


# -------------------------------------------------------------------------------------------- map


def test_map_multiple_trees():
    a = {"x": 1, "y": [2, 3]}
    b = {"y": [20, 30], "x": 10}
    assert tree.map(lambda u, v: u + v, a, b) == {"x": 11, "y": [22, 33]}


def test_map_mismatch_message_shows_path_and_both_structures():
    a = {"layers": [{"weight": 1, "bias": 2}, {"weight": 1, "bias": 2}]}
    b = {"layers": [{"weight": 1, "bias": 2}, {"weight": 1}]}
    expected = ("tree.map: structure mismatch at 'layers/1': expected keys ['bias', 'weight'], got ['weight']; "
                "first tree: {'layers': [{'bias': *, 'weight': *}, {'bias': *, 'weight': *}]}, "
                "tree 2: {'layers': [{'bias': *, 'weight': *}, {'weight': *}]}")
    with pytest.raises(ValueError, match=re.escape(expected)):
        tree.map(lambda u, v: u, a, b)


@pytest.mark.parametrize("a,b,detail", [
    ([1, 2], [1, 2, 3], "at the root: expected a list of length 2, got length 3"),
    ([1, 2], (1, 2), "at the root: expected a list of length 2, got a tuple of length 2"),
    ({"a": 1}, {"a": [1]}, "at 'a': expected a leaf, got a list of length 1"),
    ({"a": [1]}, {"a": 1}, "at 'a': expected a list of length 1, got a leaf"),
    ({"a": None}, {"a": 1}, "at 'a': expected None, got a leaf"),
    ({"a": 1}, {"a": None}, "at 'a': expected a leaf, got None"),
])
def test_map_mismatch_details(a, b, detail):
    with pytest.raises(ValueError, match=re.escape(detail)):
        tree.map(lambda u, v: u, a, b)


def test_map_mismatch_names_the_offending_tree():
    with pytest.raises(ValueError, match=r"tree 3: \[\*\]"):
        tree.map(lambda *xs: 0, [1, 2], [1, 2], [1])


def test_map_treats_tracers_as_leaves():
    out = tree.map(lambda t: t.value * 2, {"w": Tracer(3), "b": [Tracer(4)]})
    assert out == {"w": 6, "b": [8]}


# ------------------------------------------------------------------------------------- paths, get


def test_paths_in_flatten_order():
    assert tree.paths(model_params()) == [
        "layers/0/bias", "layers/0/weight", "layers/1/bias", "layers/1/weight", "scale"]
    assert tree.paths(np.zeros(2)) == [""]
    assert tree.paths({"a": None}) == []


def test_map_with_path():
    out = tree.map_with_path(lambda p, x, y: f"{p}={x + y}", {"a": [1, 2], "b": 3}, {"a": [10, 20], "b": 30})
    assert out == {"a": ["a/0=11", "a/1=22"], "b": "b=33"}


def test_get():
    params = model_params()
    assert tree.get(params, "layers/1/weight") is params["layers"][1]["weight"]
    assert tree.get(params, "layers/0") is params["layers"][0]
    assert tree.get(params, "") is params
    assert tree.get({1: "a"}, "1") == "a"


@pytest.mark.parametrize("path,message", [
    ("layers/1/kernel", "no key 'kernel' at 'layers/1' in path 'layers/1/kernel'; available keys: ['bias', 'weight']"),
    ("layer", "no key 'layer' at the root in path 'layer'; available keys: ['layers', 'scale']"),
    ("layers/5", "no index '5' at 'layers' in path 'layers/5'; available indices: 0..1 (list of length 2)"),
    ("layers/x", "no index 'x' at 'layers'"),
    ("scale/0", "cannot look up '0' at 'scale' in path 'scale/0': it is a leaf of type ndarray"),
])
def test_get_errors(path, message):
    with pytest.raises(KeyError, match=re.escape(message)) as info:
        tree.get(model_params(), path)
    assert str(info.value).startswith("tree.get: ")     # printed without KeyError's extra quotes


# ------------------------------------------------------------------------------------- arithmetic

DTYPES = [np.float16, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_arithmetic_preserves_dtypes(dtype):
    a = {"w": np.full((2, 3), 2.0, dtype), "b": [np.ones(3, dtype)]}
    b = tree.full_like(a, 0.5)
    results = {
        "add": tree.add(a, b), "sub": tree.sub(a, b), "mul": tree.mul(a, b),
        "scale": tree.scale(a, np.float64(0.1)), "add_scaled": tree.add_scaled(a, b, np.float64(-0.1)),
        "zeros_like": tree.zeros_like(a), "ones_like": tree.ones_like(a),
    }
    for name, result in results.items():
        assert tree.structure(result) == tree.structure(a), name
        for leaf, ref in zip(tree.leaves(result), tree.leaves(a)):
            assert leaf.dtype == dtype and leaf.shape == ref.shape, name
    np.testing.assert_allclose(results["add"]["w"], 2.5)
    np.testing.assert_allclose(results["sub"]["w"], 1.5)
    np.testing.assert_allclose(results["mul"]["w"], 1.0)
    np.testing.assert_allclose(results["scale"]["w"], 0.2, rtol=1e-3)
    np.testing.assert_allclose(results["add_scaled"]["w"], 1.95, rtol=1e-3)


def test_arithmetic_dtype_mismatch_is_an_error():
    with pytest.raises(TypeError, match="tree.add: dtype mismatch at 'w': float32 vs float64"):
        tree.add({"w": np.ones(2, np.float32)}, {"w": np.ones(2, np.float64)})


def test_arithmetic_structure_mismatch():
    with pytest.raises(ValueError, match=r"tree.sub: structure mismatch at the root: expected keys \['w'\]"):
        tree.sub({"w": np.ones(2)}, {"v": np.ones(2)})


def test_reductions():
    a = {"w": np.full((2, 3), 2.0, np.float32), "b": np.array([1.0, -1.0], np.float32), "n": None}
    b = tree.ones_like(a)
    assert tree.vdot(a, b) == 12.0 and isinstance(tree.vdot(a, b), float)
    assert tree.global_norm(a) == pytest.approx(np.sqrt(4 * 6 + 2))
    assert isinstance(tree.global_norm(a), float)
    assert tree.size(a) == 8
    assert tree.nbytes(a) == 32
    assert tree.size({}) == 0 and tree.global_norm({}) == 0.0


def test_vdot_accumulates_in_float64():
    big = {"x": np.full(4, 1e20, np.float32), "y": np.ones(3, np.float32)}
    assert np.isfinite(tree.global_norm(big))      # 1e40 overflows float32


def test_astype():
    out = tree.astype({"w": np.ones(2, np.float32), "s": 1.0}, np.float16)
    assert out["w"].dtype == np.float16 and out["s"].dtype == np.float16


def test_full_like_and_allclose():
    a = {"w": np.zeros((2, 2), np.float32), "b": [np.zeros(1, np.float64)]}
    filled = tree.full_like(a, 3.0)
    assert filled["w"].dtype == np.float32 and filled["b"][0].dtype == np.float64
    assert tree.allclose(filled, tree.scale(tree.ones_like(a), 3.0))
    assert not tree.allclose(filled, a)
    assert not tree.allclose(a, {"w": a["w"]})
    assert not tree.allclose({"w": np.zeros(2)}, {"w": np.zeros(3)})
    assert tree.allclose({"w": np.ones(2)}, {"w": np.ones(2) + 1e-7}, rtol=1e-5)


def test_assert_allclose_names_the_path():
    with pytest.raises(AssertionError, match="values differ at 'b/0': max abs difference 1"):
        tree.assert_allclose({"b": [np.zeros(2)]}, {"b": [np.array([0.0, 1.0])]})


# ------------------------------------------------------------------- generated flatten / unflatten
class Pairs(list):
    """A list subclass: a node that keeps its type."""


STRUCTURES = [
    model_params(),
    {"w": np.ones(2), "b": [1.0, (None, 3)], "p": Point(np.zeros(1), {2: "x", 1: None})},
    collections.OrderedDict(z=1, a=(2, [])),
    Pairs([1, {"k": 2}]),
    ({1: "int key", "s": "str key"}, (), {}),  # keys that do not sort: the walk's fallback order
    [Tracer(1), np.float32(2.0), "leaf", None],
    np.arange(3),
]


def _generated_twice(value):
    """The leaves and treedef of ``value`` after its structure has been used enough to be generated."""
    leaves, treedef = tree.flatten(value)
    for _ in range(_structure.GENERATE_AFTER + 1):
        tree.unflatten(treedef, leaves)
        tree.flatten_like(treedef, value)
    return leaves, treedef


@pytest.mark.parametrize("value", STRUCTURES, ids=range(len(STRUCTURES)))
def test_generated_code_rebuilds_and_matches_as_the_walk_does(value):
    leaves, treedef = _generated_twice(value)
    if treedef.kind != "leaf":
        assert treedef._build and treedef._extract
    walked = _structure._unflatten(treedef, iter(leaves))
    rebuilt = tree.unflatten(treedef, leaves)
    assert repr(rebuilt) == repr(walked) and type(rebuilt) is type(walked)
    matched = tree.flatten_like(treedef, value)
    assert len(matched) == len(leaves) and all(a is b for a, b in zip(matched, leaves))


@pytest.mark.parametrize("other", [
    {"layers": [{"weight": 1, "bias": 2}], "scale": 3},                               # a shorter list
    {"layers": ({"weight": 1, "bias": 2}, {"weight": 1, "bias": 2}), "scale": 3},     # tuple for list
    {"layers": [{"weight": 1, "bias": 2}, {"weight": 1, "bias": 2}], "scale": [3]},   # a node for a leaf
    {"layers": [{"weight": 1, "bias": 2}, {"weight": 1, "bias": None}], "scale": 3},  # None for a leaf
    {"layers": [{"weight": 1, "bias": 2}, {"weight": 1, "bias2": 2}], "scale": 3},    # another key
    {"layers": [{"weight": 1, "bias": 2}, {"weight": 1}], "scale": 3},                # a missing key
    collections.OrderedDict(layers=[{"weight": 1, "bias": 2}] * 2, scale=3),           # another dict type
])
def test_generated_match_rejects_every_other_structure(other):
    leaves, treedef = _generated_twice(model_params())
    assert tree.flatten_like(treedef, other) is None
    assert tree.structure(other) != treedef  # the walk agrees that the structures differ


def test_generated_match_accepts_same_structure_with_new_leaves_and_key_order():
    _, treedef = _generated_twice(model_params())
    other = {"scale": "s", "layers": [{"bias": "b0", "weight": "w0"}, {"weight": "w1", "bias": "b1"}]}
    assert tree.flatten_like(treedef, other) == tree.leaves(other) == ["b0", "w0", "b1", "w1", "s"]


def test_generated_match_never_writes_into_a_defaultdict():
    value = collections.defaultdict(int, a=1, b=2)
    leaves, treedef = tree.flatten(value)
    for _ in range(_structure.GENERATE_AFTER + 1):
        tree.flatten_like(treedef, value)
    other = collections.defaultdict(int, a=1, c=2)
    assert tree.flatten_like(treedef, other) is None
    assert dict(other) == {"a": 1, "c": 2}


def test_deep_and_large_structures_keep_the_walk():
    deep = 0
    for _ in range(_compiled.MAX_DEPTH + 5):
        deep = [deep]
    wide = list(range(_compiled.MAX_LEAVES + 1))
    for value in (deep, wide):
        leaves, treedef = _generated_twice(value)
        assert treedef._build is False and treedef._extract is False
        assert tree.unflatten(treedef, leaves) == value
        assert tree.flatten_like(treedef, value) == leaves


def test_a_generated_treedef_pickles_as_its_structure():
    leaves, treedef = _generated_twice(model_params())
    copy = pickle.loads(pickle.dumps(treedef))
    assert copy == treedef and copy is treedef  # interned on load
    assert tree.unflatten(copy, leaves)["scale"] is leaves[-1]
