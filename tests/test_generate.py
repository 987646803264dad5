"""Sampling (tinylm/models/generate.py): the filtered distribution, single draws, and the
generation loop (seeding, greedy, state carrying, GPT cropping, modes, errors), ending with
a tiny model that learns a string and writes it back."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinylm
from tinylm.data import CharTokenizer, WordTokenizer
from tinylm.models import (
    GPTConfig,
    RNNLMConfig,
    build_model,
    generate,
    generate_ids,
    next_token_probs,
    sample_next,
)
from tinylm.nn import functional as F

TEXT = "hello world! "
TOK = CharTokenizer(TEXT)
V = TOK.vocab_size


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


def model(kind, **kw):
    tinylm.manual_seed(0)
    if kind == "gpt":
        cfg = GPTConfig(V, **{"context_length": 6, "d_model": 8, "n_layers": 1, "n_heads": 2,
                              **kw})
    else:
        cfg = RNNLMConfig(V, cell=kind, **{"embed_dim": 8, "hidden_size": 8, "num_layers": 2,
                                           **kw})
    return build_model(cfg, dtype=np.float64)


KINDS = ["lstm", "gru", "rnn", "gpt"]
Z = np.array([1.0, 3.0, -0.5, 2.0, 0.0])  # probabilities by rank: ids 1, 3, 0, 4, 2


# ----------------------------------------------------------------------------- distribution


def test_temperature_scales_the_logits():
    np.testing.assert_allclose(next_token_probs(Z), softmax(Z), rtol=1e-12)
    np.testing.assert_allclose(next_token_probs(Z, 0.5), softmax(Z / 0.5), rtol=1e-12)
    np.testing.assert_allclose(next_token_probs(Z, 10.0), softmax(Z / 10), rtol=1e-12)
    np.testing.assert_array_equal(next_token_probs(Z, 0), [0, 1, 0, 0, 0])  # greedy
    p = next_token_probs(Z, 1e-300)  # a tiny temperature is greedy too, not NaN
    np.testing.assert_array_equal(p, [0, 1, 0, 0, 0])
    assert next_token_probs(tinylm.tensor(Z)).dtype == np.float64  # a Tensor works too


def test_top_k_keeps_the_k_most_probable():
    k2 = softmax(Z[[1, 3]])  # the two largest logits, renormalised
    np.testing.assert_allclose(next_token_probs(Z, top_k=2), [0, k2[0], 0, k2[1], 0],
                               rtol=1e-12)
    np.testing.assert_array_equal(next_token_probs(Z, top_k=1), [0, 1, 0, 0, 0])
    np.testing.assert_allclose(next_token_probs(Z, top_k=99), softmax(Z), rtol=1e-12)
    ties = next_token_probs(np.zeros(4), top_k=2)  # ties: the lower ids win
    np.testing.assert_array_equal(ties, [0.5, 0.5, 0, 0])


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    # equal logits: every probability is exactly 0.25, cumulative 0.25, 0.5, 0.75, 1.0
    flat = np.zeros(4)
    np.testing.assert_array_equal(next_token_probs(flat, top_p=0.5), [0.5, 0.5, 0, 0])  # >= p
    np.testing.assert_allclose(next_token_probs(flat, top_p=0.5 + 1e-9), [1 / 3] * 3 + [0])
    np.testing.assert_array_equal(next_token_probs(flat, top_p=0.25), [1, 0, 0, 0])
    np.testing.assert_array_equal(next_token_probs(flat, top_p=1e-12), [1, 0, 0, 0])  # >= 1
    p = softmax(Z)  # by rank: 0.632, 0.232 (cum 0.864), 0.086 (cum 0.950), ...
    np.testing.assert_array_equal(next_token_probs(Z, top_p=0.5), [0, 1, 0, 0, 0])
    kept = next_token_probs(Z, top_p=0.75)
    np.testing.assert_allclose(kept, [0, p[1], 0, p[3], 0] / (p[1] + p[3]), rtol=1e-12)
    assert np.count_nonzero(next_token_probs(Z, top_p=0.86)) == 2
    assert np.count_nonzero(next_token_probs(Z, top_p=0.87)) == 3
    tiny = np.array([0.0, -40.0])  # top_p=1 keeps even a 4e-18 token
    assert next_token_probs(tiny, top_p=1.0)[1] > 0


def test_top_p_applies_after_top_k_and_temperature():
    k2 = softmax(Z[[1, 3]])  # 0.731, 0.269 after top_k=2
    np.testing.assert_array_equal(next_token_probs(Z, top_k=2, top_p=0.7), [0, 1, 0, 0, 0])
    np.testing.assert_allclose(next_token_probs(Z, top_k=2, top_p=0.75),
                               [0, k2[0], 0, k2[1], 0], rtol=1e-12)
    # at temperature 100 the distribution is nearly flat (each ~0.2): 0.75 needs 4 tokens
    assert np.count_nonzero(next_token_probs(Z, 100, top_p=0.75)) == 4


def test_minus_inf_logits_get_zero_probability():
    z = np.array([-np.inf, 0.0, -np.inf, 1.0])
    p = next_token_probs(z)
    assert p[0] == p[2] == 0 and math.isclose(p.sum(), 1.0)
    np.testing.assert_array_equal(next_token_probs(z, top_k=4, top_p=1.0) > 0, [0, 1, 0, 1])


@pytest.mark.parametrize("logits, match", [
    (np.array([0.0, np.nan]), "finite or -inf"),
    (np.array([0.0, np.inf]), "finite or -inf"),
    (np.array([-np.inf, -np.inf]), "finite or -inf"),
    (np.zeros((2, 3)), r"1-D \(V,\)"),
    (np.zeros(0), r"1-D \(V,\) with V >= 1"),
])
def test_bad_logits_raise(logits, match):
    with pytest.raises(ValueError, match=match):
        next_token_probs(logits)


@pytest.mark.parametrize("kw, match", [
    ({"temperature": -0.1}, "temperature must be a finite number >= 0"),
    ({"temperature": float("nan")}, "temperature must be"),
    ({"temperature": True}, "temperature must be"),
    ({"top_k": 0}, "top_k must be None or an int >= 1, got 0"),
    ({"top_k": 2.0}, "top_k must be None or an int"),
    ({"top_p": 0.0}, r"top_p must be None or a number in \(0, 1\], got 0.0"),
    ({"top_p": 1.5}, r"top_p must be None or a number in \(0, 1\]"),
])
def test_bad_sampling_arguments_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        sample_next(Z, **kw)
    with pytest.raises(ValueError, match="generate: " + match):
        generate(model("gru"), TOK, "he", 3, **kw)


# ----------------------------------------------------------------------------- single draws


def test_greedy_draws_no_random_number():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    assert sample_next(Z, temperature=0, rng=rng) == 1
    assert rng.bit_generator.state == before


def test_sampling_frequencies_match_the_distribution():
    """Chi-square test with a fixed seed: 6,000 draws from a 5-token distribution."""
    rng = np.random.default_rng(1234)
    n = 6_000
    for kw in ({}, {"temperature": 0.7}, {"top_k": 3}, {"top_p": 0.8}):
        p = next_token_probs(Z, **kw)
        counts = np.bincount([sample_next(Z, rng=rng, **kw) for _ in range(n)], minlength=5)
        assert np.all(counts[p == 0] == 0), kw  # filtered tokens are never drawn
        keep = p > 0
        expected = n * p[keep]
        chi2 = float(((counts[keep] - expected) ** 2 / expected).sum())
        # 99.9% quantiles of chi-square with 4, 3, 2 and 1 degrees of freedom
        critical = {5: 18.47, 4: 16.27, 3: 13.82, 2: 10.83}[int(keep.sum())]
        assert chi2 < critical, (kw, counts, expected)


def test_sample_next_uses_tinylms_generator_by_default():
    tinylm.manual_seed(7)
    a = [sample_next(Z) for _ in range(20)]
    tinylm.manual_seed(7)
    assert [sample_next(Z) for _ in range(20)] == a
    rng = np.random.default_rng(7)  # manual_seed(7) makes the same generator
    assert [sample_next(Z, rng=rng) for _ in range(20)] == a


# ----------------------------------------------------------------------------- the loop


@pytest.mark.parametrize("kind", KINDS)
def test_seed_makes_generation_reproducible_and_leaves_the_global_rng_alone(kind):
    m = model(kind)
    tinylm.manual_seed(99)
    state = tinylm.get_rng_state()
    a = generate(m, TOK, "he", 30, seed=5)
    assert tinylm.get_rng_state() == state  # restored
    assert generate(m, TOK, "he", 30, seed=5) == a
    assert generate(m, TOK, "he", 30, seed=6) != a
    tinylm.manual_seed(5)
    assert generate(m, TOK, "he", 30) == a  # seed=s is manual_seed(s), for this call only
    assert a.startswith("he") and len(a) == 32


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_is_the_argmax_chain(kind):
    """Greedy generation == re-running the whole sequence and taking the argmax each step
    (for the RNNs this also checks that carrying the state equals re-reading)."""
    m = model(kind)
    seq = TOK.encode("hel")
    for _ in range(12):
        window = seq[-6:] if kind == "gpt" else seq
        logits, _ = m(tinylm.tensor([window]))
        seq.append(int(np.argmax(logits.detach().numpy()[0, -1])))
    assert generate(m, TOK, "hel", 12, temperature=0) == TOK.decode(seq)
    assert generate(m, TOK, "hel", 12, top_k=1, seed=3) == TOK.decode(seq)  # sampled, top-1
    assert generate(m, TOK, "hel", 12, temperature=0.0, top_p=0.9, top_k=2) == TOK.decode(seq)


def _count_calls(m):
    calls = []
    forward = m.forward

    def counting(idx, state=None):
        calls.append((idx.numpy()[0].tolist(), state is None, tinylm.is_grad_enabled(),
                      m.training))
        return forward(idx, state)

    m.forward = counting
    return calls


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_recurrent_models_read_the_prompt_once(kind):
    m = model(kind)
    calls = _count_calls(m)
    new = generate_ids(m, TOK.encode("hello"), 7, seed=0)
    assert len(calls) == 7
    assert calls[0][:2] == (TOK.encode("hello"), True)  # the prompt, once, from zero state
    assert [c[0] for c in calls[1:]] == [[t] for t in new[:-1]]  # then one token each
    assert all(not c[1] for c in calls[1:])  # ... with the carried state
    assert sum(len(c[0]) for c in calls) == 5 + 7 - 1
    assert all(c[2] is False and c[3] is False for c in calls)  # no_grad, eval mode


def test_gpt_crops_to_its_context():
    m = model("gpt")  # context_length 6
    calls = _count_calls(m)
    prompt = TOK.encode("hello wor")  # 9 tokens > 6
    new = generate_ids(m, prompt, 5, seed=0)
    seq = prompt + new
    assert [c[0] for c in calls] == [seq[i - 6: i] for i in range(9, 14)]
    assert all(len(c[0]) <= 6 and c[1] for c in calls)  # the whole window, no state
    calls.clear()
    generate_ids(m, prompt[:2], 3, seed=0)  # a short prompt grows to the context
    assert [len(c[0]) for c in calls] == [2, 3, 4]


def test_generate_restores_each_modules_mode_and_needs_no_grad():
    m = model("lstm", dropout=0.5)
    m.train()
    m.rnn.eval()  # a mixed state comes back as it was
    generate(m, TOK, "he", 5, seed=0)
    assert m.training and m.drop.training and not m.rnn.training
    assert all(p.grad is None for p in m.parameters())
    m.eval()
    generate(m, TOK, "he", 5, seed=0)
    assert not m.training and not m.drop.training


def test_generate_output_and_edge_cases():
    m = model("gru")
    assert generate(m, TOK, "hello", 0) == "hello"
    assert generate_ids(m, [1, 2], 0) == []
    out = generate_ids(m, [1, 2], 4, seed=1)
    assert len(out) == 4 and all(0 <= t < V for t in out)
    assert generate(m, TOK, "he", 4, seed=1) == "he" + TOK.decode(generate_ids(
        m, TOK.encode("he"), 4, seed=1))


def test_generate_errors():
    m = model("gru")
    with pytest.raises(ValueError, match="the prompt '' encodes to no tokens"):
        generate(m, TOK, "", 5)
    with pytest.raises(ValueError, match=r"character 'z' \(U\+007A\) at position 1"):
        generate(m, TOK, "hz", 5)  # the tokenizer's own error
    with pytest.raises(TypeError, match="prompt must be a str"):
        generate(m, TOK, [1, 2], 5)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0, got -1"):
        generate(m, TOK, "he", -1)
    with pytest.raises(ValueError, match="the prompt has no tokens"):
        generate_ids(m, [], 5)
    other = CharTokenizer("abc")
    with pytest.raises(ValueError, match="tokenizer has 3 tokens but the model was built for "
                                         f"vocab_size={V}"):
        generate(m, other, "ab", 5)
    with pytest.raises(ValueError, match="manual_seed: seed must be a non-negative int"):
        generate(m, TOK, "he", 5, seed=-1)


def test_word_tokenizer_prompt():
    tok = WordTokenizer("the cat sat on the mat .\n")
    tinylm.manual_seed(0)
    m = build_model(RNNLMConfig(tok.vocab_size, 8, 8), dtype=np.float64)
    assert generate(m, tok, "the cat", 3, seed=0).startswith("the cat")


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_model_learns_a_string_and_writes_it_back(kind):
    x = tinylm.tensor([TOK.encode(TEXT[:-1])])  # (1, 12)
    y = tinylm.tensor([TOK.encode(TEXT[1:])])  # the next character at each position
    tinylm.manual_seed(0)
    cfg = (GPTConfig(V, context_length=16, d_model=32, n_layers=1, n_heads=2) if kind == "gpt"
           else RNNLMConfig(V, 16, 32, cell=kind))
    m = build_model(cfg)
    opt = tinylm.optim.Adam(m.parameters(), lr=3e-2)
    for _ in range(40):
        logits, _ = m(x)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    assert generate(m, TOK, "h", len(TEXT) - 2, temperature=0) == TEXT[:-1]
