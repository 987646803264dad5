"""The module system: Parameter, Module registration and traversal, state_dict round trips
and PyTorch-style load errors, train/eval, zero_grad, to(dtype), repr, and containers."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest

import tinylm
from tinylm import nn

pytestmark = pytest.mark.lesson03


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.act = nn.Tanh()
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        return self.out(self.act(self.fc(x)))


class WithBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.register_buffer("running", tinylm.zeros(2))
        self.register_buffer("scratch", tinylm.ones(2), persistent=False)


# ----------------------------------------------------------------------------- Parameter


def test_parameter_is_a_tensor_that_requires_grad():
    p = nn.Parameter(tinylm.ones(2, 3))
    assert isinstance(p, tinylm.Tensor) and p.requires_grad and p.is_leaf
    assert p.shape == (2, 3) and p.dtype == np.float32
    assert not nn.Parameter(tinylm.ones(2), requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor([[1., 1., 1.],")
    assert repr(p).endswith("requires_grad=True)")


def test_parameter_shares_the_tensors_array():
    t = tinylm.zeros(3)
    p = nn.Parameter(t)
    p.data[0] = 5.0
    assert t.data[0] == 5.0


def test_parameter_of_an_integer_tensor_is_refused():
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients"):
        nn.Parameter(tinylm.tensor([1, 2]))


# ----------------------------------------------------------------------------- registration


def test_attribute_assignment_registers_parameters_and_children():
    m = MLP()
    assert [n for n, _ in m.named_parameters()] == ["fc.weight", "fc.bias", "out.weight",
                                                    "out.bias"]
    assert [n for n, _ in m.named_children()] == ["fc", "act", "out"]
    assert [n for n, _ in m.named_modules()] == ["", "fc", "act", "out"]
    assert list(m.children()) == [m.fc, m.act, m.out]
    assert list(m.modules())[0] is m
    assert [p is q for p, q in zip(m.parameters(), [m.fc.weight, m.fc.bias, m.out.weight,
                                                    m.out.bias])] == [True] * 4
    assert [n for n, _ in m.named_parameters(recurse=False)] == []
    assert [n for n, _ in m.fc.named_parameters(prefix="fc")] == ["fc.weight", "fc.bias"]


def test_a_shared_parameter_or_module_is_listed_once():
    m = nn.Module()
    lin = nn.Linear(2, 2)
    m.a, m.b = lin, lin
    assert len(list(m.parameters())) == 2
    assert [n for n, _ in m.named_modules()] == ["", "a"]
    assert list(m.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]  # as PyTorch


def test_register_parameter_buffer_and_module_explicitly():
    m = nn.Module()
    m.register_parameter("w", nn.Parameter(tinylm.ones(2)))
    m.register_parameter("unused", None)
    m.register_buffer("b", tinylm.zeros(2))
    m.add_module("child", nn.ReLU())
    assert [n for n, _ in m.named_parameters()] == ["w"]
    assert [n for n, _ in m.named_buffers()] == ["b"]
    assert m.child.__class__ is nn.ReLU and m.unused is None


def test_registration_errors():
    m = nn.Module()
    with pytest.raises(TypeError, match=r"cannot assign 'Tensor' object to parameter 'w' "
                       r"\(tinylm.nn.Parameter or None required\)"):
        m.register_parameter("w", tinylm.ones(2))
    with pytest.raises(KeyError, match=r'parameter name must not contain ".", got "a.b"'):
        m.register_parameter("a.b", nn.Parameter(tinylm.ones(2)))
    with pytest.raises(KeyError, match="parameter name must not be the empty string"):
        m.register_parameter("", None)
    m.x = 3
    with pytest.raises(KeyError, match='attribute "x" already exists'):
        m.register_buffer("x", tinylm.ones(2))
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        m.add_module("c", 3)
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"cannot assign 'Tensor' as parameter 'weight' "
                       r"\(tinylm.nn.Parameter or None expected\)"):
        lin.weight = tinylm.ones(2, 2)
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'wieght'"):
        lin.wieght  # noqa: B018


def test_assigning_before_init_raises():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tinylm.ones(2))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Bad()


def test_reassigning_and_deleting():
    m = MLP()
    m.fc = None  # a registered child may be set to None
    assert [n for n, _ in m.named_children()] == ["act", "out"]
    del m.out
    assert [n for n, _ in m.named_parameters()] == []
    m.out = nn.Parameter(tinylm.ones(1))  # a name moves from child to parameter
    assert "out" in m._parameters and "out" not in m._modules


def test_call_runs_forward_and_a_missing_forward_says_so():
    m = MLP()
    x = tinylm.randn(5, 4)
    np.testing.assert_array_equal(m(x).data, m.forward(x).data)
    with pytest.raises(NotImplementedError, match=r'Module \[Module\] is missing the required '
                       r'"forward" function'):
        nn.Module()(x)


def test_apply_visits_children_first_then_self():
    seen = []
    MLP().apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Tanh", "Linear", "MLP"]


# ----------------------------------------------------------------------------- state_dict


def test_state_dict_keys_values_and_buffers():
    m = WithBuffer()
    sd = m.state_dict()
    assert list(sd) == ["running", "lin.weight", "lin.bias"]  # own buffers, then children
    assert all(type(v) is tinylm.Tensor and not v.requires_grad for v in sd.values())
    assert sd["lin.weight"].data is m.lin.weight.data  # detached, shares memory (as PyTorch)
    kept = m.state_dict(keep_vars=True)
    assert kept["lin.weight"] is m.lin.weight


def test_state_dict_round_trip_with_numpy_arrays_and_tensors():
    tinylm.manual_seed(0)
    a, b = MLP(), MLP()
    x = tinylm.randn(3, 4)
    assert not np.allclose(a(x).data, b(x).data)
    ids = [id(p) for p in b.parameters()]
    res = b.load_state_dict({k: v.numpy().copy() for k, v in a.state_dict().items()})
    assert res == ([], []) and repr(res) == "<All keys matched successfully>"
    np.testing.assert_array_equal(a(x).data, b(x).data)
    assert [id(p) for p in b.parameters()] == ids  # the same Parameter objects
    c = MLP()
    c.load_state_dict(a.state_dict())  # Tensors work as values too
    np.testing.assert_array_equal(a(x).data, c(x).data)


def test_load_copies_in_place_and_casts_to_the_parameter_dtype():
    m = nn.Linear(2, 2)
    view = m.state_dict()["weight"]
    w64 = np.arange(4, dtype=np.float64).reshape(2, 2) / 3
    m.load_state_dict({"weight": w64, "bias": np.zeros(2)})
    assert m.weight.dtype == np.float32
    np.testing.assert_array_equal(m.weight.data, w64.astype(np.float32))
    np.testing.assert_array_equal(view.data, m.weight.data)  # copied into the same array
    w64[0, 0] = 100.0
    assert m.weight.data[0, 0] == 0.0  # a copy, not a reference to the source


def test_strict_load_errors_name_every_problem_like_pytorch():
    m = nn.Sequential(nn.Linear(4, 2))
    bad = {"0.weight": np.zeros((3, 4)), "extra": np.zeros(1)}
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(bad)
    assert str(e.value) == (
        "Error(s) in loading state_dict for Sequential:\n"
        '\tMissing key(s) in state_dict: "0.bias". \n'
        '\tUnexpected key(s) in state_dict: "extra". \n'
        "\tsize mismatch for 0.weight: copying a param with shape (3, 4) from checkpoint, "
        "the shape in current model is (2, 4).")


def test_a_failed_load_changes_nothing():
    m = nn.Linear(3, 2)
    before = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    with pytest.raises(RuntimeError, match="size mismatch for bias"):
        m.load_state_dict({"weight": np.ones((2, 3)), "bias": np.ones(5)})
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_non_strict_load_returns_missing_and_unexpected_keys():
    m = nn.Linear(4, 2)
    res = m.load_state_dict({"weight": np.ones((2, 4)), "foo": np.ones(1)}, strict=False)
    assert res.missing_keys == ["bias"] and res.unexpected_keys == ["foo"]
    missing, unexpected = res
    assert (missing, unexpected) == (["bias"], ["foo"])
    np.testing.assert_array_equal(m.weight.data, 1.0)
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with "
                       r"shape \(1, 4\) from checkpoint, the shape in current model is \(2, 4\)"):
        m.load_state_dict({"weight": np.ones((1, 4))}, strict=False)  # shapes always checked


def test_load_refuses_a_value_that_is_not_an_array():
    m = nn.Linear(1, 1)
    with pytest.raises(RuntimeError, match=r'While copying the parameter named "bias", expected '
                       r"a tinylm Tensor or an array from checkpoint but received list"):
        m.load_state_dict({"weight": np.ones((1, 1)), "bias": [0.0]})


def test_buffers_round_trip_and_non_persistent_ones_stay_out():
    a, b = WithBuffer(), WithBuffer()
    a.running.data[:] = 7.0
    assert "scratch" not in a.state_dict()
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.running.data, 7.0)


# ----------------------------------------------------------------------------- modes, grads


def test_train_and_eval_are_recursive_and_return_self():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    assert m.train() is m and all(x.training for x in m.modules())
    m[1].eval()
    assert m.training and not m[1][0].training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        m.train(1)


def test_zero_grad_drops_or_zeroes_the_gradients():
    m = MLP()
    m(tinylm.randn(3, 4)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    for p in m.parameters():
        assert p.grad.shape == p.shape and p.grad.dtype == p.dtype and not p.grad.data.any()
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_requires_grad_freezes_every_parameter():
    m = MLP().requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_to_dtype_converts_in_place_keeping_parameter_identity():
    m = MLP()
    m(tinylm.randn(2, 4)).sum().backward()
    held = list(m.parameters())  # what an optimizer would hold
    assert m.double() is m
    assert [id(p) for p in m.parameters()] == [id(p) for p in held]
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in held)
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in held)
    out = m(tinylm.randn(2, 4, dtype=tinylm.float64))
    assert out.dtype == np.float64
    m.to(tinylm.float32)
    assert all(p.dtype == np.float32 for p in held)
    m.to("cpu")
    m.to(device="cpu", dtype=tinylm.float64)
    assert m.fc.weight.dtype == np.float64
    assert m.float() is m and m.fc.weight.dtype == np.float32


def test_to_an_integer_dtype_is_refused():
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point or complex "
                       "dtypes, but got desired dtype=int64"):
        nn.Linear(2, 2).to(tinylm.int64)


# ----------------------------------------------------------------------------- repr


def test_repr_matches_pytorchs_layout():
    assert repr(nn.Linear(4, 2)) == "Linear(in_features=4, out_features=2, bias=True)"
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 2), nn.Tanh()))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Linear(in_features=8, out_features=2, bias=True)\n"
        "    (1): Tanh()\n"
        "  )\n"
        ")")
    assert repr(MLP()).startswith("MLP(\n  (fc): Linear(in_features=4, out_features=3")
    assert repr(nn.Module()) == "Module()"


# ----------------------------------------------------------------------------- containers


def test_sequential_indexing_slicing_and_names():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    s = nn.Sequential(a, b, c)
    assert len(s) == 3 and list(s) == [a, b, c]
    assert s[0] is a and s[-1] is c
    assert isinstance(s[1:], nn.Sequential) and list(s[1:]) == [b, c]
    with pytest.raises(IndexError, match=r"Sequential: index 3 is out of range for 3 modules "
                       r"\(expected in \[-3, 3\)\)"):
        s[3]
    x = tinylm.randn(4, 2)
    np.testing.assert_array_equal(s(x).data, c(b(a(x))).data)
    del s[1]
    assert list(s._modules) == ["0", "1"] and s[1] is c
    s.append(nn.Tanh())
    assert list(s.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and named.act is named[1]


def test_module_list():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and layers[-1] is layers[2]
    layers.append(nn.ReLU())
    layers.insert(0, nn.Tanh())
    assert [type(m).__name__ for m in layers] == ["Tanh", "Linear", "Linear", "Linear", "ReLU"]
    assert list(layers._modules) == ["0", "1", "2", "3", "4"]
    del layers[0]
    assert list(layers.state_dict())[:2] == ["0.weight", "0.bias"]
    assert isinstance(layers[:2], nn.ModuleList) and len(layers[:2]) == 2
    with pytest.raises(IndexError, match="ModuleList: index 9 is out of range for 4 modules"):
        layers[9]
    with pytest.raises(TypeError, match="ModuleList.extend should be called with an iterable"):
        layers.extend(nn.ReLU())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])

    assert list(Net().state_dict()) == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                                        "blocks.1.bias"]


def test_module_dict():
    d = nn.ModuleDict({"q": nn.Linear(2, 2), "act": nn.ReLU()})
    assert list(d) == ["q", "act"] and "q" in d and len(d) == 2
    assert list(d.keys()) == ["q", "act"] and d["act"] is list(d.values())[1]
    d["k"] = nn.Linear(2, 2, bias=False)
    assert list(d.state_dict()) == ["q.weight", "q.bias", "k.weight"]
    assert isinstance(d.pop("act"), nn.ReLU) and "act" not in d
    with pytest.raises(KeyError, match="ModuleDict: no module named 'v'"):
        d["v"]
    d.update([("v", nn.Tanh())])
    assert [k for k, _ in d.items()] == ["q", "k", "v"]


def test_deepcopy_gives_an_independent_model():
    m = MLP()
    c = copy.deepcopy(m)
    assert isinstance(c.fc.weight, nn.Parameter) and c.fc.weight.requires_grad
    assert c.fc.weight.data is not m.fc.weight.data
    np.testing.assert_array_equal(c.fc.weight.data, m.fc.weight.data)
    assert repr(c) == repr(m)
