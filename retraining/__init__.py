"""Orchestration above training, export and the engine's model registry: retraining the served model from
opted-in chat logs (:mod:`reretraining.retrain`) and its simulation (:mod:`reretraining.simulate_logs`).

Layers point one way (docs/ARCHITECTURE.md): this package may import ``training``, ``export`` and ``engine``;
none of them imports it.
"""
