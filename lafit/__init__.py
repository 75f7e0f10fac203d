"""lafit: in-context learning of linear regression by linear attention, and fine-tuning.

Modules, in the order data flows through them: `data` (tasks, prompts, datasets), `model`
(parameters, forward passes), `losses`, `regimes` (trainable masks, optimizer chains),
`train` (the `lax.scan` driver), `evaluate` (Monte Carlo test error) and `theory` (exact
risk and optimal parameters), `experiment` (the reference experiment end to end), `io`
and `plots`.
"""

__version__ = '0.1.0'
