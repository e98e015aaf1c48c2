"""arch2vec-BO: DNGO (Snoek et al., 2015) — a neural network's last hidden layer as basis
functions for Bayesian linear regression — with expected improvement over all candidates.

As in the arch2vec paper's search code: 16 random initial cells; each round the network
(3 tanh layers of 128 units) is trained on the evaluated cells' features (Adam, lr 1e-2,
minibatch 10, 100 epochs; inputs standardised), the regression's precisions α, β are set by
maximising the marginal likelihood, and the 5 unvisited cells with the highest EI are
proposed. Two deviations, both options: targets are standardised (the reference feeds raw
accuracies in [0, 1]; raw percentages would stall a tanh network), and ``warm_start=True``
continues from the previous round's weights instead of retraining from scratch (with
fewer ``epochs``, that is what keeps BO cheap). ``target="rank"`` fits normal scores of the
ranks instead of standardised values (robust to diverged trainings).

Bayesian linear regression on basis ``Φ [n, h]`` with prior ``w ~ N(0, α⁻¹ I)`` and noise
precision ``β``: ``A = β ΦᵀΦ + α I``, ``m = β A⁻¹ Φᵀ y``; prediction at ``φ``:
mean ``φᵀ m``, variance ``φᵀ A⁻¹ φ + 1/β``; log marginal likelihood
``h/2 log α + n/2 log β - β/2 ‖y - Φ m‖² - α/2 ‖m‖² - 1/2 log|A| - n/2 log 2π``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn

from searchers.acquisition import log_expected_improvement, top_k, transform_targets
from searchers.base import Domain, Searcher
from searchers.registry import register
from searchers.torch_state import generator_from, load_module_state, module_state


class BasisNet(nn.Module):
    """``x -> tanh(L3 tanh(L2 tanh(L1 x)))`` (the basis ``φ``) ``-> L4 φ``; ``[B, d] -> [B]``."""

    def __init__(self, in_dim: int, units: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, units), nn.Tanh(), nn.Linear(units, units),
                                  nn.Tanh(), nn.Linear(units, units), nn.Tanh())
        self.out = nn.Linear(units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x)).squeeze(-1)


def fit_blr(phi: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(α, β)`` maximising the log marginal likelihood (optimised in log space)."""
    n, h = phi.shape
    gram, phi_y, yy = phi.T @ phi, phi.T @ y, y @ y
    eig = np.clip(np.linalg.eigvalsh(gram), 0, None)

    def neg_mll(log_params: np.ndarray) -> float:
        alpha, beta = np.exp(log_params)
        a = beta * gram + alpha * np.eye(h)
        m = beta * np.linalg.solve(a, phi_y)
        fit = yy - 2 * m @ phi_y + m @ gram @ m            # ‖y - Φm‖²
        log_det = np.log(beta * eig + alpha).sum()
        mll = (h * np.log(alpha) + n * np.log(beta) - beta * fit - alpha * m @ m - log_det
               - n * np.log(2 * np.pi)) / 2
        return -mll

    res = minimize(neg_mll, np.log([1.0, 1000.0]), method="L-BFGS-B",
                   bounds=[(-10, 10), (-10, 15)])
    alpha, beta = np.exp(res.x)
    return float(alpha), float(beta)


def blr_predict(phi: np.ndarray, y: np.ndarray, alpha: float, beta: float, phi_star: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    h = phi.shape[1]
    a = beta * phi.T @ phi + alpha * np.eye(h)
    a_inv = np.linalg.inv(a)
    m = beta * a_inv @ phi.T @ y
    mean = phi_star @ m
    var = ((phi_star @ a_inv) * phi_star).sum(axis=1) + 1 / beta
    return mean, var


@register("bo")
class DNGOSearch(Searcher):
    """arch2vec-BO with a DNGO surrogate (see the module docstring).

    ``network="gin"`` swaps the MLP on the domain's features for the supervised GIN encoder
    on the cell graphs (``domain.graphs``), trained on the evaluated cells each round; its
    16-d graph embedding (plus a constant) is the regression basis. That is the paper's
    "supervised representation" baseline for BO.
    """

    def __init__(self, domain: Domain, rng: np.random.Generator, init: int = 16,
                 batch_size: int = 5, units: int = 128, epochs: int = 100,
                 minibatch: int = 10, lr: float = 1e-2, warm_start: bool = False,
                 network: str = "mlp", target: str = "standardize"):
        if network not in ("mlp", "gin"):
            raise ValueError(f"network must be 'mlp' or 'gin', got {network!r}")
        self.requires = ("features",) if network == "mlp" else ("graphs",)
        super().__init__(domain, rng)
        self.init, self.batch_size, self.units = init, batch_size, units
        self.epochs, self.minibatch, self.lr, self.warm_start = epochs, minibatch, lr, warm_start
        self.network, self.target = network, target
        self.generator = generator_from(rng)
        self.net: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    # -- surrogate --------------------------------------------------------------------
    def _new_net(self) -> None:
        if self.network == "gin":
            from encoders.supervised import SupervisedConfig, SupervisedGIN

            seed = int(torch.randint(2**31, (1,), generator=self.generator))
            adj, ops = self.domain.graphs
            self.net = SupervisedGIN(ops.shape[2], SupervisedConfig(epochs=self.epochs, seed=seed))
            return
        self.net = BasisNet(self.domain.features.shape[1], self.units)
        with torch.no_grad():
            for layer in self.net.modules():
                if isinstance(layer, nn.Linear):
                    bound = 1 / layer.in_features ** 0.5
                    layer.weight.uniform_(-bound, bound, generator=self.generator)
                    layer.bias.uniform_(-bound, bound, generator=self.generator)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, foreach=True)

    def _train(self, pos: np.ndarray, y: np.ndarray) -> None:
        if self.net is None or not self.warm_start:
            self._new_net()
        if self.network == "gin":
            adj, ops = self.domain.graphs
            self.net.fit(torch.as_tensor(adj[pos], dtype=torch.float32),
                         torch.as_tensor(ops[pos], dtype=torch.float32), torch.as_tensor(y))
            return
        x, t = torch.as_tensor(self._inputs(pos)), torch.as_tensor(y, dtype=torch.float32)
        self.net.train()
        for _ in range(self.epochs):
            for batch in torch.randperm(len(pos), generator=self.generator).split(self.minibatch):
                loss = ((self.net(x[batch]) - t[batch]) ** 2).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()

    def _inputs(self, pos: np.ndarray) -> np.ndarray:
        return (self.domain.features[pos] - self.x_mean) / self.x_std

    @torch.no_grad()
    def _basis(self, pos: np.ndarray) -> np.ndarray:
        if self.network == "gin":
            adj, ops = self.domain.graphs
            z = self.net.encode(torch.as_tensor(adj[pos], dtype=torch.float32),
                                torch.as_tensor(ops[pos], dtype=torch.float32)).numpy()
            return np.hstack([z, np.ones((len(z), 1), dtype=z.dtype)]).astype(np.float64)
        self.net.eval()
        return self.net.body(torch.as_tensor(self._inputs(pos))).numpy().astype(np.float64)

    # -- the loop ---------------------------------------------------------------------
    def _propose(self, n: int) -> list[int]:
        seeding = self.init - self.num_told - len(self.pending)
        if seeding > 0:
            return list(self.random_unvisited(min(n, seeding)))
        if self.pending:
            return []                     # a round is being evaluated
        pos = np.asarray(self.history_pos)
        y = np.asarray(self.history_y)
        y_std = transform_targets(y, self.target)
        if self.network == "mlp":
            self.x_mean = self.domain.features[pos].mean(0)
            self.x_std = self.domain.features[pos].std(0) + 1e-8
        self._train(pos, y_std)
        phi = self._basis(pos)
        alpha, beta = fit_blr(phi, y_std)
        free = self.unvisited()
        mean, var = blr_predict(phi, y_std, alpha, beta, self._basis(free))
        scores = log_expected_improvement(mean, var, float(y_std.max()))
        return list(top_k(scores, free, min(n, self.batch_size)))

    def _state(self) -> dict:
        state = {"generator": self.generator.get_state().numpy()}
        if self.net is not None and self.warm_start:
            model = self.net.model if self.network == "gin" else self.net
            optimizer = self.net.optimizer if self.network == "gin" else self.optimizer
            state.update(net=module_state(model), optimizer=optimizer.state_dict())
            if self.network == "gin":
                state["gin_generator"] = self.net.generator.get_state().numpy()
        return state

    def _load_state(self, state: dict) -> None:
        self.net = None
        if "net" in state:
            self._new_net()
            model = self.net.model if self.network == "gin" else self.net
            optimizer = self.net.optimizer if self.network == "gin" else self.optimizer
            load_module_state(model, state["net"])
            optimizer.load_state_dict(state["optimizer"])
            if self.network == "gin":
                self.net.generator.set_state(torch.as_tensor(state["gin_generator"]))
        self.generator.set_state(torch.as_tensor(state["generator"]))
