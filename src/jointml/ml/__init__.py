"""ml: secure models (linear/GLM under MPC, trees, neural networks, federated learning)."""
