# %% [markdown]
# # Lesson 10 — A language model, end to end
#
# Lessons 06–09 built the sequence models: RNNs, LSTMs, GRUs, attention. This lesson puts one
# to work on real text, Shakespeare's sonnets, and walks the whole path:
#
# 1. **tokenization**: characters, words or byte-level BPE, and what each choice costs (§1);
# 2. **the objective**: next-token cross-entropy, and perplexity $= e^{\text{loss}}$, with
#    the uniform model as the yardstick (§2);
# 3. **training** a small character LSTM with truncated backpropagation through time (§3);
# 4. **sampling**: greedy, temperature, top-k and top-p, side by side (§4).
#
# Everything is tinylm's own: `tinylm.data` for the corpus, tokenizers and batches,
# `tinylm.models` for the model and the samplers, `tinylm.optim` for AdamW.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.data import (
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    load_text,
    sequential_batches,
    stream_batches,
    train_val_split,
)
from tinylm.models import RNNLMConfig, build_model, detach_state, generate, next_token_probs
from tinylm.nn.utils import clip_grad_norm_
from tinylm.optim import AdamW
from tinylm.optim.lr_scheduler import WarmupCosineLR

text = load_text("sonnets")
train_text, val_text = train_val_split(text, 0.1)  # the last 10% of the text is validation
print(f"{len(text):,} characters; train {len(train_text):,}, validation {len(val_text):,}")
print(text[:300])

# %% [markdown]
# ## 1. Tokenization: what is a "token"?
#
# A language model predicts a sequence of integers; the tokenizer decides what they stand
# for. Three common answers:
#
# * **characters**: a tiny vocabulary (a few dozen), nothing is ever unknown if the
#   character was seen, but sequences are long, so the model must learn spelling and has to
#   carry context over many steps;
# * **words**: short sequences and meaningful units, but a huge vocabulary with a long tail
#   of words seen once, and any word not in the vocabulary becomes `<unk>`; the
#   information is lost;
# * **byte-level BPE** (byte-pair encoding, as GPT-2): start from the 256 bytes, then
#   repeatedly merge the most frequent adjacent pair into a new token until the vocabulary
#   has the size you ask for. Frequent words become one token, rare ones are spelled out in
#   pieces, and since every byte is in the vocabulary no text is ever unknown.
#
# Each tokenizer below is built on the **training** text only, then asked to encode the
# validation text: that is where unknowns show up.

# %%
t0 = time.perf_counter()
tokenizers = {
    "char": CharTokenizer(train_text, unk="\ufffd"),
    "word (min_freq 1)": WordTokenizer(train_text),
    "word (min_freq 2)": WordTokenizer(train_text, min_freq=2),
    "BPE 512": BPETokenizer.train(train_text, 512),
    "BPE 1024": BPETokenizer.train(train_text, 1024),
}
print(f"(built in {time.perf_counter() - t0:.1f} s)\n")
print(f"{'tokenizer':<18} {'vocab':>6} {'val tokens':>10} {'chars/token':>11} {'unknown':>8}")
for name, tok in tokenizers.items():
    ids = tok.encode(val_text)
    unk_id = getattr(tok, "unk_id", None)
    if name.startswith("word"):
        unk_id = 0  # WordTokenizer: id 0 is "<unk>"
    n_unk = sum(i == unk_id for i in ids) if unk_id is not None else 0
    print(
        f"{name:<18} {tok.vocab_size:>6} {len(ids):>10,} {len(val_text) / len(ids):>11.2f} "
        f"{n_unk / len(ids):>8.1%}"
    )

line = val_text.splitlines()[5]
print(f"\none validation line: {line!r}")
for name in ("word (min_freq 2)", "BPE 512"):
    tok = tokenizers[name]
    print(f"{name:>18} -> {tok.decode(tok.encode(line))!r}")
bpe = tokenizers["BPE 512"]
print("BPE pieces:", [bpe.decode([i]) for i in bpe.encode(line)])

# %% [markdown]
# The table shows the trade-off. Characters give the longest sequences and almost no
# unknowns (only characters that never appear in the training text; the char vocabulary counts
# the unknown symbol `\ufffd` as its 63rd entry). Words shorten the
# sequence about fourfold, but 12–17% of validation tokens are `<unk>`,
# and the vocabulary runs into the thousands, each word needing its own embedding
# trained from a handful of occurrences. BPE sits in between: a vocabulary we choose, about
# two to three characters per token, and **no unknowns at all**, because it falls back to
# bytes. That is why large models use it.
#
# For the model trained in this lesson we take **characters**: with 62 symbols a small
# model learns quickly, and each of its samples is easy to read.

# %% [markdown]
# ## 2. The objective: next-token cross-entropy, and perplexity
#
# A language model assigns a probability to a whole sequence through the chain rule:
#
# $$p(t_1, \dots, t_N) = \prod_{i=1}^{N} p(t_i \mid t_1, \dots, t_{i-1}).$$
#
# The model outputs, at every position, logits $z \in \mathbb{R}^V$ for the next token; a
# softmax turns them into $p_\theta(\cdot \mid t_{<i})$. Training minimises the mean
# negative log-likelihood of the text, which is the cross-entropy of lesson 04 averaged over
# positions:
#
# $$\mathcal{L} = -\frac{1}{N} \sum_{i=1}^{N} \log p_\theta(t_i \mid t_{<i}).$$
#
# **Perplexity** is its exponential:
#
# $$\mathrm{PPL} = e^{\mathcal{L}} = \Big(\prod_{i=1}^{N} \frac{1}{p_\theta(t_i \mid t_{<i})}\Big)^{1/N},$$
#
# the geometric mean of $1/p$ of the correct token. It reads as an *effective number of
# choices*: a model with perplexity 5 is, on average, as uncertain as if it were picking
# uniformly among 5 tokens.
#
# **The uniform model has perplexity $V$.** If every logit is equal, every token has
# probability $1/V$, so each term of the loss is $-\log(1/V) = \log V$, the mean is
# $\mathcal{L} = \log V$, and $\mathrm{PPL} = e^{\log V} = V$, whatever the text. Any model
# that has learned something must beat this, and a first check of a fresh model is that its
# loss starts near $\log V$.
#
# A better yardstick is the **unigram** model: ignore the context and predict each
# character with its frequency in the training text. Its loss is the cross-entropy of the
# validation text under those frequencies.
#
# Caution: perplexities are only comparable **with the same tokenizer**. A character model
# and a word model predict different things; a per-word perplexity is naturally much larger
# than a per-character one. (To compare across tokenizers, convert to bits per character.)

# %%
tok = CharTokenizer(text)  # the model's tokenizer: every character of the corpus
V = tok.vocab_size
ids = np.asarray(tok.encode(text), dtype=np.int64)
train_ids, val_ids = train_val_split(ids, 0.1)

# uniform: constant logits
uniform = F.cross_entropy(tinylm.zeros(len(val_ids), V), tinylm.tensor(val_ids)).item()
# unigram: log-frequencies as logits (add-one, so no validation character has p = 0)
counts = np.bincount(train_ids, minlength=V) + 1.0
unigram_logits = np.log(counts / counts.sum())
unigram = F.cross_entropy(
    tinylm.tensor(np.tile(unigram_logits, (len(val_ids), 1))), tinylm.tensor(val_ids)
).item()
print(f"V = {V}")
print(
    f"uniform : loss {uniform:.4f} = log V = {math.log(V):.4f},  perplexity {math.exp(uniform):.2f}"
)
print(f"unigram : loss {unigram:.4f},  perplexity {math.exp(unigram):.2f}")

# %% [markdown]
# Knowing only that spaces and `e` are common already cuts the effective choices from 62 to
# about 23. The rest must come from context.
#
# ## 3. Training a character LSTM, with truncated BPTT
#
# The model is `LSTMLM` from `tinylm.models`: an embedding of size 32, one LSTM layer of 128
# units, and a linear head to 62 logits.
#
# The sonnets are 86,000 training characters; backpropagating through all of them at once
# is out of the question. **Truncated BPTT** (lesson 06) cuts the text into
# `B = 64` contiguous streams read side by side, `T = 16` characters at a time
# (`stream_batches`). Row $b$ of each batch continues row $b$ of the batch before, so we
# **carry the LSTM's state** $(h, c)$ from one batch to the next: the model sees context
# much longer than 16 characters. But we **detach** it first (`detach_state`), so the
# gradient stops at the batch boundary and each backward pass covers only 16 steps.
#
# Validation reads every validation character once, in 16-character windows
# (`sequential_batches`), each starting from a zero state.

# %%
B, T = 64, 16
tinylm.manual_seed(0)
model = build_model(RNNLMConfig(vocab_size=V, embed_dim=32, hidden_size=128))
print(model)
print("parameters:", model.num_parameters())


def val_loss(model):
    model.eval()
    with tinylm.no_grad():
        total, n = 0.0, 0
        for x, y in sequential_batches(val_ids, 1000, T):
            logits, _ = model(x)
            total += F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).item() * y.numel()
            n += y.numel()
    model.train()
    return total / n


print(f"before training: val loss {val_loss(model):.3f}  (log V = {math.log(V):.3f})")

# %%
steps = 150
opt = AdamW(model.parameters(), lr=2e-2, weight_decay=1e-4)
schedule = WarmupCosineLR(opt, warmup_steps=10, total_steps=steps, min_lr=2e-3)
batches = stream_batches(train_ids, B, T)
state, train_losses, val_points = None, [], []
t0 = time.perf_counter()
for step in range(steps):
    try:
        x, y = next(batches)
    except StopIteration:  # end of the streams: start again, from a fresh state
        batches, state = stream_batches(train_ids, B, T), None
        x, y = next(batches)
    logits, state = model(x, state)  # (B, T, V), and the state after the last step
    state = detach_state(state)  # keep the values, cut the graph: truncated BPTT
    loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    schedule.step()
    train_losses.append(loss.item())
    if (step + 1) % 25 == 0:
        val_points.append((step + 1, val_loss(model)))
        print(f"step {step + 1:4d}  train {loss.item():.3f}  val {val_points[-1][1]:.3f}")
print(f"{steps} steps in {time.perf_counter() - t0:.1f} s")
final_val = val_points[-1][1]
print(
    f"final val loss {final_val:.3f}, perplexity {math.exp(final_val):.2f}  "
    f"(unigram {math.exp(unigram):.2f}, uniform {V})"
)
assert final_val < unigram - 0.3

fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
ax.plot(
    np.arange(1, steps + 1), train_losses, color="tab:blue", alpha=0.6, label="train (one batch)"
)
ax.plot(*zip(*val_points), "o-", color="tab:orange", label="validation")
ax.axhline(unigram, color="tab:green", ls="--", label=f"unigram, validation ({unigram:.2f})")
ax.axhline(math.log(V), color="gray", ls=":", label=f"uniform (log {V})")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (nats per character)")
ax.set_title("Character LSTM on the sonnets")
ax.legend()
plt.show()

# %% [markdown]
# 150 steps on two cores do not make a poet, but the model is far past the
# unigram baseline: it has learned which letters follow which, where spaces go, and that
# lines start with a capital. Longer training (the `tinylm train` command runs the same loop
# for minutes) keeps lowering both curves.
#
# ## 4. Sampling: turning probabilities into text
#
# To generate, feed a prompt, take the logits $z$ of the next character, turn them into a
# distribution, draw one token, feed it back, repeat. The choices all live in the "turn them
# into a distribution" step (`tinylm.models.next_token_probs`):
#
# * **greedy**: always the most probable token. Deterministic, and prone to loops.
# * **temperature** $\tau$: $p_i \propto e^{z_i/\tau}$. $\tau < 1$ sharpens the distribution
#   towards greedy (as $\tau \to 0$ all the mass goes to the argmax); $\tau > 1$ flattens it
#   towards uniform (as $\tau \to \infty$, every $z_i/\tau \to 0$).
# * **top-k**: keep only the $k$ most probable tokens and renormalise: the long tail of
#   unlikely tokens, each rare but together frequent, can no longer be drawn.
# * **top-p** (nucleus sampling, Holtzman et al. 2019): sort by probability and keep the
#   smallest set whose total mass is at least $p$. Unlike top-k it adapts: when the model is
#   sure, one or two tokens make up the nucleus; when it is unsure, many do.
#
# Here is one step: the distribution over the character after the prompt `"Shall I comp"`,
# under each rule.

# %%
prompt = "Shall I comp"
model.eval()
with tinylm.no_grad():
    logits, _ = model(tinylm.tensor([tok.encode(prompt)]))
z = logits.numpy()[0, -1]  # (V,) logits of the next character

rules = {
    "greedy": dict(temperature=0),
    "τ = 0.5": dict(temperature=0.5),
    "τ = 1.0": dict(temperature=1.0),
    "τ = 1.5": dict(temperature=1.5),
    "top-k 5": dict(top_k=5),
    "top-p 0.9": dict(top_p=0.9),
}
full = next_token_probs(z)
shown = np.argsort(-full)[:12]  # the 12 most probable characters under the model
labels = [repr(tok.decode([i]))[1:-1] or "?" for i in shown]
fig, axes = plt.subplots(2, 3, figsize=(11, 5), sharey=True, layout="constrained")
for ax, (name, kw) in zip(axes.flat, rules.items()):
    p = next_token_probs(z, **kw)
    ent = -(p[p > 0] * np.log(p[p > 0])).sum()
    ax.bar(range(len(shown)), p[shown], color="tab:blue")
    ax.set_xticks(range(len(shown)), labels)
    ax.set_title(f"{name}: {np.count_nonzero(p)} tokens kept, entropy {ent:.2f}")
fig.suptitle(f"next character after {prompt!r}")
plt.show()

# %% [markdown]
# Lower temperature piles the mass onto the favourite, higher temperature spreads it over
# the alternatives. Top-k cuts at a fixed count, top-p at a fixed mass. Now whole samples,
# each with the same seed, so differences come from the rule alone:

# %%
for name, kw in rules.items():
    out = generate(model, tok, "Shall I ", max_new_tokens=120, seed=7, **kw)
    print(f"--- {name}\n{out}\n")

# %% [markdown]
# Greedy decoding repeats itself: from the same state it always makes the same choice, and
# a short loop, once entered, never ends. $\tau = 0.5$ is still conservative but varied;
# $\tau = 1$ samples the model as trained; $\tau = 1.5$ gives more weight to the tail and the
# spelling falls apart. Top-k and top-p keep the diversity of $\tau = 1$ while removing the
# worst draws. In practice a temperature a little below 1 combined with top-p around 0.9 is a
# common default.
#
# ## Summary
#
# * The tokenizer fixes the vocabulary size $V$, the sequence length and what can be
#   unknown: characters (small $V$, long sequences), words (short sequences, large $V$,
#   `<unk>`), byte-level BPE (chosen $V$, no unknowns).
# * A language model is trained with next-token cross-entropy; perplexity $= e^{\mathcal{L}}$
#   is the effective number of choices per token. The uniform model has loss $\log V$ and
#   perplexity exactly $V$; the unigram model is the next baseline to beat.
# * A recurrent model trains on long text with truncated BPTT: carry the state across
#   batches, detach it so the gradient stops at each boundary.
# * Sampling reshapes the next-token distribution: temperature sharpens or flattens it,
#   top-k keeps a fixed number of tokens, top-p a fixed probability mass; greedy is the
#   $\tau \to 0$ limit.
#
# ## Tests that grade this lesson
#
# Run them all with `pytest -m lesson10`:
#
# * `tests/test_lesson10.py::test_uniform_logits_give_perplexity_vocab_size`
# * `tests/test_lesson10.py::test_perplexity_is_exp_of_mean_cross_entropy`
# * `tests/test_lesson10.py::test_low_temperature_approaches_greedy_and_high_temperature_raises_entropy`
# * `tests/test_lesson10.py::test_top_k_keeps_exactly_k_tokens`
# * `tests/test_lesson10.py::test_top_p_keeps_the_smallest_set_with_mass_at_least_p`
# * `tests/test_lesson10.py::test_bpe_round_trips_the_sonnets`
# * `tests/test_lesson10.py::test_small_lstm_beats_unigram_baseline_after_a_few_steps`
