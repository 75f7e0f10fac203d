"""Gram-matrix prompts: exact predictions, the sampler's distribution, and input checks.

The statistical tests compare sample means with a tolerance of `NUM_SE` combined standard
errors, against the token sampler of `lafit.data`, the exact risk of `lafit.theory` or
closed-form moments. Seeds are fixed, so every run draws the same samples. Sample sizes
are shared between tests where possible, so that the sampler compiles only a few times.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from lafit import data as data_lib
from lafit import losses
from lafit import model as model_lib
from lafit import regimes
from lafit import sufficient
from lafit import theory
from lafit import train as train_lib

NUM_SE = 4.5
X_STD = 1.3
NOISE_STD = 0.4
NUM_PROMPTS = 100_000
MODEL_VARIANTS = [(1, 'merged'), (1, 'separate'), (2, 'merged'), (2, 'separate')]
# The exact tests share one small shape, so that eager operations compile once.
SMALL_BATCH, SMALL_D, SMALL_N = 64, 3, 6


def random_params(seed, d, *, num_heads=1, parameterization='merged', init_std=0.3,
                  num_layers=1):
  return model_lib.init_params(jax.random.PRNGKey(seed), d, num_layers=num_layers,
                               num_heads=num_heads, parameterization=parameterization,
                               init_std=init_std)


def sphere_tasks(seed, batch_size, d):
  return data_lib.sample_sphere(jax.random.PRNGKey(seed), (batch_size,), d)


def token_prompts(seed, batch_size, d, n):
  theta = sphere_tasks(seed, batch_size, d)
  return data_lib.sample_prompts(jax.random.PRNGKey(seed + 1), theta, n, x_std=X_STD,
                                 noise_std=NOISE_STD)


class Summary(NamedTuple):
  """Column means and variances of a sample of `count` i.i.d. rows."""

  mean: np.ndarray
  var: np.ndarray
  count: int


def summarize(sample_MxK) -> Summary:
  sample_MxK = np.asarray(sample_MxK, np.float64)
  return Summary(sample_MxK.mean(0), sample_MxK.var(0), sample_MxK.shape[0])


def exact_value(value) -> Summary:
  """Summarizes a known expectation as a sample with no spread."""
  return Summary(np.asarray(value, np.float64), 0.0, 1)


def summarize_gram(gram_MxDxD) -> tuple[Summary, list[str]]:
  """Summarizes the upper-triangle entries of G and all their pairwise products."""
  gram = np.asarray(gram_MxDxD, np.float64)
  rows, cols = np.triu_indices(gram.shape[1])
  entries = gram[:, rows, cols]
  count = entries.shape[0]
  pairs_i, pairs_j = np.triu_indices(entries.shape[1])
  # E[a b] and E[(a b)^2] for every pair of entries, from two matrix products.
  product_mean = (entries.T @ entries / count)[pairs_i, pairs_j]
  product_square_mean = ((entries ** 2).T @ (entries ** 2) / count)[pairs_i, pairs_j]
  summary = Summary(
      mean=np.concatenate([entries.mean(0), product_mean]),
      var=np.concatenate([entries.var(0), product_square_mean - product_mean ** 2]),
      count=count)
  labels = [f'G[{r},{c}]' for r, c in zip(rows, cols)]
  labels += [f'{labels[i]}*{labels[j]}' for i, j in zip(pairs_i, pairs_j)]
  return summary, labels


def assert_means_agree(summary_a: Summary, summary_b: Summary, labels, case):
  """Asserts that the means of two samples differ by < NUM_SE combined standard errors.

  A small slack covers constant columns (zero standard error), whose two values differ
  only by float rounding.
  """
  mean_a = summary_a.mean
  mean_b = np.broadcast_to(summary_b.mean, mean_a.shape)
  se = np.sqrt(np.maximum(summary_a.var, 0.0) / summary_a.count
               + np.maximum(summary_b.var, 0.0) / summary_b.count)
  se = np.broadcast_to(se, mean_a.shape)
  tolerance = NUM_SE * se + 1e-5 * np.abs(mean_b) + 1e-6
  excess = np.abs(mean_a - mean_b) / tolerance
  worst = int(np.argmax(excess))
  assert excess[worst] < 1.0, (
      f'{case}: {labels[worst]} has mean {mean_a[worst]:.6g}, expected {mean_b[worst]:.6g}. '
      f'The difference exceeds {NUM_SE} SE ({se[worst]:.3g}).')


predict_tokens = jax.jit(model_lib.predict, static_argnames='method')
predict_gram = jax.jit(sufficient.predict_from_gram)


def squared_errors(params, prompts):
  return np.asarray(jnp.square(predict_gram(params, prompts) - prompts.y_B))


# ---------------------------------------------------------------------------
# Exact identities with the token path.


def test_predict_from_gram_equals_tokens():
  prompts = token_prompts(1, SMALL_BATCH, SMALL_D, SMALL_N)
  gram_prompts = sufficient.gram_from_tokens(prompts)
  for num_heads, parameterization in MODEL_VARIANTS:
    params = random_params(0, SMALL_D, num_heads=num_heads, parameterization=parameterization)
    expected = predict_tokens(params, prompts.z_BxNxD, method='full')
    actual = predict_gram(params, gram_prompts)
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-5,
                               err_msg=f'{num_heads} heads, {parameterization}')


@pytest.mark.parametrize('n', [0, 1])
def test_predict_from_gram_few_tokens(n):
  prompts = token_prompts(1, SMALL_BATCH, SMALL_D, n)
  params = random_params(0, SMALL_D, num_heads=2, parameterization='separate')
  expected = predict_tokens(params, prompts.z_BxNxD, method='full')
  actual = predict_gram(params, sufficient.gram_from_tokens(prompts))
  np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize('n', [SMALL_N, 70])  # 70 context tokens take the looped sum.
def test_gram_from_tokens_fields(n):
  prompts = token_prompts(2, SMALL_BATCH, SMALL_D, n)
  gram_prompts = sufficient.gram_from_tokens(prompts)
  context = np.asarray(prompts.z_BxNxD[:, :-1], np.float64)
  expected = np.einsum('bnd,bne->bde', context, context)
  np.testing.assert_allclose(gram_prompts.gram_BxDxD, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(gram_prompts.z_q_BxD, prompts.z_BxNxD[:, -1])
  np.testing.assert_array_equal(gram_prompts.y_B, prompts.y_B)
  np.testing.assert_array_equal(gram_prompts.num_context, np.full(SMALL_BATCH, n))


def test_dataset_sampler_equals_tokens():
  theta = np.array([0.6, 0.0, 0.8], np.float32)
  dataset = data_lib.make_dataset(jax.random.PRNGKey(4), theta, 300, x_std=1.0,
                                  noise_std=0.3)
  key = jax.random.PRNGKey(5)
  expected = sufficient.gram_from_tokens(
      data_lib.sample_prompts_from_dataset(key, dataset, SMALL_BATCH, SMALL_N))
  actual = sufficient.sample_gram_prompts_from_dataset(
      key, data_lib.dataset_tokens(dataset), SMALL_BATCH, SMALL_N)
  for field in sufficient.GramPrompts._fields:
    np.testing.assert_array_equal(getattr(actual, field), getattr(expected, field), field)


def test_losses_and_gradients_equal_tokens():
  prompts = token_prompts(4, SMALL_BATCH, SMALL_D, SMALL_N)
  gram_prompts = sufficient.gram_from_tokens(prompts)
  for num_heads, parameterization in [(1, 'merged'), (2, 'separate')]:
    params = random_params(3, SMALL_D, num_heads=num_heads, parameterization=parameterization)
    for loss_fn in (losses.few_shot_loss, losses.zero_shot_loss):
      case = f'{loss_fn.__name__}, {num_heads} heads, {parameterization}'
      value_and_grad = jax.jit(jax.value_and_grad(loss_fn))
      loss_tokens, grads_tokens = value_and_grad(params, prompts)
      loss_gram, grads_gram = value_and_grad(params, gram_prompts)
      np.testing.assert_allclose(loss_gram, loss_tokens, rtol=2e-5, err_msg=case)
      for name in params:
        np.testing.assert_allclose(grads_gram[name], grads_tokens[name], rtol=1e-4,
                                   atol=1e-5, err_msg=f'{case}, gradient of {name}')


def test_token_loss_path_unchanged():
  params = random_params(5, SMALL_D, num_heads=2)
  prompts = token_prompts(6, SMALL_BATCH, SMALL_D, SMALL_N)

  def reference_loss(params, prompts):
    yhat_B = model_lib.predict(params, prompts.z_BxNxD)
    return jnp.mean(jnp.square(yhat_B - prompts.y_B))

  np.testing.assert_array_equal(losses.few_shot_loss(params, prompts),
                                reference_loss(params, prompts))
  np.testing.assert_array_equal(jax.jit(losses.few_shot_loss)(params, prompts),
                                jax.jit(reference_loss)(params, prompts))


def test_query_only_is_zero_shot():
  prompts = token_prompts(7, SMALL_BATCH, SMALL_D, SMALL_N)
  query = sufficient.query_only(sufficient.gram_from_tokens(prompts))
  expected = sufficient.gram_from_tokens(data_lib.Prompts(prompts.z_BxNxD[:, -1:], prompts.y_B))
  for field in sufficient.GramPrompts._fields:
    np.testing.assert_array_equal(getattr(query, field), getattr(expected, field),
                                  err_msg=field)


@pytest.mark.parametrize('num_heads', [1, 2])
def test_zero_shot_predictions_match_query_only(num_heads):
  prompts = sufficient.gram_from_tokens(token_prompts(8, SMALL_BATCH, SMALL_D, SMALL_N))
  params = random_params(9, SMALL_D, num_heads=num_heads)
  expected = sufficient.predict_from_gram(params, sufficient.query_only(prompts))
  zero_shot, few_shot = sufficient.predict_zero_and_few_shot(params, prompts)
  np.testing.assert_allclose(sufficient.predict_zero_shot(params, prompts), expected,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(zero_shot, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(few_shot, sufficient.predict_from_gram(params, prompts),
                             rtol=1e-6)


# ---------------------------------------------------------------------------
# The chi-square sampler.


def test_chisquare_matches_distribution():
  dfs = (1, 2, 3, 8, 19)
  df_KxM = jnp.broadcast_to(jnp.array(dfs)[:, None], (len(dfs), NUM_PROMPTS))
  samples = np.asarray(sufficient.sample_chisquare(jax.random.PRNGKey(0), df_KxM), np.float64)
  for df, sample in zip(dfs, samples):
    # A false alarm has probability 1e-4 per df.
    assert stats.kstest(sample, 'chi2', args=(df,)).pvalue > 1e-4, f'df={df}'
    assert abs(sample.mean() - df) < NUM_SE * math.sqrt(2.0 * df / NUM_PROMPTS), f'df={df}'


@pytest.mark.parametrize('group_size', [1, 3, 20_000])
def test_chisquare_exact_for_any_retry_group(group_size):
  # With one group of all entries, each pass retries one rejected variate. With groups of
  # one, each pass retries all of them. Groups of 3 leave a partial last group.
  samples = sufficient._sample_chisquare_flat(
      jax.random.PRNGKey(1), jnp.full((20_000,), 2), jnp.float32, group_size)
  assert stats.kstest(np.asarray(samples, np.float64), 'chi2', args=(2,)).pvalue > 1e-4
  assert abs(float(np.mean(samples)) - 2.0) < NUM_SE * math.sqrt(4.0 / 20_000)


def test_chisquare_zero_df_and_shape():
  df = jnp.array([[0, 1, 5], [0, 12, 0]])
  samples = np.asarray(sufficient.sample_chisquare(jax.random.PRNGKey(0), df))
  assert samples.shape == (2, 3)
  assert samples.dtype == np.float32
  np.testing.assert_array_equal(samples[np.asarray(df) == 0], 0.0)
  assert np.all(samples[np.asarray(df) > 0] > 0)
  empty = sufficient.sample_chisquare(jax.random.PRNGKey(0), jnp.zeros((0,), jnp.int32))
  assert empty.shape == (0,)


# ---------------------------------------------------------------------------
# The Gram sampler's distribution.


def sample_both(d, n, seed):
  """Samples NUM_PROMPTS Gram prompts from each sampler, on the same tasks."""
  theta = sphere_tasks(seed, NUM_PROMPTS, d)
  gram_prompts = sufficient.sample_gram_prompts(jax.random.PRNGKey(seed + 1), theta, n,
                                                x_std=X_STD, noise_std=NOISE_STD)
  tokens = data_lib.sample_prompts(jax.random.PRNGKey(seed + 2), theta, n, x_std=X_STD,
                                   noise_std=NOISE_STD)
  return gram_prompts, sufficient.gram_from_tokens(tokens)


# n = 2 and n = 4 with d = 5 leave some Bartlett columns empty (n - 1 < d + 1).
@pytest.mark.parametrize('d, n', [
    (5, 2), (5, 20),
    pytest.param(1, 1, marks=pytest.mark.slow),
    pytest.param(1, 20, marks=pytest.mark.slow),
    pytest.param(5, 1, marks=pytest.mark.slow),
    pytest.param(5, 4, marks=pytest.mark.slow),
])
def test_gram_sampler_matches_tokens(d, n):
  gram_prompts, from_tokens = sample_both(d, n, seed=10 * d + n)
  summary_gram, labels = summarize_gram(gram_prompts.gram_BxDxD)
  summary_tokens, _ = summarize_gram(from_tokens.gram_BxDxD)
  assert_means_agree(summary_gram, summary_tokens, labels, f'd={d}, n={n}')

  query_labels = [f'z_q[{i}]' for i in range(d + 2)] + ['y_q', 'y_q^2']
  query_gram = np.column_stack([gram_prompts.z_q_BxD, gram_prompts.y_B, gram_prompts.y_B ** 2])
  query_tokens = np.column_stack([from_tokens.z_q_BxD, from_tokens.y_B, from_tokens.y_B ** 2])
  assert_means_agree(summarize(query_gram), summarize(query_tokens), query_labels,
                     f'query, d={d}, n={n}')

  params = random_params(d, d, num_heads=2, init_std=0.2)
  errors_gram = summarize(squared_errors(params, gram_prompts)[:, None])
  errors_tokens = summarize(squared_errors(params, from_tokens)[:, None])
  assert_means_agree(errors_gram, errors_tokens, ['loss of a 2-head model'], f'd={d}, n={n}')
  np.testing.assert_array_equal(gram_prompts.num_context, n)


def near_optimum_params(d, seed):
  """The pretraining optimum plus noise, so that the error is not dominated by a bad model."""
  params = theory.pretrained_optimum(d, 20, noise_std=NOISE_STD, x_std=X_STD)
  noise = random_params(seed, d, init_std=0.05)
  return {name: params[name] + noise[name] for name in params}


def tasks_for(kind, d, key):
  """Returns (theta for the exact risk, theta_Bxd for the sampler) of a task kind."""
  if kind == 'fixed':
    theta = data_lib.sample_sphere(key, (), d)
    return theta, jnp.broadcast_to(theta, (NUM_PROMPTS, d))
  return None, data_lib.sample_sphere(key, (NUM_PROMPTS,), d)


@pytest.mark.parametrize('task', ['fixed', 'sphere'])
@pytest.mark.parametrize('d, n', [
    (1, 1), (5, 20),
    pytest.param(1, 0, marks=pytest.mark.slow),
    pytest.param(1, 20, marks=pytest.mark.slow),
    pytest.param(5, 1, marks=pytest.mark.slow),
    pytest.param(5, 2, marks=pytest.mark.slow),
])
def test_gram_loss_matches_exact_risk(d, n, task):
  params = near_optimum_params(d, 100 + d)
  key_tasks, key_prompts = jax.random.split(jax.random.PRNGKey(20 * d + n))
  theta, theta_Bxd = tasks_for(task, d, key_tasks)
  prompts = sufficient.sample_gram_prompts(key_prompts, theta_Bxd, n, x_std=X_STD,
                                           noise_std=NOISE_STD)
  exact = theory.population_risk_of_params(params, n, noise_std=NOISE_STD, x_std=X_STD,
                                           theta=theta)
  assert_means_agree(summarize(squared_errors(params, prompts)[:, None]), exact_value([exact]),
                     ['loss'], f'd={d}, n={n}, {task} task')


def test_expected_gradient_matches_exact_risk():
  d, n, num_chunks = 5, 20, 50
  params = random_params(30, d, init_std=0.2)
  theta, theta_Bxd = tasks_for('fixed', d, jax.random.PRNGKey(31))
  prompts = sufficient.sample_gram_prompts(jax.random.PRNGKey(32), theta_Bxd, n, x_std=X_STD,
                                           noise_std=NOISE_STD)
  # The gradients of the mean loss over disjoint chunks are i.i.d., so their spread gives
  # the standard error of their mean.
  chunks = jax.tree_util.tree_map(
      lambda a: a.reshape(num_chunks, NUM_PROMPTS // num_chunks, *a.shape[1:]), prompts)
  grads = jax.jit(jax.vmap(jax.grad(losses.few_shot_loss), in_axes=(None, 0)))(params, chunks)
  exact = jax.grad(lambda p: theory.population_risk_of_params(
      p, n, noise_std=NOISE_STD, x_std=X_STD, theta=theta))(params)
  for name in params:
    labels = [f'd/d{name}{index}' for index in np.ndindex(params[name].shape)]
    assert_means_agree(summarize(np.asarray(grads[name]).reshape(num_chunks, -1)),
                       exact_value(np.asarray(exact[name]).ravel()), labels,
                       'expected gradient')


def test_shots_per_prompt():
  d = 5
  n_B = jnp.array([0, 1, 2, 3, 9] * (NUM_PROMPTS // 5))
  theta = sphere_tasks(42, NUM_PROMPTS, d)
  prompts = sufficient.sample_gram_prompts(jax.random.PRNGKey(43), theta, n_B, x_std=X_STD,
                                           noise_std=NOISE_STD)
  np.testing.assert_array_equal(prompts.num_context, n_B)
  np.testing.assert_allclose(prompts.gram_BxDxD[:, 0, 0], n_B, rtol=1e-6)
  np.testing.assert_array_equal(prompts.gram_BxDxD[n_B == 0], 0.0)
  np.testing.assert_array_equal(prompts.z_q_BxD[:, 0], 1.0)
  np.testing.assert_array_equal(prompts.z_q_BxD[:, -1], 0.0)

  # E[G] = n E[z z^T]. For z = (1, x, y): E[x x^T] = s^2 I, E[x y] = s^2 theta and
  # E[y^2] = s^2 |theta|^2 + sigma^2 = s^2 + sigma^2 for a unit theta.
  rows, cols = np.triu_indices(d + 2)
  for n in (1, 2, 3, 9):
    selected = np.asarray(n_B == n)
    theta_rows = np.asarray(theta, np.float64)[selected]
    second_moment = np.zeros((selected.sum(), d + 2, d + 2))
    second_moment[:, 0, 0] = 1.0
    second_moment[:, 1:d + 1, 1:d + 1] = X_STD ** 2 * np.eye(d)
    second_moment[:, 1:d + 1, d + 1] = X_STD ** 2 * theta_rows
    second_moment[:, d + 1, 1:d + 1] = X_STD ** 2 * theta_rows
    second_moment[:, d + 1, d + 1] = X_STD ** 2 + NOISE_STD ** 2
    gram = np.asarray(prompts.gram_BxDxD, np.float64)[selected]
    deviation = (gram - n * second_moment)[:, rows, cols]
    labels = [f'n={n}, G[{r},{c}] - E[G[{r},{c}]]' for r, c in zip(rows, cols)]
    assert_means_agree(summarize(deviation), exact_value(np.zeros(rows.size)), labels,
                       'mean Gram matrix')


# ---------------------------------------------------------------------------
# Transformations and training.


def test_traced_n_and_vmap():
  theta = sphere_tasks(50, SMALL_BATCH, SMALL_D)
  keys = jax.random.split(jax.random.PRNGKey(51), 3)
  batched = jax.jit(jax.vmap(
      lambda k, n: sufficient.sample_gram_prompts(k, theta, n, x_std=X_STD,
                                                  noise_std=NOISE_STD),
      in_axes=(0, None)))(keys, jnp.asarray(SMALL_N))
  assert batched.gram_BxDxD.shape == (3, SMALL_BATCH, SMALL_D + 2, SMALL_D + 2)
  for index in range(3):
    single = sufficient.sample_gram_prompts(keys[index], theta, SMALL_N, x_std=X_STD,
                                            noise_std=NOISE_STD)
    for field in sufficient.GramPrompts._fields:
      np.testing.assert_allclose(getattr(batched, field)[index], getattr(single, field),
                                 rtol=1e-5, atol=1e-5, err_msg=f'{field}, seed {index}')


@pytest.mark.slow
def test_rbg_keys_under_vmap():
  # The rbg batching rule does not reproduce the unbatched draws (jax 0.10.2), so this
  # checks only that the draws are valid and differ between keys.
  theta = sphere_tasks(52, SMALL_BATCH, SMALL_D)
  keys = jax.random.split(jax.random.key(53, impl='rbg'), 2)
  batched = jax.vmap(lambda k: sufficient.sample_gram_prompts(
      k, theta, SMALL_N, x_std=X_STD, noise_std=NOISE_STD))(keys)
  assert np.all(np.isfinite(batched.gram_BxDxD))
  np.testing.assert_allclose(batched.gram_BxDxD[:, :, 0, 0], SMALL_N, rtol=1e-6)
  assert not np.allclose(batched.gram_BxDxD[0], batched.gram_BxDxD[1])


def test_trainer_runs_on_gram_prompts():
  d, n = 3, 6

  def sample_batch(key, step):
    del step
    key_tasks, key_prompts = jax.random.split(key)
    theta = data_lib.sample_sphere(key_tasks, (512,), d)
    return sufficient.sample_gram_prompts(key_prompts, theta, n, x_std=1.0, noise_std=0.3)

  trainer = train_lib.Trainer(losses.make_loss_fn('zsfs', num_steps=60), sample_batch,
                              regimes.make_optimizer('sgd', 0.05))
  keys = jax.random.split(jax.random.PRNGKey(60), 2)
  params = random_params(61, d, init_std=0.05)
  result = train_lib.train(trainer, params, keys, 60, trace_stride=20, log_every=60)
  assert result.loss_trace.shape == (2, 3)
  np.testing.assert_array_equal(result.nonfinite_step, -1)
  assert np.all(result.loss_trace[:, -1] < result.loss_trace[:, 0])


# ---------------------------------------------------------------------------
# Input checks.


def test_sampler_rejects_bad_input():
  theta = sphere_tasks(70, 4, 2)

  def sample(**overrides):
    arguments = dict(theta_Bxd=theta, n=3, x_std=1.0, noise_std=0.1)
    arguments.update(overrides)
    return sufficient.sample_gram_prompts(jax.random.PRNGKey(0), **arguments)

  with pytest.raises(ValueError, match='n must be >= 0'):
    sample(n=-1)
  with pytest.raises(ValueError, match='n must be an integer'):
    sample(n=2.5)
  with pytest.raises(ValueError, match=r'n must be a scalar or have shape \(4,\)'):
    sample(n=jnp.ones((5,), jnp.int32))
  with pytest.raises(ValueError, match='theta_Bxd must have shape'):
    sample(theta_Bxd=theta[0])
  with pytest.raises(ValueError, match='theta_Bxd must have a floating dtype'):
    sample(theta_Bxd=jnp.ones((4, 2), jnp.int32))
  with pytest.raises(ValueError, match='x_std must be finite and >= 0'):
    sample(x_std=-1.0)
  with pytest.raises(ValueError, match='noise_std must be finite and >= 0'):
    sample(noise_std=float('nan'))
  tokens = jnp.ones((10, 6))
  with pytest.raises(ValueError, match=r'tokens_MxD must have shape \(M, D\)'):
    sufficient.sample_gram_prompts_from_dataset(jax.random.PRNGKey(0), tokens[0], 4, 3)
  with pytest.raises(ValueError, match='batch_size must be >= 1, got 0'):
    sufficient.sample_gram_prompts_from_dataset(jax.random.PRNGKey(0), tokens, 0, 3)
  with pytest.raises(ValueError, match='n must be >= 0, got -1'):
    sufficient.sample_gram_prompts_from_dataset(jax.random.PRNGKey(0), tokens, 4, -1)
  with pytest.raises(ValueError, match='df must be >= 0'):
    sufficient.sample_chisquare(jax.random.PRNGKey(0), jnp.array([2, -1]))
  with pytest.raises(ValueError, match='df must be an integer'):
    sufficient.sample_chisquare(jax.random.PRNGKey(0), jnp.array([2.0]))


def test_predict_rejects_bad_input():
  token_batch = token_prompts(71, SMALL_BATCH, SMALL_D, SMALL_N)
  prompts = sufficient.gram_from_tokens(token_batch)
  params = random_params(0, SMALL_D)
  with pytest.raises(ValueError, match='one-layer model, got 2 layers'):
    sufficient.predict_from_gram(random_params(0, SMALL_D, num_layers=2), prompts)
  with pytest.raises(ValueError, match=rf'prompts.z_q_BxD must have shape \({SMALL_BATCH}, 6\)'):
    sufficient.predict_from_gram(random_params(0, SMALL_D + 1), prompts)
  with pytest.raises(ValueError, match=rf'prompts.num_context must have shape \({SMALL_BATCH},\)'):
    sufficient.predict_from_gram(params, prompts._replace(num_context=3))
  with pytest.raises(ValueError, match='prompts must be a GramPrompts'):
    sufficient.predict_from_gram(params, token_batch)
  with pytest.raises(ValueError, match='prompts.z_BxNxD must have shape'):
    sufficient.gram_from_tokens(data_lib.Prompts(jnp.ones((4, 5)), jnp.ones(4)))
