"""lafit: in-context learning of linear regression by linear attention, and fine-tuning.

Modules, in the order data flows through them:

- `data`: tasks, prompts, datasets; `sufficient`: prompts sampled as Gram matrices;
- `model`: parameters and forward passes;
- `losses`, `regimes` (trainable masks, optimizer chains) and `train` (the `lax.scan` driver);
- `evaluate` (Monte Carlo test error), `theory` (exact risk, optimal parameters) and
  `population` (training on the exact risk);
- `experiment` (the reference experiment end to end), `claims`, `sweep`, `aggregate`, `io`
  and `plots`;
- beneath them all, `prng` (random numbers fused by XLA) and `ops` (small contractions).
"""

__version__ = '0.1.0'
