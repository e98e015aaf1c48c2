"""Search strategies (pure numpy/PyTorch/BoTorch): random, REINFORCE, BO, evolution."""
