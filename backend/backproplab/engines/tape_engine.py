"""The training step on backproplab.tape: NumPy, float32 or float64, on the host."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import tape
from ..model import network
from ..tape import ops
from ..xp import NUMPY
from .base import Engine, Pass
from .probes import ProbeMode


def _dense(a: Any, W: Any, b: Any, layer: network.Layer) -> Any:
    # δ(l) = ∂loss/∂z(l) is reported by the backward pass (see forward_backward)
    return tape.tap(ops.dense(a, W, b), ("z", layer.index), value=False)


def _activation(u: Any, layer: network.Layer) -> Any:
    return ops.ACTIVATIONS[layer.activation.name](u)


# the tape's kernels: its primitives (recorded, so the tape differentiates them)
TAPE_KERNELS = network.Kernels(xp=ops, dense=_dense, activation=_activation)


class TapeEngine(Engine):
    xp = NUMPY
    probe_mode = ProbeMode.HOST

    def __init__(self, spec):
        if spec.dtype not in ("float32", "float64"):
            raise ValueError(f"the numpy engine supports float32 and float64, not {spec.dtype}")
        self.dtype = np.dtype(spec.dtype)
        super().__init__(spec)
        self.net = network.layers(spec)
        self._plain_step = tape.value_and_grad(self._loss)
        self._probe = None  # the collector of the pass under way, if any

    @property
    def device_name(self) -> str:
        return "cpu (numpy)"

    def to_device(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array, dtype=self.dtype)

    def _layer(self, h: Any, p: tuple, index: int) -> Any:
        self.check_cancel()
        values = network.layer_forward(self.net[index], TAPE_KERNELS, h, *p)
        if self._probe is not None:  # seen as computed, so the tape frees them as usual
            self._probe.forward(index, tape.primal_value(values.z),
                                tape.primal_value(values.a_out))
        return values.a_out

    def _loss(self, params: list, x: np.ndarray, labels: np.ndarray, targets: np.ndarray):
        spec = self.spec
        pairs = list(zip(params[0::2], params[1::2], strict=True))
        hidden, (W_out, b_out) = pairs[:-1], pairs[-1]
        if spec.segments > 1:
            a = tape.checkpoint_sequential(self._layer, hidden, x, spec.segments)
        else:
            a = x
            for index, p in enumerate(hidden):
                a = self._layer(a, p, index)
        out = _dense(a, W_out, b_out, self.net[-1])
        self._output = tape.primal_value(out)
        if self._probe is not None:
            self._probe.forward(spec.depth, self._output, self._output)
        if spec.loss == "mse":
            return ops.mse(out, targets)
        return ops.softmax_cross_entropy(out, labels)

    def forward_backward(self, x, labels, targets, probe) -> Pass:
        if probe is None:
            loss, grads = self._plain_step(self.params, x, labels, targets)
            return Pass(loss, grads, self._output)

        weights = self.params[0::2]

        def on_cotangent(key, g, sent):  # δ(l) of the mean loss, reduced while in cache
            index = key[1]
            probe.backward(index, g)
            if 1 in sent and 2 in sent:  # dense(h, W, b): W and b are used once, so what
                # the node sends them is their whole gradient (the engine tests compare)
                probe.params(index, sent[1], sent[2], weights[index])

        step = tape.value_and_grad_with_taps(self._loss, on_cotangent=on_cotangent)
        self._probe = probe
        try:
            loss, grads, _, _ = step(self.params, x, labels, targets)
        finally:
            self._probe = None
        return Pass(loss, grads, self._output)
