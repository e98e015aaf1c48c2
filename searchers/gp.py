"""BO with a Gaussian process in the encoding's space (BoTorch + GPyTorch).

Each round: inputs are the candidates' feature vectors scaled to the unit cube (bounds
from the whole domain), targets are standardised by BoTorch's ``Standardize``; a
``SingleTaskGP`` (BoTorch's default kernel: RBF with ARD and a dimension-scaled
log-normal length-scale prior, or ``kernel="matern"``: Matérn-5/2 with ARD) is fitted by
maximising the marginal likelihood, starting from the previous round's hyperparameters
when ``warm_start`` is on. Then either

* ``acquisition="logei"``: analytic LogEI (computed from the posterior marginals, see
  ``searchers.acquisition``) on every unvisited candidate, the top
  ``batch_size`` are proposed (as arch2vec-BO does with EI, there 5), or
* ``acquisition="qlogei"``: a joint batch chosen greedily with qLogEI
  (``optimize_acqf_discrete``), which accounts for the batch's own correlations.

``local`` (0 < local <= 1) restricts a round's candidates to the ``local`` fraction of
the domain nearest (L2, in feature space) to the incumbent, a trust region in the
spirit of TuRBO; 1 (the default) means the whole domain. Targets are normal scores of
their ranks by default (``target="rank"``; ``"standardize"`` is the plain alternative),
and each fit runs at most ``max_fit_iter`` L-BFGS iterations. With ``refit_every`` k > 1
the hyperparameters are re-optimised only every k-th round; the rounds between condition
the GP on all data seen so far with the last fitted hyperparameters (exact, no fit).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from searchers.acquisition import log_expected_improvement, top_k, transform_targets
from searchers.base import Domain, Searcher
from searchers.registry import register
from searchers.torch_state import generator_from


@register("gp")
class GPSearch(Searcher):
    """BoTorch GP-BO over a finite domain (see the module docstring)."""

    requires = ("features",)

    def __init__(self, domain: Domain, rng: np.random.Generator, init: int = 16,
                 batch_size: int = 1, kernel: str = "rbf", acquisition: str = "logei",
                 warm_start: bool = True, local: float = 1.0, target: str = "rank",
                 max_fit_iter: int = 100, refit_every: int = 1):
        super().__init__(domain, rng)
        if kernel not in ("rbf", "matern"):
            raise ValueError(f"kernel must be 'rbf' or 'matern', got {kernel!r}")
        if acquisition not in ("logei", "qlogei"):
            raise ValueError(f"acquisition must be 'logei' or 'qlogei', got {acquisition!r}")
        if not 0 < local <= 1:
            raise ValueError(f"local must be in (0, 1], got {local}")
        self.init, self.batch_size, self.kernel = init, batch_size, kernel
        self.acquisition, self.warm_start, self.local = acquisition, warm_start, local
        if refit_every < 1:
            raise ValueError(f"refit_every must be >= 1, got {refit_every}")
        self.target, self.max_fit_iter, self.refit_every = target, max_fit_iter, refit_every
        self.rounds = 0
        self.generator = generator_from(rng)
        f = domain.features.astype(np.float64)
        lo, hi = f.min(0), f.max(0)
        self.x = torch.as_tensor((f - lo) / np.where(hi > lo, hi - lo, 1.0))
        self.hyper: dict[str, torch.Tensor] | None = None

    def _model(self, pos: np.ndarray, y: np.ndarray):
        from botorch.exceptions.warnings import OptimizationWarning
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.kernels import MaternKernel, ScaleKernel
        from gpytorch.mlls import ExactMarginalLogLikelihood

        train_x = self.x[pos]
        train_y = torch.as_tensor(y, dtype=torch.float64).unsqueeze(-1)
        covar = None
        if self.kernel == "matern":
            covar = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=train_x.shape[1]))
        model = SingleTaskGP(train_x, train_y, covar_module=covar,
                             outcome_transform=Standardize(m=1))
        reuse = self.hyper is not None and self.rounds % self.refit_every != 0
        self.rounds += 1
        if (self.warm_start or reuse) and self.hyper is not None:
            model.load_state_dict(self.hyper, strict=False)
        if reuse:
            model.eval()
            return model
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        seed = int(torch.randint(2**31, (1,), generator=self.generator))
        with torch.random.fork_rng(), warnings.catch_warnings():
            torch.manual_seed(seed)        # fit_gpytorch_mll may resample on failure
            # the iteration cap is deliberate (warm starts converge in a few steps)
            warnings.simplefilter("ignore", OptimizationWarning)
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": self.max_fit_iter}})
        self.hyper = {k: v.detach().clone() for k, v in model.state_dict().items()
                      if k.startswith(("covar_module", "likelihood", "mean_module"))}
        return model

    def _candidates(self, pos: np.ndarray, y: np.ndarray) -> np.ndarray:
        free = self.unvisited()
        if self.local >= 1:
            return free
        best = self.x[pos[int(np.argmax(y))]]
        dist = ((self.x[free] - best) ** 2).sum(-1).numpy()
        keep = max(int(self.local * self.domain.size), self.batch_size)
        return free[np.sort(np.argsort(dist, kind="stable")[:keep])]

    def _propose(self, n: int) -> list[int]:
        from botorch.acquisition import qLogExpectedImprovement
        from botorch.optim import optimize_acqf_discrete
        from botorch.sampling import SobolQMCNormalSampler

        seeding = self.init - self.num_told - len(self.pending)
        if seeding > 0:
            return list(self.random_unvisited(min(n, seeding)))
        if self.pending:
            return []
        pos = np.asarray(self.history_pos)
        y = transform_targets(np.asarray(self.history_y), self.target)
        model = self._model(pos, y)
        cand = self._candidates(pos, y)
        q = min(n, self.batch_size, len(cand))
        if self.acquisition == "logei":
            scores = log_expected_improvement(*self._mean_var(model, cand), best=float(y.max()))
            return list(top_k(scores, cand, q))
        seed = int(torch.randint(2**31, (1,), generator=self.generator))
        acq = qLogExpectedImprovement(model, best_f=float(y.max()),
                                      sampler=SobolQMCNormalSampler(torch.Size([256]), seed=seed))
        chosen, _ = optimize_acqf_discrete(acq, q=q, choices=self.x[cand])
        # map the chosen rows back to positions (rows of a unit-cube copy are unique per cell
        # only up to duplicate features, so match within the candidate set, first unused)
        out: list[int] = []
        for row in chosen:
            hits = torch.nonzero((self.x[cand] == row).all(-1)).flatten().tolist()
            out.append(next(int(cand[h]) for h in hits if int(cand[h]) not in out))
        return out

    @torch.no_grad()
    def _mean_var(self, model, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior marginals (noise-free) at ``cand`` from the fitted hyperparameters:
        ``μ* = m + k*ᵀ (K + σ²I)⁻¹ (y - m)``, ``v* = k(x*, x*) - k*ᵀ (K + σ²I)⁻¹ k*``, then
        un-standardised. Same numbers as ``model.posterior``, ~50x faster on 15k points,
        because only the diagonal of the test covariance is formed."""
        x_train = model.train_inputs[0]
        y_train = model.train_targets
        kernel = model.covar_module
        k_train = kernel(x_train).to_dense()
        k_train = k_train + model.likelihood.noise * torch.eye(len(x_train), dtype=k_train.dtype)
        chol = torch.linalg.cholesky(k_train)
        const = model.mean_module(x_train[:1])[0]
        alpha = torch.cholesky_solve((y_train - const).unsqueeze(-1), chol)
        means, variances = [], []
        for chunk in torch.as_tensor(cand).split(8192):
            xc = self.x[chunk]
            k_star = kernel(xc, x_train).to_dense()                       # [c, n]
            means.append(const + (k_star @ alpha).squeeze(-1))
            v = torch.linalg.solve_triangular(chol, k_star.T, upper=False)  # L⁻¹ k*ᵀ
            prior = kernel(xc, xc, diag=True)
            variances.append((prior - (v ** 2).sum(0)).clamp_min(1e-12))
        tf = model.outcome_transform
        mean = torch.cat(means) * tf.stdvs.squeeze() + tf.means.squeeze()
        var = torch.cat(variances) * tf.stdvs.squeeze() ** 2
        return mean.numpy(), var.numpy()

    def _state(self) -> dict:
        return {"generator": self.generator.get_state().numpy(), "rounds": self.rounds,
                "hyper": None if self.hyper is None else {k: v.numpy() for k, v in self.hyper.items()}}

    def _load_state(self, state: dict) -> None:
        self.generator.set_state(torch.as_tensor(state["generator"]))
        self.rounds = int(state.get("rounds", 0))
        self.hyper = None if state["hyper"] is None else \
            {k: torch.as_tensor(v) for k, v in state["hyper"].items()}
