"""The tape against PyTorch in float64: MLP gradients for every activation,
Hessians and Jacobians, agreement to 1e-10 relative."""

import numpy as np
import pytest

from backproplab import tape
from backproplab.tape import ops

torch = pytest.importorskip("torch")
F = torch.nn.functional

TORCH_ACT = {
    "linear": lambda x: x, "relu": F.relu, "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "silu": F.silu,
    "softplus": F.softplus, "elu": F.elu, "selu": F.selu,
}


def mlp_params(rng, sizes):
    return [(rng.standard_normal((o, i)) / np.sqrt(i), 0.1 * rng.standard_normal(o))
            for i, o in zip(sizes[:-1], sizes[1:], strict=True)]


def tape_mlp(params, x, act):
    a = x
    for k, (W, b) in enumerate(params):
        z = ops.dense(a, W, b)
        a = act(z) if k < len(params) - 1 else z
    return a


def torch_mlp(params, x, act):
    a = x
    for k, (W, b) in enumerate(params):
        z = a @ W.T + b
        a = act(z) if k < len(params) - 1 else z
    return a


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("name", list(ops.ACTIVATIONS))
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_mlp_gradients_match_torch(name, loss):
    rng = np.random.default_rng(7)
    params = mlp_params(rng, [5, 8, 8, 3])
    x = rng.standard_normal((6, 5))
    y = rng.standard_normal((6, 3))
    labels = rng.integers(0, 3, size=6)
    act = ops.ACTIVATIONS[name]

    def loss_fn(p):
        out = tape_mlp(p, x, act)
        return ops.mse(out, y) if loss == "mse" else ops.softmax_cross_entropy(out, labels)

    value, grads = tape.value_and_grad(loss_fn)(params)
    tparams = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
               for W, b in params]
    out = torch_mlp(tparams, torch.tensor(x), TORCH_ACT[name])
    tl = (F.mse_loss(out, torch.tensor(y)) if loss == "mse"
          else F.cross_entropy(out, torch.tensor(labels)))
    tgrads = torch.autograd.grad(tl, [p for pair in tparams for p in pair])
    assert rel_err(value, tl.item()) < 1e-12
    for got, want in zip([g for pair in grads for g in pair], tgrads, strict=True):
        assert rel_err(got, want.numpy()) < 1e-10


def test_hessian_matches_torch_func():
    rng = np.random.default_rng(3)
    W1, b1 = rng.standard_normal((4, 3)), rng.standard_normal(4)
    W2 = rng.standard_normal((1, 4))
    x = rng.standard_normal((5, 3))

    def f_tape(w):
        h = ops.tanh(ops.dense(x, ops.reshape(w, (4, 3)), b1))
        return ops.sum(ops.softplus(h @ W2.T))

    def f_torch(w):
        h = torch.tanh(torch.tensor(x) @ w.reshape(4, 3).T + torch.tensor(b1))
        return F.softplus(h @ torch.tensor(W2).T).sum()

    w0 = W1.ravel()
    h_tape = tape.hessian(f_tape)(w0)
    h_torch = torch.func.hessian(f_torch)(torch.tensor(w0)).numpy()
    assert h_tape.shape == (12, 12)
    assert rel_err(h_tape, h_torch) < 1e-10


@pytest.mark.parametrize("mode", ["jacfwd", "jacrev"])
def test_jacobians_match_torch_func(mode):
    rng = np.random.default_rng(5)
    params = mlp_params(rng, [4, 6, 3])
    x0 = rng.standard_normal(4)

    def f_tape(v):
        return tape_mlp(params, ops.reshape(v, (1, 4)), ops.gelu)[0]

    def f_torch(v):
        tp = [(torch.tensor(W), torch.tensor(b)) for W, b in params]
        return torch_mlp(tp, v.reshape(1, 4), F.gelu)[0]

    ours = getattr(tape, mode)(f_tape)(x0)
    theirs = getattr(torch.func, mode)(f_torch)(torch.tensor(x0)).numpy()
    assert ours.shape == (3, 4)
    assert rel_err(ours, theirs) < 1e-10
