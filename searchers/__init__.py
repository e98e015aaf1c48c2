"""Search strategies over finite cell spaces: ask for ids, tell their values.

Built in (registry names): ``random``, ``re`` (regularized evolution), ``ls`` (local
search), ``reinforce`` (arch2vec-REINFORCE), ``bo`` (arch2vec-BO, DNGO), ``gp``
(BoTorch GP-BO), ``gp-mixed`` (GP-BO over latent vector and discrete choices, local
acquisition), ``gbt`` (BO with a bootstrap ensemble of gradient-boosted trees), the
published NAS methods ``bananas`` and ``nasbowl``, and adapters of general-purpose
optimizers (``optuna-tpe``, ``optuna-gp``, ``smac``, ``hebo``; the ``peers`` extra). Plug-ins register through the ``latentnas.searchers`` entry-point group.
No Ray, no files: see :class:`searchers.base.Searcher` for the protocol.
"""

from searchers.base import Domain, Searcher, SearcherError
from searchers.registry import (available, check_options, create, get_searcher, options_of,
                                register)

# importing the strategies registers them
from searchers import (bananas, dngo, evolution, gbt, gp, local_search,  # noqa: E402,F401
                       nasbowl, peers, random_search, reinforce)

__all__ = ["Domain", "Searcher", "SearcherError", "available", "check_options", "create",
           "get_searcher", "options_of", "register"]
