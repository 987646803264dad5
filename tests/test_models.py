"""Language models (tinylm/models/): configs, shapes, carried state, causality, weight tying,
initialisation, checkpoints, and a float64 gradient check of each model's loss.

The layers the models are built from have their own registry entries and gradient checks;
here the check is of the composition (the loss w.r.t. every parameter, fast mode).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import tinylm
from tinylm import nn
from tinylm.gradcheck import gradcheck
from tinylm.models import (
    GPT,
    GRULM,
    LSTMLM,
    RNNLM,
    GPTConfig,
    RNNLMConfig,
    build_model,
    config_from_dict,
    detach_state,
)
from tinylm.nn import functional as F

V = 11
CELLS = ["lstm", "gru", "rnn"]


def ids(B, T, seed=0, vocab=V):
    return tinylm.tensor(np.random.default_rng(seed).integers(0, vocab, (B, T)))


def rnn_lm(cell, dtype=np.float64, **kw):
    tinylm.manual_seed(0)
    fields = {"embed_dim": 6, "hidden_size": 8, "num_layers": 2, **kw}
    return build_model(RNNLMConfig(V, cell=cell, **fields), dtype=dtype)


def gpt(dtype=np.float64, **kw):
    tinylm.manual_seed(0)
    fields = {"context_length": 8, "d_model": 8, "n_layers": 2, "n_heads": 2, **kw}
    return build_model(GPTConfig(V, **fields), dtype=dtype)


def as_np(t):
    return np.asarray(t.detach().numpy())


def parts(state):
    """The tensors of a state: [h], or [h, c] for an LSTM."""
    return list(state) if isinstance(state, tuple) else [state]


# ----------------------------------------------------------------------------- configs


def test_config_defaults_are_the_contract():
    r = RNNLMConfig(65)
    assert (r.embed_dim, r.hidden_size, r.num_layers, r.cell, r.dropout, r.tie_weights) == (
        64, 256, 1, "lstm", 0.0, False)
    g = GPTConfig(65)
    assert (g.context_length, g.d_model, g.n_layers, g.n_heads, g.dropout, g.mlp_ratio,
            g.tie_weights) == (64, 128, 2, 4, 0.0, 4, True)


@pytest.mark.parametrize("cfg", [RNNLMConfig(65), RNNLMConfig(7, 8, 8, 3, "gru", 0.25, True),
                                 RNNLMConfig(7, cell="rnn"), GPTConfig(65),
                                 GPTConfig(7, 16, 12, 1, 3, 0.1, 2.5, False)])
def test_config_round_trips_through_dict(cfg):
    d = cfg.to_dict()
    assert d["model"] == (cfg.cell if isinstance(cfg, RNNLMConfig) else "gpt")
    assert config_from_dict(d) == cfg
    assert config_from_dict(dataclasses.asdict(cfg)) == cfg  # what a checkpoint stores
    import json
    assert config_from_dict(json.loads(json.dumps(d))) == cfg


def test_config_from_dict_fills_defaults_from_the_model_name():
    assert config_from_dict({"model": "gru", "vocab_size": 5}) == RNNLMConfig(5, cell="gru")
    assert config_from_dict({"model": "gpt", "vocab_size": 5}) == GPTConfig(5)


@pytest.mark.parametrize("d, match", [
    ({"model": "transformer", "vocab_size": 5}, "unknown model 'transformer'"),
    ({"model": "gru", "cell": "lstm", "vocab_size": 5}, "'model' is 'gru' but 'cell'"),
    ({"model": "gpt", "vocab_size": 5, "hidden_size": 3}, r"unknown field\(s\) \['hidden_size'"),
    ({"model": "lstm"}, "needs 'vocab_size'"),
    ({"vocab_size": 5}, "no 'model' key"),
])
def test_config_from_dict_errors(d, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict(d)
    with pytest.raises(TypeError, match="expected a dict"):
        config_from_dict([("model", "gpt")])


@pytest.mark.parametrize("make, match", [
    (lambda: RNNLMConfig(0), "vocab_size must be a positive int, got 0"),
    (lambda: RNNLMConfig(5, hidden_size=2.0), "hidden_size must be a positive int"),
    (lambda: RNNLMConfig(5, num_layers=True), "num_layers must be a positive int"),
    (lambda: RNNLMConfig(5, cell="LSTM"), r"cell must be one of \['lstm', 'gru', 'rnn'\]"),
    (lambda: RNNLMConfig(5, dropout=1.0), r"dropout must be a number in \[0, 1\)"),
    (lambda: RNNLMConfig(5, embed_dim=4, hidden_size=8, tie_weights=True),
     "tie_weights=True needs embed_dim == hidden_size.*embed_dim=4 and hidden_size=8"),
    (lambda: GPTConfig(5, d_model=10, n_heads=4), "n_heads must divide d_model.*10.*4"),
    (lambda: GPTConfig(5, context_length=-1), "context_length must be a positive int"),
    (lambda: GPTConfig(5, mlp_ratio=0), "mlp_ratio must be a positive number"),
    (lambda: GPTConfig(5, dropout=-0.1), "dropout must be a number"),
])
def test_config_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()
    with pytest.raises(TypeError, match="tie_weights must be True or False"):
        GPTConfig(5, tie_weights=1)


# ----------------------------------------------------------------------------- building


def test_build_model_picks_the_class():
    assert type(build_model(RNNLMConfig(5))) is LSTMLM
    assert type(build_model(RNNLMConfig(5, cell="gru"))) is GRULM
    assert type(build_model(RNNLMConfig(5, cell="rnn"))) is RNNLM
    assert type(build_model({"model": "gpt", "vocab_size": 5, "d_model": 8})) is GPT
    for m in (build_model(RNNLMConfig(5, cell="gru")), build_model(GPTConfig(5))):
        assert isinstance(m, nn.Module) and isinstance(m.config, (RNNLMConfig, GPTConfig))
    with pytest.raises(TypeError, match="expected an RNNLMConfig, a GPTConfig or a dict"):
        build_model("lstm")


def test_models_from_keyword_fields_and_alias_checks():
    assert GRULM(vocab_size=5, hidden_size=4).config == RNNLMConfig(5, hidden_size=4, cell="gru")
    assert type(RNNLM(vocab_size=5).rnn) is nn.LSTM
    assert type(RNNLM(vocab_size=5, cell="rnn").rnn) is nn.RNN
    assert GPT(vocab_size=5, d_model=8).config == GPTConfig(5, d_model=8)
    with pytest.raises(ValueError, match="GRULM: needs cell='gru'"):
        GRULM(RNNLMConfig(5))
    with pytest.raises(ValueError, match="LSTMLM: cell is 'lstm' for this class"):
        LSTMLM(vocab_size=5, cell="gru")
    with pytest.raises(TypeError, match="either a config or keyword fields"):
        GPT(GPTConfig(5), d_model=8)
    with pytest.raises(TypeError, match="config must be a GPTConfig"):
        GPT(RNNLMConfig(5))
    with pytest.raises(TypeError, match=r"GPT\(vocab_size=65\)"):
        GPT()


# ----------------------------------------------------------------------------- shapes, state


@pytest.mark.parametrize("cell", CELLS)
def test_rnn_lm_shapes(cell):
    m = rnn_lm(cell, dtype=None, num_layers=3)
    logits, state = m(ids(2, 5))
    assert logits.shape == (2, 5, V) and logits.dtype == np.float32
    h = state[0] if cell == "lstm" else state
    assert h.shape == (3, 2, 8)
    if cell == "lstm":
        assert isinstance(state, tuple) and state[1].shape == (3, 2, 8)


def test_gpt_shapes_and_limits():
    m = gpt(dtype=None)
    logits, state = m(ids(3, 8))
    assert logits.shape == (3, 8, V) and state is None and m.context_length == 8
    with pytest.raises(ValueError, match="sequence length 9 exceeds context_length=8; crop"):
        m(ids(1, 9))
    with pytest.raises(ValueError, match="no recurrent state"):
        m(ids(1, 2), state=logits)


@pytest.mark.parametrize("m", [rnn_lm("gru"), gpt()], ids=["rnn", "gpt"])
def test_bad_ids_raise(m):
    name = type(m).__name__
    with pytest.raises(TypeError, match=f"{name}: idx must be a \\(B, T\\) integer Tensor"):
        m([[1, 2]])
    with pytest.raises(ValueError, match=r"must be 2-D \(B, T\), got shape \(4,\)"):
        m(tinylm.tensor([1, 2, 3, 4]))
    with pytest.raises(TypeError, match="integer token ids, got dtype float32"):
        m(tinylm.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="no tokens"):
        m(tinylm.zeros(2, 0, dtype=tinylm.int64))
    with pytest.raises(IndexError, match=f"token id {V} out of range"):
        m(tinylm.tensor([[0, V]]))


def _cat_time(a, b):
    return np.concatenate([as_np(a), as_np(b)], axis=1)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("to_double", [False, True], ids=["dtype", "double"])
def test_carried_state_equals_one_pass(cell, to_double):
    """Feeding x[:, :3] then x[:, 3:] with the carried state == feeding x at once."""
    m = rnn_lm(cell, dtype=None).double() if to_double else rnn_lm(cell)
    x = ids(2, 7, seed=1)
    full, s_full = m(x)
    a, s_a = m(x[:, :3])
    b, s_b = m(x[:, 3:], s_a)
    assert full.dtype == np.float64
    np.testing.assert_allclose(_cat_time(a, b), as_np(full), rtol=0, atol=1e-12)
    for u, v in zip(parts(s_b), parts(s_full), strict=True):
        np.testing.assert_allclose(as_np(u), as_np(v), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_detach_state_cuts_the_graph_for_truncated_bptt(cell):
    m = rnn_lm(cell)
    x = ids(2, 6, seed=2)
    _, state = m(x[:, :3])
    cut = m.detach_state(state)
    assert type(cut) is type(state)
    for s, c in zip(parts(state), parts(cut), strict=True):
        assert s.requires_grad and not c.requires_grad
        np.testing.assert_array_equal(as_np(s), as_np(c))
    logits, _ = m(x[:, 3:], cut)
    logits.sum().backward()  # the graph of the first window is not reached (nor freed twice)
    assert all(p.grad is not None for p in m.parameters())
    assert detach_state(None) is None
    with pytest.raises(TypeError, match="detach_state: expected None, a Tensor"):
        detach_state("h")


def test_gpt_is_causal():
    """Changing token 5 changes no logit before position 5, and does change position 5."""
    m = gpt()
    x = ids(2, 8, seed=3)
    y = x.numpy().copy()
    y[:, 5] = (y[:, 5] + 1) % V
    a, _ = m(x)
    b, _ = m(tinylm.tensor(y))
    np.testing.assert_allclose(as_np(b)[:, :5], as_np(a)[:, :5], rtol=0, atol=1e-12)
    assert np.abs(as_np(b)[:, 5:] - as_np(a)[:, 5:]).min(axis=-1).max() > 1e-6


def test_gpt_prefix_logits_do_not_depend_on_length():
    m = gpt()
    x = ids(1, 8, seed=4)
    np.testing.assert_allclose(as_np(m(x[:, :4])[0]), as_np(m(x)[0])[:, :4], rtol=0,
                               atol=1e-12)


# ----------------------------------------------------------------------------- tying, init


@pytest.mark.parametrize("make, emb", [
    (lambda: rnn_lm("lstm", embed_dim=8, tie_weights=True), "embedding"),
    (lambda: gpt(), "tok_emb"),
])
def test_weight_tying_shares_one_parameter(make, emb):
    m = make()
    w = getattr(m, emb).weight
    assert m.head.weight is w
    assert sum(p is w for p in m.parameters()) == 1
    assert m.num_parameters() == sum(p.numel() for p in m.parameters())
    sd = m.state_dict()
    assert f"{emb}.weight" in sd and "head.weight" in sd  # both names, as PyTorch
    logits, _ = m(ids(1, 4))
    logits.sum().backward()
    assert w.grad is not None  # one gradient, summed over both uses


def test_untied_gpt_has_its_own_head():
    m = gpt(tie_weights=False)
    assert m.head.weight is not m.tok_emb.weight
    assert m.num_parameters() == gpt().num_parameters() + V * 8


@pytest.mark.parametrize("make", [lambda: rnn_lm("lstm", dtype=None, hidden_size=32),
                                  lambda: rnn_lm("gru", dtype=None, embed_dim=32,
                                                 hidden_size=32, tie_weights=True),
                                  lambda: gpt(dtype=None, d_model=32)])
def test_initial_loss_is_near_log_vocab(make):
    """Small output weights: the untrained model is close to uniform over V tokens."""
    m = make()
    x, y = ids(4, 8, seed=5), ids(4, 8, seed=6)
    logits, _ = m(x)
    loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).item()
    assert abs(loss - math.log(V)) < 0.1


def test_gpt_init_is_gpt2s():
    tinylm.manual_seed(0)
    m = build_model(GPTConfig(50, d_model=64, n_layers=4, n_heads=4))
    assert abs(float(np.std(as_np(m.tok_emb.weight))) - 0.02) < 2e-3
    resid = np.concatenate([as_np(b.mlp[2].weight).ravel() for b in m.blocks])
    assert abs(float(np.std(resid)) - 0.02 / math.sqrt(8)) < 1e-3
    assert np.all(as_np(m.blocks[0].attn.in_proj_bias) == 0)


def test_same_seed_same_weights():
    a, b = gpt(), gpt()
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(as_np(p), as_np(q), err_msg=n)


def test_dropout_only_in_training():
    m = rnn_lm("lstm", dropout=0.5)
    x = ids(2, 5)
    a, b = m(x)[0], m(x)[0]
    assert not np.allclose(as_np(a), as_np(b))
    m.eval()
    np.testing.assert_array_equal(as_np(m(x)[0]), as_np(m(x)[0]))
    g = gpt(dropout=0.5)
    assert not np.allclose(as_np(g(x)[0]), as_np(g(x)[0]))


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("make", [lambda: rnn_lm("gru", embed_dim=8, tie_weights=True),
                                  lambda: gpt()], ids=["gru", "gpt"])
@pytest.mark.parametrize("as_dataclass", [False, True])
def test_checkpoint_rebuilds_the_model(tmp_path, make, as_dataclass):
    m = make()
    cfg = m.config if as_dataclass else m.config.to_dict()
    tinylm.io.save_checkpoint(tmp_path / "m.safetensors", model=m, config=cfg)
    ckpt = tinylm.io.load_checkpoint(tmp_path / "m.safetensors")
    tinylm.manual_seed(123)  # different initial weights, then overwritten
    m2 = build_model(config_from_dict(ckpt.config), dtype=np.float64)
    m2.load_state_dict(ckpt.model_state)
    x = ids(2, 6)
    np.testing.assert_array_equal(as_np(m2(x)[0]), as_np(m(x)[0]))
    assert m2.config == m.config


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("make", [
    lambda: rnn_lm("lstm", num_layers=2),
    lambda: rnn_lm("gru", embed_dim=8, num_layers=1, tie_weights=True),
    lambda: rnn_lm("rnn", num_layers=2),
    lambda: gpt(n_layers=1),
    lambda: gpt(tie_weights=False, mlp_ratio=2),
], ids=["lstm", "gru-tied", "rnn", "gpt-tied", "gpt-untied"])
def test_gradcheck_loss_wrt_parameters(make):
    m = make()
    x, y = ids(2, 5, seed=6), ids(2, 5, seed=7)

    def loss(*params):
        logits, _ = m(x)
        return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))

    assert gradcheck(loss, list(m.parameters()), fast_mode=True)
