"""arch2vec-REINFORCE: a recurrent Gaussian policy that walks the latent space.

The algorithm of the arch2vec paper and its published search code:

* state ``s_t`` = the feature vector of the last proposed cell (the first state is a random
  cell's vector, not evaluated); an LSTM cell (hidden 128) carries the episode's history
  and a linear layer gives the mean ``μ_t = W h_t + b``;
* action ``a_t ~ N(μ_t, σ² I)`` with ``σ = 1``; the proposed cell is the unvisited cell
  nearest to ``a_t`` in L2, and its vector becomes ``s_{t+1}``;
* an episode is ``batch_size = 16`` proposals; after it the policy takes one Adam step
  (lr 1e-2) on ``-mean_t log π(a_t | s_≤t) · (r_t - b)`` and the LSTM state is reset;
  the advantage is the raw reward minus the baseline: the authors' code computes a
  discounted return and then replaces it by the rewards, so no discount is in effect;
* reward ``r_t`` = the search metric times ``reward_scale``, by default
  ``1 / domain.value_scale`` (fractions, as the authors' rewards); the baseline ``b`` is a
  constant (0.95 by default, their NB101 value) or, with ``baseline="ema"``, an
  exponential moving average of past rewards (decay ``ema_decay``); the platform runs
  ``ema`` by default on NAS-Bench-Graph, whose rewards sit far below 0.95
  (``latentnas.presets.SPACE_DEFAULTS``).

Two details of the authors' code are options, both off by default: ``skip_nearest``
(their NB201 environment never proposes the cell nearest to an action, visited or not:
its search over the sorted distances starts at the second entry) and ``exclude_start``
(the random start cell counts as visited, so it is never proposed). The platform's
``preset=paper`` sets the authors' values for each space (``latentnas.presets``).

Log-probabilities are recomputed at the update from the stored states and actions (the
parameters do not change within an episode), so the whole state is plain arrays and a
search can be checkpointed mid-episode.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from annotated_types import Ge, Gt, Interval, Le
from torch import nn

from searchers.base import Domain, Searcher
from searchers.registry import register
from searchers.torch_state import generator_from, module_state, load_module_state


class LSTMPolicy(nn.Module):
    """``(h_t, c_t) = LSTMCell(s_t, (h_{t-1}, c_{t-1}))``, ``μ_t = W h_t + b``; ``[T, d] -> [T, d]``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.cell = nn.LSTMCell(dim, hidden)
        self.mean = nn.Linear(hidden, dim)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        hx = None
        means = []
        for s in states:
            hx = self.cell(s[None], hx)
            means.append(self.mean(hx[0])[0])
        return torch.stack(means)


@register("reinforce")
class Reinforce(Searcher):
    """arch2vec-REINFORCE (see the module docstring for the algorithm and its defaults)."""

    requires = ("features",)

    query_options = ("batch_size",)

    def __init__(self, domain: Domain, rng: np.random.Generator,
                 batch_size: Annotated[int, Ge(1)] = 16, hidden: Annotated[int, Ge(1), Le(4096)] = 128,
                 lr: Annotated[float, Gt(0), Le(1)] = 1e-2, sigma: Annotated[float, Gt(0)] = 1.0,
                 baseline: float | Literal["ema"] = 0.95,
                 ema_decay: Annotated[float, Interval(ge=0, lt=1)] = 0.9,
                 reward_scale: Annotated[float, Gt(0)] | None = None,
                 skip_nearest: bool = False, exclude_start: bool = False):
        super().__init__(domain, rng)
        self.batch_size, self.sigma = batch_size, sigma
        self.reward_scale = 1.0 / domain.value_scale if reward_scale is None else reward_scale
        self.baseline, self.ema_decay = baseline, ema_decay
        self.skip_nearest, self.exclude_start = skip_nearest, exclude_start
        self.generator = generator_from(rng)
        self.policy = LSTMPolicy(domain.features.shape[1], hidden)
        for p in self.policy.parameters():   # PyTorch's LSTM init, from our generator
            bound = 1 / hidden ** 0.5
            with torch.no_grad():
                p.uniform_(-bound, bound, generator=self.generator)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.features = torch.tensor(domain.features)
        self.start = int(rng.integers(domain.size))   # the walk's start (not evaluated)
        self.state_pos = self.start
        if exclude_start:
            self.taken[self.start] = True
        self.episode: list[tuple[int, np.ndarray, np.ndarray]] = []   # (pos, state, action)
        self.rewards: dict[int, float] = {}
        self.ema: float | None = None

    def _propose(self, n: int) -> list[int]:
        room = self.batch_size - len(self.episode)
        if room == 0:
            return []        # the episode waits for its rewards
        out: list[int] = []
        with torch.no_grad():
            states = [s for _, s, _ in self.episode]
            for _ in range(min(n, room)):
                state = self.features[self.state_pos].numpy()
                mean = self.policy(torch.as_tensor(np.stack(states + [state])))[-1]
                noise = torch.randn(mean.shape, generator=self.generator)
                action = (mean + self.sigma * noise).numpy()
                skip = [self._nearest_any(action)] if self.skip_nearest else []
                pos = self.nearest_unvisited(action, exclude=out + skip)
                self.episode.append((pos, state, action))
                states.append(state)
                out.append(pos)
                self.state_pos = pos
        return out

    def _nearest_any(self, point: np.ndarray) -> int:
        """The position nearest to ``point`` whether visited or not (ties: lowest)."""
        return int(np.argmin(((self.domain.features - point) ** 2).sum(axis=1)))

    def _observe(self, pos: np.ndarray, values: np.ndarray) -> None:
        self.rewards.update((int(p), float(v) * self.reward_scale) for p, v in zip(pos, values))
        if len(self.episode) == self.batch_size and all(p in self.rewards for p, _, _ in self.episode):
            self._update()

    def _update(self) -> None:
        states = torch.as_tensor(np.stack([s for _, s, _ in self.episode]))
        actions = torch.as_tensor(np.stack([a for _, _, a in self.episode]))
        rewards = torch.tensor([self.rewards[p] for p, _, _ in self.episode])
        if self.baseline == "ema":
            if self.ema is None:
                self.ema = float(rewards.mean())
            advantages = rewards - self.ema
            for r in rewards.tolist():
                self.ema = self.ema_decay * self.ema + (1 - self.ema_decay) * r
        else:
            advantages = rewards - float(self.baseline)
        means = self.policy(states)
        dist = torch.distributions.MultivariateNormal(
            means, covariance_matrix=self.sigma ** 2 * torch.eye(means.shape[1]))
        loss = -(dist.log_prob(actions) * advantages).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.episode, self.rewards = [], {}

    def _state(self) -> dict:
        return {"policy": module_state(self.policy), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state().numpy(), "state_pos": self.state_pos,
                "start": self.start, "episode": list(self.episode), "rewards": dict(self.rewards), "ema": self.ema}

    def _load_state(self, state: dict) -> None:
        self.start = state["start"]
        if self.exclude_start:
            self.taken[self.start] = True
        load_module_state(self.policy, state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(torch.as_tensor(state["generator"]))
        self.state_pos, self.ema = state["state_pos"], state["ema"]
        self.episode, self.rewards = list(state["episode"]), dict(state["rewards"])
