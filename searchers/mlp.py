"""A small tanh MLP regressor trained with Adam on minibatch squared error, in NumPy.

DNGO retrains its basis network every round on at most a few hundred points; at that
size PyTorch's per-operation overhead dominates (about 0.6 ms per Adam step against
0.1 ms here, measured on 2 cores), which made a 150-query search with the arch2vec
authors' one-cell-per-round protocol cost minutes. The maths is PyTorch's, in float64:

* layers ``h_k = tanh(h_{k-1} W_k + b_k)``, output ``ŷ = h_L w + c``; weights and biases
  drawn from ``U(-1/√fan_in, 1/√fan_in)`` as ``torch.nn.Linear`` does;
* loss ``mean_b (ŷ_b - y_b)²`` on each minibatch;
* Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8): ``m ← β₁m + (1-β₁)g``, ``v ← β₂v + (1-β₂)g²``,
  ``p ← p - lr/(1-β₁ᵗ) · m / (√v / √(1-β₂ᵗ) + ε)``.
"""

from __future__ import annotations

import numpy as np


class TanhMLP:
    """``layers`` tanh layers of ``units`` on ``in_dim`` inputs and a linear output; the
    last hidden layer is the basis ``φ(x)`` (``[n, units]``). ``activation="relu"`` and
    ``loss="mae"`` (mean absolute error) give BANANAS's predictor instead."""

    def __init__(self, in_dim: int, units: int, layers: int, rng: np.random.Generator,
                 activation: str = "tanh", loss: str = "mse"):
        if activation not in ("tanh", "relu") or loss not in ("mse", "mae"):
            raise ValueError(f"activation tanh|relu and loss mse|mae, got {activation}, {loss}")
        self.relu, self.mae = activation == "relu", loss == "mae"
        dims = [in_dim] + [units] * layers + [1]
        shapes = [s for fi, fo in zip(dims[:-1], dims[1:]) for s in ((fi, fo), (fo,))]
        sizes = [int(np.prod(s)) for s in shapes]
        # one flat buffer holds every parameter (and one each for Adam's moments), so an
        # Adam step is a handful of array operations however many layers there are
        self.flat = np.empty(sum(sizes))
        self.params = [a.reshape(s) for a, s in
                       zip(np.split(self.flat, np.cumsum(sizes)[:-1]), shapes)]
        for k, p in enumerate(self.params):
            fan_in = shapes[k - k % 2][0]
            p[...] = rng.uniform(-1 / np.sqrt(fan_in), 1 / np.sqrt(fan_in), p.shape)
        self.m = np.zeros_like(self.flat)
        self.v = np.zeros_like(self.flat)
        self.steps = 0

    def basis(self, x: np.ndarray) -> np.ndarray:
        h = x
        for k in range(0, len(self.params) - 2, 2):
            h = self._act(h @ self.params[k] + self.params[k + 1])
        return h

    def _act(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(z, 0.0) if self.relu else np.tanh(z)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.basis(x) @ self.params[-2][:, 0] + self.params[-1][0]

    def _gradients(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        hs = [x]
        for k in range(0, len(self.params) - 2, 2):
            hs.append(self._act(hs[-1] @ self.params[k] + self.params[k + 1]))
        out = hs[-1] @ self.params[-2] + self.params[-1]                    # [b, 1]
        if self.mae:
            delta = np.sign(out - y[:, None]) / len(y)
        else:
            delta = 2.0 * (out - y[:, None]) / len(y)                        # dL/dŷ
        grads = [None] * len(self.params)
        grads[-2], grads[-1] = hs[-1].T @ delta, delta.sum(0)
        back = delta @ self.params[-2].T
        for k in range(len(self.params) - 4, -1, -2):
            if self.relu:
                back = back * (hs[k // 2 + 1] > 0)
            else:
                back = back * (1.0 - hs[k // 2 + 1] ** 2)                   # tanh'
            grads[k], grads[k + 1] = hs[k // 2].T @ back, back.sum(0)
            back = back @ self.params[k].T
        return grads

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int, minibatch: int, lr: float,
            rng: np.random.Generator, drop_last: bool = False) -> None:
        """``epochs`` passes of Adam over shuffled minibatches (the last, incomplete one
        dropped with ``drop_last``)."""
        size = min(minibatch, len(y))
        b1, b2, eps = 0.9, 0.999, 1e-8
        for _ in range(epochs):
            order = rng.permutation(len(y))
            for start in range(0, len(y), size):
                batch = order[start:start + size]
                if drop_last and len(batch) < size:
                    continue
                self.steps += 1
                g = np.concatenate([a.ravel() for a in self._gradients(x[batch], y[batch])])
                self.m *= b1
                self.m += (1 - b1) * g
                self.v *= b2
                self.v += (1 - b2) * g * g
                self.flat -= lr / (1 - b1 ** self.steps) * self.m / (
                    np.sqrt(self.v) / np.sqrt(1 - b2 ** self.steps) + eps)

    def state(self) -> dict:
        return {"flat": self.flat.copy(), "m": self.m.copy(), "v": self.v.copy(),
                "steps": self.steps}

    def load_state(self, state: dict) -> None:
        self.flat[...] = state["flat"]           # the parameter views stay valid
        self.m, self.v = np.array(state["m"]), np.array(state["v"])
        self.steps = int(state["steps"])
