"""The PyTorch models the training-step benchmark compares tinylm with (same sizes, same
initialisation as tinylm's models; see ``lm.py``).

    lstm       nn.Embedding -> nn.LSTM (one fused call for all time steps) -> nn.Linear
    lstm_loop  the same parameters, but the recurrence as a Python loop over time steps,
               one ``nn.LSTMCell`` call per step: what one writes when each step needs
               its own code (the way tinylm's reference LSTM is written)
    gpt        token embedding + learned positions, 2 pre-LN blocks (nn.LayerNorm, causal
               nn.MultiheadAttention, nn.Linear-nn.GELU-nn.Linear), nn.LayerNorm, tied head
"""

from __future__ import annotations


def build(name: str, torch, V: int, lstm: dict, gpt: dict):
    """A fresh model (seed 0) in training mode: ``name`` is one of lstm, lstm_loop, gpt."""
    nn = torch.nn

    class LSTMLM(nn.Module):
        def __init__(self, loop: bool = False):
            super().__init__()
            E, H = lstm["embed_dim"], lstm["hidden_size"]
            self.embedding = nn.Embedding(V, E)
            # both U(-1/sqrt(H), 1/sqrt(H)), as tinylm's LSTM; the same parameter shapes
            self.rnn = nn.LSTMCell(E, H) if loop else nn.LSTM(E, H, batch_first=True)
            self.head = nn.Linear(H, V)
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # as tinylm's RNNLM
            nn.init.uniform_(self.head.weight, -0.1, 0.1)
            nn.init.zeros_(self.head.bias)

        def forward(self, idx):
            h, _ = self.rnn(self.embedding(idx))
            return self.head(h)

    class LoopLSTMLM(LSTMLM):
        def __init__(self):
            super().__init__(loop=True)

        def forward(self, idx):
            x = self.embedding(idx)  # (B, T, E)
            B, T, _ = x.shape
            h = x.new_zeros(B, self.rnn.hidden_size)
            c = x.new_zeros(B, self.rnn.hidden_size)
            hs = []
            for t in range(T):  # the loop over time steps, in Python
                h, c = self.rnn(x[:, t], (h, c))
                hs.append(h)
            return self.head(torch.stack(hs, dim=1))  # (B, T, V)

    class Block(nn.Module):  # pre-LN, causal self-attention, GELU MLP (tinylm's block)
        def __init__(self, C, n_heads):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C)
            self.attn = nn.MultiheadAttention(C, n_heads, batch_first=True)
            self.ln_2 = nn.LayerNorm(C)
            self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))

        def forward(self, x, mask):
            h = self.ln_1(x)
            a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False, is_causal=True)
            x = x + a
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            C, L = gpt["d_model"], gpt["context_length"]
            self.tok_emb = nn.Embedding(V, C)
            self.pos_emb = nn.Parameter(torch.zeros(L, C))
            self.blocks = nn.ModuleList(
                [Block(C, gpt["n_heads"]) for _ in range(gpt["n_layers"])])
            self.ln_f = nn.LayerNorm(C)
            self.head = nn.Linear(C, V, bias=False)
            for m in self.modules():  # GPT-2 init, as tinylm's GPT
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, 0.0, 0.02)
                    if getattr(m, "bias", None) is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.MultiheadAttention):
                    nn.init.normal_(m.in_proj_weight, 0.0, 0.02)
                    nn.init.zeros_(m.in_proj_bias)
            nn.init.normal_(self.pos_emb, 0.0, 0.02)
            self.head.weight = self.tok_emb.weight  # tied, as GPTConfig's default
            self.register_buffer(
                "mask", torch.ones(L, L, dtype=torch.bool).triu(1), persistent=False)

        def forward(self, idx):
            t = idx.shape[1]
            x = self.tok_emb(idx) + self.pos_emb[:t]
            mask = self.mask[:t, :t]
            for block in self.blocks:
                x = block(x, mask)
            return self.head(self.ln_f(x))

    torch.manual_seed(0)
    model = {"lstm": LSTMLM, "lstm_loop": LoopLSTMLM, "gpt": GPT}[name]()
    model.train()
    return model
