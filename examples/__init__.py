"""The demo: a credit-risk model served over the Open Inference Protocol (`model_server`),
and live traffic with scheduled drift (`traffic`). Not installed with mlmon; run from the
repository root as `python -m examples.<module>`."""
