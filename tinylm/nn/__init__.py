"""Neural-network building blocks with PyTorch's names: ``tinylm.nn`` and ``tinylm.nn.functional``.

Each part below is imported from its own module; see DESIGN.md for the layout.
"""

from . import functional, init, utils
from .activation import GELU, ReLU, Sigmoid, Softmax, Tanh
from .attention import MultiheadAttention
from .containers import ModuleDict, ModuleList, Sequential
from .dropout import Dropout
from .embedding import Embedding
from .grad_tracking import StepGrads, record_step_grads
from .linear import Linear
from .module import Module
from .normalization import LayerNorm, RMSNorm
from .parameter import Parameter
from .positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .transformer import TransformerBlock
