"""The registries of backproplab.model against independent references: each
activation's φ, φ′, sup|φ′|, tape primitive, torch kernels and Gaussian moments
against PyTorch float64 (autograd for the derivatives) and adaptive quadrature;
layernorm against torch's layer_norm; each init's effective σ_w² against the
variance of the weights it draws. Adding an activation: one row in EXPECTED."""

import math
import typing

import numpy as np
import pytest

from backproplab import tape
from backproplab.model import ACTIVATION_NAMES, ACTIVATIONS, INIT_NAMES, NORMS, init_weight
from backproplab.model.init import effective_sigma_w2
from backproplab.xp import NUMPY, TorchXP

torch = pytest.importorskip("torch")
F = torch.nn.functional

# one row per activation: the PyTorch reference φ, and sup|φ′| (closed form, or the
# value at the maximizer where there is none)
EXPECTED = {
    "linear": (lambda t: t, 1.0),
    "relu": (F.relu, 1.0),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.01), 1.0),
    "tanh": (torch.tanh, 1.0),
    "sigmoid": (torch.sigmoid, 0.25),
    "gelu": (lambda t: F.gelu(t), 1.1289),  # Φ(x) + xφ(x) at x = √2: 1.12886
    "silu": (F.silu, 1.0998),  # at x ≈ 2.3994: 1.09984
    "softplus": (F.softplus, 1.0),
    "elu": (F.elu, 1.0),
    "selu": (F.selu, 1.0507009873554805 * 1.6732632423543772),  # scale·α at 0⁻
}

Z = np.concatenate([np.linspace(-6.0, 6.0, 241), [-30.0, -1e-3, 1e-3, 30.0]])
Z = Z[Z != 0.0]  # the kink: conventions differ there, by design


def test_every_activation_has_a_row_of_expectations():
    assert set(EXPECTED) == set(ACTIVATION_NAMES)


@pytest.fixture(params=ACTIVATION_NAMES)
def name(request):
    return request.param


def _reference(name):
    z = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    y = EXPECTED[name][0](z)
    (dy,) = torch.autograd.grad(y.sum(), z)
    return y.detach().numpy(), dy.numpy()


def test_phi_and_its_derivative_against_torch_autograd(name):
    act, (phi, dphi) = ACTIVATIONS[name], _reference(name)
    np.testing.assert_allclose(act.phi(Z, NUMPY), phi, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(act.dphi(Z, NUMPY), dphi, rtol=1e-11, atol=1e-15)
    z = torch.tensor(Z, dtype=torch.float64)  # and on the torch namespace
    np.testing.assert_allclose(act.dphi(z, TorchXP(torch)).numpy(), dphi, rtol=1e-11,
                               atol=1e-15)


def test_sup_of_the_derivative(name):
    grid = np.linspace(-20.0, 20.0, 400_001)
    sup = float(np.max(np.abs(ACTIVATIONS[name].dphi(grid, NUMPY))))
    assert ACTIVATIONS[name].max_derivative == pytest.approx(EXPECTED[name][1], rel=1e-4)
    assert ACTIVATIONS[name].max_derivative == pytest.approx(sup, rel=1e-4)


def test_tape_primitive_value_and_gradient(name):
    prim = ACTIVATIONS[name].tape_primitive()
    phi, dphi = _reference(name)
    np.testing.assert_allclose(prim(Z), phi, rtol=1e-12, atol=1e-15)
    grad = tape.grad(lambda v: tape.ops.sum(prim(v)))(Z)
    np.testing.assert_allclose(grad, dphi, rtol=1e-11, atol=1e-15)


def test_torch_kernels_against_autograd(name):
    act = ACTIVATIONS[name]
    u = torch.tensor(Z, dtype=torch.float64)
    g = torch.linspace(-2.0, 3.0, len(Z), dtype=torch.float64)
    y = act.torch_forward(torch)(u)
    phi, dphi = _reference(name)
    np.testing.assert_allclose(y.numpy(), phi, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(act.torch_backward(torch)(g, u, y).numpy(), g.numpy() * dphi,
                               rtol=1e-11, atol=1e-15)


def test_closed_form_moments_against_quadrature(name):
    from scipy import integrate

    act = ACTIVATIONS[name]
    q = 1.7
    dens = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731

    def expect(f):
        g = lambda x: float(f(np.array(math.sqrt(q) * x), NUMPY)) * dens(x)  # noqa: E731
        return (integrate.quad(g, -40, 0, epsabs=1e-14, limit=200)[0]
                + integrate.quad(g, 0, 40, epsabs=1e-14, limit=200)[0])

    if act.mean_phi2 is not None:
        assert float(act.mean_phi2(np.float64(q))) == pytest.approx(
            expect(lambda h, xp: act.phi(h, xp) ** 2), rel=1e-10)
    if act.mean_dphi2 is not None:
        for power in (1, 2):
            assert float(act.mean_dphi2(np.float64(q), power)) == pytest.approx(
                expect(lambda h, xp, p=power: act.dphi(h, xp) ** (2 * p)), rel=1e-10)
    assert act.scale_free == bool(np.allclose(act.phi(3.0 * Z, NUMPY), 3.0 * act.phi(Z, NUMPY)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layernorm_against_torch_layer_norm_and_autograd(dtype):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((5, 12)) * 3 + 1).astype(dtype)
    g = rng.standard_normal((5, 12)).astype(dtype)
    norm = NORMS["layernorm"]
    u, inv = norm.forward(z, NUMPY)
    t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    ref = F.layer_norm(t, (12,), eps=1e-5)
    (ref_grad,) = torch.autograd.grad(ref, t, torch.tensor(g, dtype=torch.float64))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(u, ref.detach().numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(norm.vjp(g, u, inv, NUMPY), ref_grad.numpy(), rtol=rtol,
                               atol=rtol)
    assert norm.forward(z, tape.ops)[0] == pytest.approx(u)  # the tape: the same code


@pytest.mark.parametrize("init", INIT_NAMES)
@pytest.mark.parametrize("shape", [(300, 200), (200, 300)])
def test_effective_sigma_w2_is_the_variance_of_the_drawn_weights(init, shape):
    """fan_in · Var(W_ij) of the matrices drawn (a few of them, so the sampling error
    is ~1%) against effective_sigma_w2, for square and non-square shapes."""
    fan_out, fan_in = shape
    rng = np.random.default_rng(5)
    sigma_w = 1.3
    W = np.stack([init_weight(rng, init, fan_out, fan_in, sigma_w) for _ in range(4)])
    measured = fan_in * float(np.mean(W**2))
    expected = effective_sigma_w2(init, sigma_w, fan_in, fan_out)
    assert measured == pytest.approx(expected, rel=0.02)


def test_choices_everywhere_derive_from_the_registries():
    """The API's config schema (which the UI's selects are built from), the phase
    route and the CLI offer exactly the registries' names."""
    from backproplab.api.routes.theory import PhaseRequest
    from backproplab.api.schemas import RunConfig
    from backproplab.cli import build_parser
    from backproplab.model import NORM_NAMES

    props = RunConfig.model_json_schema()["properties"]
    assert props["activation"]["enum"] == list(ACTIVATION_NAMES)
    assert props["init"]["enum"] == list(INIT_NAMES)
    assert props["norm"]["enum"] == list(NORM_NAMES)
    annotation = PhaseRequest.model_fields["activation"].annotation
    assert list(typing.get_args(annotation)) == list(ACTIVATION_NAMES)
    run = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()
               if any(o.dest == "activation" for o in a._actions))
    flag = next(o for o in run._actions if o.dest == "activation")
    assert list(flag.choices) == list(ACTIVATION_NAMES)
