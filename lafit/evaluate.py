"""Monte Carlo test error against the number of shots, for every `n` in one pass.

One sample of `n_max` context tokens serves every `n <= n_max`: the prompt of `n` shots
is the first `n` context tokens and the query. For a one-layer model the predictions for
all `n` come from cumulative sums of per-token terms (`model.one_layer_token_terms`). A
deeper model runs once per `n` on the prompt with the unused context tokens set to zero,
which is the same as removing them (see `model.forward`).

`monte_carlo_test_error` also takes a stack of models (a leading model axis on every
parameter) and scores them all on the same sampled prompts, so the data is drawn once
however many models are compared, and their differences carry less sampling noise.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lafit import data as data_lib
from lafit import model as model_lib

Array = jax.Array


class ErrorCurve(NamedTuple):
  """Test error at `n = 0 .. n_max` shots and the standard error of each estimate."""

  mean: Array
  stderr: Array


def squared_errors_all_shots(params: model_lib.Params, prompts: data_lib.Prompts) -> Array:
  """Returns `(yhat_n - y_q)^2` for `n = 0 .. N-1` shots, shape `(B, N)`."""
  z_BxNxD = prompts.z_BxNxD
  n_tokens = z_BxNxD.shape[1]
  shots_N = jnp.arange(n_tokens)
  num_layers = params['W_V'].shape[0]

  if num_layers == 1:
    terms_BxN = model_lib.one_layer_token_terms(params, z_BxNxD, forward_only=True)
    # The sums of the first n context terms for every n, as a product with a triangular
    # matrix of ones. On a 2-core x86-64 CPU (jax 0.10.2) the Monte Carlo error of 7
    # models at the reference size took 1.3 s this way and 2.2 s with `jnp.cumsum`.
    # HIGHEST precision keeps the sums in float32 on accelerators, whose default may round
    # the inputs to bf16.
    before_NxN = (jnp.arange(n_tokens - 1)[:, None] < shots_N[None, :]).astype(terms_BxN.dtype)
    context_sums_BxN = jnp.matmul(terms_BxN[:, :-1], before_NxN,
                                  precision=jax.lax.Precision.HIGHEST)
    yhat_BxN = z_BxNxD[:, -1:, -1] + (context_sums_BxN + terms_BxN[:, -1:]) / (shots_N + 1)
  else:
    def predict_at(n):
      keep_N = (jnp.arange(n_tokens) < n) | (jnp.arange(n_tokens) == n_tokens - 1)
      z_masked = z_BxNxD * keep_N[None, :, None].astype(z_BxNxD.dtype)
      return model_lib.predict(params, z_masked, num_tokens=n + 1, method='full')

    yhat_BxN = jax.lax.map(predict_at, shots_N).T
  return jnp.square(yhat_BxN - prompts.y_B[:, None])


def monte_carlo_test_error(params: model_lib.Params, key: Array,
                           sample_tasks: data_lib.TaskSampler, *, n_max: int,
                           num_prompts: int, x_std: float, noise_std: float,
                           chunk_size: int = 10_000) -> ErrorCurve:
  """Estimates the test error at `n = 0 .. n_max` shots on fresh prompts.

  Args:
    params: model parameters (any number of layers and heads), or a stack of `M` models
      of one shape with a leading model axis on every array (`W_V` of shape
      `(M, L, H, D, D)`), all scored on the same prompts.
    key: PRNG key of the test data.
    sample_tasks: `(key, batch_size) -> theta_Bxd`, from `data.task_sampler`.
    n_max: the largest number of shots.
    num_prompts: prompts per `n`; they are drawn in chunks of `chunk_size` inside a
      `lax.scan`, so memory does not grow with it.
    x_std, noise_std: the data's input and label-noise standard deviations.
    chunk_size: prompts per chunk.

  Returns:
    The mean squared error and its standard error for each `n`, shape `(n_max + 1,)`, or
    `(M, n_max + 1)` for a stack of models.
  """
  stacked = params['W_V'].ndim == 5
  errors_fn = squared_errors_all_shots
  if stacked:
    errors_fn = jax.vmap(squared_errors_all_shots, in_axes=(0, None))
  chunk = min(chunk_size, num_prompts)
  num_chunks = -(-num_prompts // chunk)

  def add_chunk(totals, index):
    key_tasks, key_prompts = jax.random.split(jax.random.fold_in(key, index))
    theta_Bxd = sample_tasks(key_tasks, chunk)
    prompts = data_lib.sample_prompts(key_prompts, theta_Bxd, n_max, x_std=x_std,
                                      noise_std=noise_std)
    errors_BxN = errors_fn(params, prompts)  # (M, B, N) for a stack of models.
    valid_B = (index * chunk + jnp.arange(chunk)) < num_prompts
    errors_BxN = jnp.where(valid_B[:, None], errors_BxN, 0.0)
    total, total_sq = totals
    return (total + errors_BxN.sum(-2), total_sq + jnp.square(errors_BxN).sum(-2)), None

  zeros = jnp.zeros(params['W_V'].shape[:1] * stacked + (n_max + 1,), params['W_V'].dtype)
  (total, total_sq), _ = jax.lax.scan(add_chunk, (zeros, zeros), jnp.arange(num_chunks))
  mean = total / num_prompts
  variance = jnp.maximum(total_sq / num_prompts - jnp.square(mean), 0.0)
  return ErrorCurve(mean=mean, stderr=jnp.sqrt(variance / num_prompts))
