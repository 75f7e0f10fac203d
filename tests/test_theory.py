"""Tests of the closed-form risks and theory-derived parameters in lafit.theory.

The closed form is checked against two computations written here in numpy, independently
of the library: a Monte Carlo simulation of the attention layer on sampled prompts, and a
deterministic quadrature that is exact for the polynomial integrands involved.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lafit import theory


@pytest.fixture(autouse=True, scope="module")
def enable_x64():
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", previous)


def random_kq_value(d, seed, scale=0.3):
  """Return a random (W_KQ, W_V) pair of float64 matrices with i.i.d. normal entries."""
  rng = np.random.default_rng(seed)
  size = d + 2
  return scale * rng.standard_normal((size, size)), scale * rng.standard_normal((size, size))


def unit_vector(d, seed):
  rng = np.random.default_rng(seed)
  vector = rng.standard_normal(d)
  return vector / np.linalg.norm(vector)


def unit_task_at(theta0, rho, seed):
  """Return a unit vector theta with theta.theta0 = rho, for a unit theta0."""
  rng = np.random.default_rng(seed)
  direction = rng.standard_normal(theta0.shape)
  direction -= (direction @ theta0) * theta0
  direction /= np.linalg.norm(direction)
  return rho * theta0 + math.sqrt(1 - rho**2) * direction


# ---------------------------------------------------------------------------
# Independent reference computations in numpy.


def monte_carlo_risk(w_kq, w_v, n, *, noise_std, x_std, theta, num_prompts, seed, chunk=25_000):
  """Return the sample mean of (yhat - y_q)^2 and its standard error.

  Each prompt runs the full layer ``Z + (1/N) (Z W_KQ Z^T)(Z W_V^T)`` on ``N = n + 1``
  tokens and reads the prediction from the last coordinate of the query row. ``theta=None``
  draws a fresh task uniform on the unit sphere for every prompt.
  """
  rng = np.random.default_rng(seed)
  d = w_kq.shape[0] - 2
  num_tokens = n + 1
  squared_errors = []
  for start in range(0, num_prompts, chunk):
    size = min(chunk, num_prompts - start)
    if theta is None:
      tasks = rng.standard_normal((size, d))
      tasks /= np.linalg.norm(tasks, axis=1, keepdims=True)
    else:
      tasks = np.broadcast_to(theta, (size, d))
    x = x_std * rng.standard_normal((size, num_tokens, d))
    y = np.einsum("pjd,pd->pj", x, tasks) + noise_std * rng.standard_normal((size, num_tokens))
    Z = np.concatenate([np.ones((size, num_tokens, 1)), x, y[..., None]], axis=-1)
    Z[:, -1, -1] = 0.0
    attention = Z @ w_kq @ np.swapaxes(Z, 1, 2)
    output = Z + attention @ (Z @ w_v.T) / num_tokens
    squared_errors.append((output[:, -1, -1] - y[:, -1]) ** 2)
  squared_errors = np.concatenate(squared_errors)
  return squared_errors.mean(), squared_errors.std(ddof=1) / math.sqrt(num_prompts)


def sphere_rule(d):
  """Return nodes and weights of a rule that is exact on the unit sphere of R^d up to degree 7."""
  if d == 1:
    return np.array([[1.0], [-1.0]]), np.array([0.5, 0.5])
  angles = 2 * np.pi * np.arange(8) / 8
  if d == 2:
    return np.stack([np.cos(angles), np.sin(angles)], axis=1), np.full(8, 1 / 8)
  if d == 3:
    # The height z = cos(polar angle) is uniform on [-1, 1] for the uniform measure.
    heights, height_weights = np.polynomial.legendre.leggauss(4)
    nodes, weights = [], []
    for z, z_weight in zip(heights, height_weights):
      radius = math.sqrt(1 - z**2)
      for angle in angles:
        nodes.append([radius * math.cos(angle), radius * math.sin(angle), z])
        weights.append(z_weight / 2 / 8)
    return np.array(nodes), np.array(weights)
  raise ValueError(f"no sphere rule for d = {d}")


def gauss_hermite_rule(dimension, std, points):
  """Return a tensor-product rule for N(0, diag(std^2)), exact up to degree 2 * points - 1."""
  nodes_1d, weights_1d = np.polynomial.hermite_e.hermegauss(points)
  weights_1d = weights_1d / weights_1d.sum()
  nodes = np.array(list(itertools.product(nodes_1d, repeat=dimension))) * std
  weights = np.prod(np.array(list(itertools.product(weights_1d, repeat=dimension))), axis=1)
  return nodes, weights


def quadrature_risk(w_kq, w_v, n, *, noise_std, x_std, tasks, task_weights):
  """Return R(n) by quadrature over the query input, one context token and the task.

  Given the query input and the task, the n context terms score_j * value_j are i.i.d.,
  so the prediction has conditional mean (n E[T] + T_q) / (n + 1) and conditional variance
  n Var[T] / (n + 1)^2. E[T] and E[T^2] come from a Gauss-Hermite rule over one context
  token's (x_j, eps_j), and the query input is integrated by another. Both integrands are
  polynomials within the degree each rule integrates exactly.
  """
  d = w_kq.shape[0] - 2
  query_x, query_weights = gauss_hermite_rule(d, x_std, points=4)
  context_std = np.array([x_std] * d + [noise_std])
  context_xi, context_weights = gauss_hermite_rule(d + 1, context_std, points=3)
  query_tokens = np.concatenate(
      [np.ones((len(query_x), 1)), query_x, np.zeros((len(query_x), 1))], axis=1
  )
  value_row = w_v[-1]
  query_terms = np.einsum("qi,ij,qj->q", query_tokens, w_kq, query_tokens) * (
      query_tokens @ value_row
  )

  risk = noise_std**2
  for theta, task_weight in zip(tasks, task_weights):
    context_x = context_xi[:, :d]
    context_y = context_x @ theta + context_xi[:, d]
    context_tokens = np.concatenate(
        [np.ones((len(context_xi), 1)), context_x, context_y[:, None]], axis=1
    )
    terms = (query_tokens @ w_kq @ context_tokens.T) * (context_tokens @ value_row)
    term_mean = terms @ context_weights
    term_variance = (terms**2) @ context_weights - term_mean**2
    prediction_mean = (n * term_mean + query_terms) / (n + 1)
    integrand = (prediction_mean - query_x @ theta) ** 2 + n * term_variance / (n + 1) ** 2
    risk += task_weight * (integrand @ query_weights)
  return risk


# ---------------------------------------------------------------------------
# Closed form against independent computations.

MONTE_CARLO_CASES = [
    # (n, d, noise_std, x_std, task)
    (0, 3, 0.5, 1.0, None),
    (1, 2, 0.3, 1.5, (0.8, -1.1)),
    (5, 3, 0.0, 0.7, None),
    (12, 4, 0.5, 1.0, (0.5, -0.2, 0.9, 0.3)),
]


@pytest.mark.parametrize("n, d, noise_std, x_std, task", MONTE_CARLO_CASES)
def test_population_risk_matches_monte_carlo(n, d, noise_std, x_std, task):
  w_kq, w_v = random_kq_value(d, seed=10 + n)
  theta = None if task is None else np.array(task)
  exact = theory.population_risk(w_kq, w_v, n, noise_std=noise_std, x_std=x_std, theta=theta)

  estimate, standard_error = monte_carlo_risk(
      w_kq,
      w_v,
      n,
      noise_std=noise_std,
      x_std=x_std,
      theta=theta,
      num_prompts=150_000,
      seed=100 + n,
  )

  # Tolerance: 4 standard errors of the Monte Carlo mean.
  assert abs(estimate - float(exact)) < 4 * standard_error


QUADRATURE_CASES = [
    # (n, d, noise_std, x_std, fixed task or None for the sphere)
    (0, 1, 0.4, 1.0, (1.3,)),
    (3, 1, 0.0, 0.8, None),
    (0, 2, 0.3, 1.2, None),
    (1, 2, 0.5, 1.0, (0.6, -0.9)),
    (7, 2, 0.2, 0.9, None),
    (2, 3, 0.3, 1.1, None),
    (20, 3, 0.5, 1.0, (0.2, 0.7, -0.4)),
]


@pytest.mark.parametrize("n, d, noise_std, x_std, task", QUADRATURE_CASES)
def test_population_risk_matches_quadrature(n, d, noise_std, x_std, task):
  w_kq, w_v = random_kq_value(d, seed=20 + n + d)
  if task is None:
    tasks, task_weights = sphere_rule(d)
    theta = None
  else:
    tasks, task_weights = np.array([task]), np.array([1.0])
    theta = np.array(task)

  exact = theory.population_risk(w_kq, w_v, n, noise_std=noise_std, x_std=x_std, theta=theta)
  reference = quadrature_risk(
      w_kq, w_v, n, noise_std=noise_std, x_std=x_std, tasks=tasks, task_weights=task_weights
  )

  assert float(exact) == pytest.approx(reference, rel=1e-10)


def test_sphere_average_matches_task_rule():
  """The sphere average equals the exact rule's weighted sum of fixed-task risks."""
  d, n = 3, 4
  w_kq, w_v = random_kq_value(d, seed=5)
  tasks, task_weights = sphere_rule(d)
  fixed = [
      float(theory.population_risk(w_kq, w_v, n, noise_std=0.3, x_std=1.2, theta=theta))
      for theta in tasks
  ]

  average = theory.population_risk(w_kq, w_v, n, noise_std=0.3, x_std=1.2)

  assert float(average) == pytest.approx(np.dot(task_weights, fixed), rel=1e-12)


# ---------------------------------------------------------------------------
# Stationarity of the derived optima.


def risk_gradient(params, n, *, noise_std, x_std, theta=None):
  def risk(w_kq, w_v):
    return theory.population_risk(w_kq, w_v, n, noise_std=noise_std, x_std=x_std, theta=theta)

  return jax.jit(jax.grad(risk, argnums=(0, 1)))(params["W_KQ"][0, 0], params["W_V"][0, 0])


PRETRAINING_CASES = [
    # (d, noise_std^2, x_std, n_pt)
    (5, 0.1, 1.0, 20),
    (3, 0.5, 2.0, 5),
    (1, 0.0, 1.0, 2),
]


@pytest.mark.parametrize("d, noise_var, x_std, n_pt", PRETRAINING_CASES)
def test_pretrained_optimum_is_stationary(d, noise_var, x_std, n_pt):
  noise_std = math.sqrt(noise_var)
  params = theory.pretrained_optimum(d, n_pt, noise_std=noise_std, x_std=x_std, dtype=jnp.float64)

  grad_kq, grad_v = risk_gradient(params, n_pt, noise_std=noise_std, x_std=x_std)

  assert np.max(np.abs(grad_kq)) < 1e-12
  assert np.max(np.abs(grad_v[-1])) < 1e-12


def test_pretrained_gradient_nonzero_off_optimum():
  """The stationarity check above can fail: 1% off c* the gradient is clearly nonzero."""
  scale = theory.pretrained_scale(5, 20, noise_std=math.sqrt(0.1))
  params = theory.pretrained_optimum(5, 20, noise_std=math.sqrt(0.1), dtype=jnp.float64)
  params["W_KQ"] = params["W_KQ"] * 1.01

  grad_kq, _ = risk_gradient(params, 20, noise_std=math.sqrt(0.1), x_std=1.0)

  assert scale > 0
  assert np.max(np.abs(grad_kq)) > 1e-4


@pytest.mark.parametrize("q, x_std", [(1.0, 1.0), (0.79, 1.0), (0.5, 1.7)])
def test_value_only_zero_shot_is_stationary(q, x_std):
  d = 4
  theta0 = unit_vector(d, seed=1)
  params = theory.value_only_zero_shot(theta0, q=q, w=0.8, x_std=x_std, dtype=jnp.float64)

  _, grad_v = risk_gradient(params, 0, noise_std=0.3, x_std=x_std, theta=theta0)

  assert np.max(np.abs(grad_v[-1])) < 1e-12
  # The label weight multiplies the query's zero label, so it gets no gradient at all.
  assert grad_v[-1, -1] == 0.0


@pytest.mark.parametrize(
    "n_ft, q, x_std, noise_std",
    [(20, 1.0, 1.0, math.sqrt(0.1)), (5, 0.7, 1.3, 0.5), (1, 2.0, 0.8, 0.0)],
)
def test_value_only_few_shot_is_stationary(n_ft, q, x_std, noise_std):
  d = 5
  theta0 = unit_vector(d, seed=2)
  params = theory.value_only_few_shot(
      theta0, n_ft, q=q, noise_std=noise_std, x_std=x_std, dtype=jnp.float64
  )

  _, grad_v = risk_gradient(params, n_ft, noise_std=noise_std, x_std=x_std, theta=theta0)

  assert abs(grad_v[-1, -1]) < 1e-12


# ---------------------------------------------------------------------------
# Closed-form helpers against population_risk of the constructed parameters.

REFERENCE_NOISE_STD = math.sqrt(0.1)


@pytest.mark.parametrize("n", [0, 1, 3, 20, 40])
@pytest.mark.parametrize(
    "d, noise_std, x_std, n_pt", [(5, REFERENCE_NOISE_STD, 1.0, 20), (3, 0.7, 1.4, 6)]
)
def test_pretrained_optimum_risk_closed_form(n, d, noise_std, x_std, n_pt):
  params = theory.pretrained_optimum(d, n_pt, noise_std=noise_std, x_std=x_std, dtype=jnp.float64)
  theta0 = unit_vector(d, seed=3)
  closed_form = theory.pretrained_optimum_risk(n, d, n_pt, noise_std=noise_std, x_std=x_std)

  for theta in (None, theta0, -theta0):
    risk = theory.population_risk_of_params(
        params, n, noise_std=noise_std, x_std=x_std, theta=theta
    )
    assert float(risk) == pytest.approx(closed_form, rel=1e-12)


@pytest.mark.parametrize("n", [0, 1, 4, 20])
@pytest.mark.parametrize("w", [0.3, -1.5, 2.0])
@pytest.mark.parametrize("rho", [1.0, -1.0, 0.4])
def test_zero_shot_family_risk_closed_form(n, w, rho):
  d, noise_std, x_std = 4, 0.4, 1.2
  theta0 = unit_vector(d, seed=4)
  theta = unit_task_at(theta0, rho, seed=5)
  params = theory.zero_shot_full_family(theta0, w, dtype=jnp.float64)

  risk = theory.population_risk_of_params(params, n, noise_std=noise_std, x_std=x_std, theta=theta)
  closed_form = theory.zero_shot_full_family_risk(n, w, rho, noise_std=noise_std, x_std=x_std)

  assert float(risk) == pytest.approx(closed_form, rel=1e-12)


@pytest.mark.parametrize("n", [0, 2, 20])
def test_zero_shot_family_sphere_average(n):
  theta0 = unit_vector(3, seed=6)
  params = theory.zero_shot_full_family(theta0, 0.7, dtype=jnp.float64)

  average = theory.population_risk_of_params(params, n, noise_std=0.5, x_std=0.9)
  closed_form = theory.zero_shot_full_family_risk(n, 0.7, 0.0, noise_std=0.5, x_std=0.9)

  assert float(average) == pytest.approx(closed_form, rel=1e-12)


@pytest.mark.parametrize("n", [0, 1, 5, 20, 40])
@pytest.mark.parametrize("rho", [1.0, -1.0, 0.25])
@pytest.mark.parametrize("q, a, w, x_std", [(0.79, 0.11, 1.0, 1.0), (1.3, -0.4, 0.6, 1.6)])
def test_value_row_risk_closed_form(n, rho, q, a, w, x_std):
  d, noise_std = 5, 0.35
  theta0 = unit_vector(d, seed=7)
  theta = unit_task_at(theta0, rho, seed=8)
  w_kq = np.zeros((d + 2, d + 2))
  w_kq[1 : d + 1, 1 : d + 1] = q * np.eye(d)
  w_v = np.zeros((d + 2, d + 2))
  w_v[-1, 1 : d + 1] = a * theta0
  w_v[-1, -1] = w

  risk = theory.population_risk(w_kq, w_v, n, noise_std=noise_std, x_std=x_std, theta=theta)
  sphere = theory.population_risk(w_kq, w_v, n, noise_std=noise_std, x_std=x_std)
  closed_form = theory.value_row_risk(
      n, q=q, a=a, w=w, rho=rho, d=d, noise_std=noise_std, x_std=x_std
  )
  closed_form_sphere = theory.value_row_risk(
      n, q=q, a=a, w=w, rho=0.0, d=d, noise_std=noise_std, x_std=x_std
  )

  assert float(risk) == pytest.approx(closed_form, rel=1e-12)
  assert float(sphere) == pytest.approx(closed_form_sphere, rel=1e-12)


def test_value_only_constructors_risk():
  d, n_ft, noise_std, x_std = 5, 20, REFERENCE_NOISE_STD, 1.0
  q = theory.pretrained_scale(d, n_ft, noise_std=noise_std, x_std=x_std)
  a = theory.value_only_zero_shot_scale(d, q, x_std=x_std)
  w = theory.value_only_few_shot_weight(n_ft, d, q, a, noise_std=noise_std, x_std=x_std)
  theta0 = unit_vector(d, seed=9)
  zero_shot = theory.value_only_zero_shot(theta0, q=q, x_std=x_std, dtype=jnp.float64)
  few_shot = theory.value_only_few_shot(
      theta0, n_ft, q=q, noise_std=noise_std, x_std=x_std, dtype=jnp.float64
  )

  for n in (0, 1, 10, 20):
    for sign in (1.0, -1.0):
      kwargs = dict(noise_std=noise_std, x_std=x_std, theta=sign * theta0)
      expected_zero_shot = theory.value_row_risk(
          n, q=q, a=a, w=1.0, rho=sign, d=d, noise_std=noise_std, x_std=x_std
      )
      expected_few_shot = theory.value_row_risk(
          n, q=q, a=a, w=w, rho=sign, d=d, noise_std=noise_std, x_std=x_std
      )
      zero_shot_risk = theory.population_risk_of_params(zero_shot, n, **kwargs)
      few_shot_risk = theory.population_risk_of_params(few_shot, n, **kwargs)
      assert float(zero_shot_risk) == pytest.approx(expected_zero_shot, rel=1e-12)
      assert float(few_shot_risk) == pytest.approx(expected_few_shot, rel=1e-12)


def test_value_row_risk_without_theta0_weight():
  for n in (0, 1, 7, 30):
    family = theory.pretrained_family_risk(n, 0.6, 4, noise_std=0.5, x_std=1.3)
    value_row = theory.value_row_risk(
        n, q=1.5, a=0.0, w=0.4, rho=-1.0, d=4, noise_std=0.5, x_std=1.3
    )
    assert value_row == pytest.approx(family, rel=1e-12)


# ---------------------------------------------------------------------------
# Reference numbers at d = 5, sigma^2 = 0.1, s = 1, n_pt = 20.


def pretrained_family_risk_by_hand(n, c, d, noise_var, x_var):
  return (
      noise_var
      + x_var * (1 - n * x_var * c / (n + 1)) ** 2
      + n * c**2 * x_var**2 * ((d + 1) * x_var + d * noise_var) / (n + 1) ** 2
  )


def test_pretrained_reference_numbers():
  d, m, noise_std = 5, 20, REFERENCE_NOISE_STD
  scale = theory.pretrained_scale(d, m, noise_std=noise_std)

  assert scale == pytest.approx(21 / 26.5, rel=1e-14)
  assert scale == pytest.approx(0.792453, abs=5e-7)

  # R(m; c*) = sigma^2 + s^2 K / (m s^2 + K) with K = (d + 1) s^2 + d sigma^2 = 6.5.
  risk_at_m = theory.pretrained_optimum_risk(m, d, m, noise_std=noise_std)
  assert risk_at_m == pytest.approx(0.1 + 6.5 / 26.5, rel=1e-14)
  assert risk_at_m == pytest.approx(0.345283, abs=5e-7)

  for n, rounded in [(0, 1.1), (1, 1.485), (2, 1.230), (3, 1.030)]:
    risk = theory.pretrained_optimum_risk(n, d, m, noise_std=noise_std)
    by_hand = pretrained_family_risk_by_hand(n, 21 / 26.5, d, 0.1, 1.0)
    assert risk == pytest.approx(by_hand, rel=1e-14)
    assert risk == pytest.approx(rounded, abs=5e-4)

  # The pretrained model is above the zero predictor's error sigma^2 + s^2 at n = 1, 2
  # and below it from n = 3 on.
  assert theory.pretrained_optimum_risk(2, d, m, noise_std=noise_std) > 1.1
  assert theory.pretrained_optimum_risk(3, d, m, noise_std=noise_std) < 1.1

  params = theory.pretrained_optimum(d, m, noise_std=noise_std, dtype=jnp.float64)
  exact = theory.population_risk_of_params(params, m, noise_std=noise_std)
  assert float(exact) == pytest.approx(0.1 + 6.5 / 26.5, rel=1e-13)


def test_noiseless_scale_risk_at_m():
  """c = m / (m + 1 + d), optimal for a 1/m normalization without noise, loses at n = m."""
  d, m, noise_std = 5, 20, REFERENCE_NOISE_STD
  other_scale = m / (m + 1 + d)

  other_risk = theory.pretrained_family_risk(m, other_scale, d, noise_std=noise_std)
  optimum_risk = theory.pretrained_optimum_risk(m, d, m, noise_std=noise_std)

  assert other_risk == pytest.approx(0.345931, abs=5e-7)
  assert other_risk - optimum_risk == pytest.approx(6.48e-4, abs=5e-7)


def test_value_only_zero_shot_reference_risk():
  d, noise_std = 5, REFERENCE_NOISE_STD
  q = theory.pretrained_scale(d, 20, noise_std=noise_std)
  theta0 = unit_vector(d, seed=11)
  params = theory.value_only_zero_shot(theta0, q=q, dtype=jnp.float64)

  on_target = theory.population_risk_of_params(params, 0, noise_std=noise_std, theta=theta0)
  on_opposite = theory.population_risk_of_params(params, 0, noise_std=noise_std, theta=-theta0)

  assert theory.value_only_zero_shot_scale(d, 1.0) == pytest.approx(1 / 9, rel=1e-15)
  assert float(on_target) == pytest.approx(0.1 + 2 / (d + 4), rel=1e-12)
  assert float(on_opposite) == pytest.approx(0.1 + (4 * d + 10) / (d + 4), rel=1e-12)
  assert float(on_opposite) == pytest.approx(3.4333, abs=5e-5)


def test_value_only_few_shot_reference_weight():
  d, noise_var = 5, 0.1
  a = 1 / (d + 4)
  weight = theory.value_only_few_shot_weight(20, d, 1.0, a, noise_std=math.sqrt(noise_var))

  assert weight == pytest.approx(156 / 238.5, rel=1e-14)
  for n in (0, 1, 7, 20, 40):
    # With q = 1, s = 1 and a = 1/(d + 4) the weight reduces to this rational form.
    by_hand = ((n + 1) - (n + 3 + 2 * d) / (d + 4)) / (n + 1 + d + d * noise_var)
    assert theory.value_only_few_shot_weight(
        n, d, 1.0, a, noise_std=math.sqrt(noise_var)
    ) == pytest.approx(by_hand, rel=1e-13)


def test_value_only_few_shot_weight_general_x_std():
  d, noise_var, x_std = 4, 0.3, 1.7
  a = theory.value_only_zero_shot_scale(d, 1.0, x_std=x_std)
  for n in (0, 3, 20):
    by_hand = (n * (d + 3) - d + 1) / ((d + 4) * ((n + d + 1) * x_std**2 + d * noise_var))
    weight = theory.value_only_few_shot_weight(
        n, d, 1.0, a, noise_std=math.sqrt(noise_var), x_std=x_std
    )
    assert weight == pytest.approx(by_hand, rel=1e-13)


def test_zero_shot_family_reference_numbers():
  noise_std = REFERENCE_NOISE_STD
  for w in (0.3, 1.0, -2.0):
    on_target = theory.zero_shot_full_family_risk(0, w, 1.0, noise_std=noise_std)
    on_opposite = theory.zero_shot_full_family_risk(0, w, -1.0, noise_std=noise_std)
    assert on_target == pytest.approx(0.1, rel=1e-14)
    assert on_opposite == pytest.approx(4.1, rel=1e-14)
  risk = theory.zero_shot_full_family_risk(1, 0.3, 1.0, noise_std=noise_std)
  assert risk == pytest.approx(5.32, abs=5e-3)
  # As n grows the prediction tends to 0 and the risk to the zero predictor's sigma^2 + s^2.
  many_shots = theory.zero_shot_full_family_risk(10**6, 0.3, -1.0, noise_std=noise_std)
  assert many_shots == pytest.approx(1.1, abs=1e-4)


# ---------------------------------------------------------------------------
# Symmetries and parameterizations.


@pytest.mark.parametrize("scale", [2.5, -0.7])
def test_risk_invariant_under_value_kq_rescaling(scale):
  w_kq, w_v = random_kq_value(3, seed=12)
  theta = np.array([0.3, -1.0, 0.4])
  for task in (None, theta):
    risk = theory.population_risk(w_kq, w_v, 6, noise_std=0.4, theta=task)
    rescaled = theory.population_risk(w_kq / scale, scale * w_v, 6, noise_std=0.4, theta=task)
    assert float(rescaled) == pytest.approx(float(risk), rel=1e-12)


def test_separate_params_match_merged():
  d = 3
  rng = np.random.default_rng(13)
  shape = (1, 1, d + 2, d + 2)
  w_q, w_k, w_v = (0.4 * rng.standard_normal(shape) for _ in range(3))
  separate = {"W_Q": w_q, "W_K": w_k, "W_V": w_v}
  merged = {"W_KQ": np.swapaxes(w_q, -1, -2) @ w_k, "W_V": w_v}

  np.testing.assert_allclose(theory.merged_kq(w_q, w_k), merged["W_KQ"], rtol=1e-14)
  for n in (0, 5):
    separate_risk = theory.population_risk_of_params(separate, n, noise_std=0.3)
    merged_risk = theory.population_risk_of_params(merged, n, noise_std=0.3)
    assert float(separate_risk) == pytest.approx(float(merged_risk), rel=1e-13)


def test_unused_entries_do_not_change_risk():
  """Only rows 0..d of W_KQ and the last row of W_V enter the prediction."""
  d = 2
  w_kq, w_v = random_kq_value(d, seed=14)
  changed_kq, changed_v = w_kq.copy(), w_v.copy()
  changed_kq[-1] += 5.0
  changed_v[:-1] -= 3.0

  risk = theory.population_risk(w_kq, w_v, 4, noise_std=0.2)
  changed = theory.population_risk(changed_kq, changed_v, 4, noise_std=0.2)

  assert float(changed) == float(risk)


# ---------------------------------------------------------------------------
# Transformations and dtypes.


def test_vmap_jit_over_shots():
  w_kq, w_v = random_kq_value(4, seed=15)
  theta = np.array([0.2, -0.5, 1.0, 0.1])
  shots = jnp.arange(41)

  for task in (None, theta):

    def risk(n, task=task):
      return theory.population_risk(w_kq, w_v, n, noise_std=0.3, x_std=1.1, theta=task)

    batched = jax.jit(jax.vmap(risk))(shots)
    loop = np.array([float(risk(n)) for n in range(41)])
    np.testing.assert_allclose(np.asarray(batched), loop, rtol=1e-13)


def test_vmap_of_closed_forms_over_shots():
  shots = jnp.arange(41)

  def pretrained(n):
    return theory.pretrained_optimum_risk(n, 5, 20, noise_std=REFERENCE_NOISE_STD)

  def value_row(n):
    return theory.value_row_risk(
        n, q=0.8, a=0.1, w=0.7, rho=-1.0, d=5, noise_std=REFERENCE_NOISE_STD
    )

  for closed_form in (pretrained, value_row):
    batched = jax.jit(jax.vmap(closed_form))(shots)
    loop = np.array([closed_form(n) for n in range(41)])
    np.testing.assert_allclose(np.asarray(batched), loop, rtol=1e-13)


def test_jit_over_params():
  w_kq, w_v = random_kq_value(2, seed=16)
  risk = jax.jit(lambda q, v: theory.population_risk(q, v, 3, noise_std=0.2))

  assert float(risk(w_kq, w_v)) == pytest.approx(
      float(theory.population_risk(w_kq, w_v, 3, noise_std=0.2)), rel=1e-14
  )


def test_risk_dtype_follows_inputs():
  w_kq, w_v = random_kq_value(2, seed=17)
  risk32 = theory.population_risk(w_kq.astype(np.float32), w_v.astype(np.float32), 2, noise_std=0.1)
  risk64 = theory.population_risk(w_kq, w_v, 2, noise_std=0.1)

  assert risk32.dtype == jnp.float32
  assert risk64.dtype == jnp.float64
  assert float(risk32) == pytest.approx(float(risk64), rel=1e-5)


def test_constructors_default_to_float32():
  theta0 = unit_vector(3, seed=18)
  constructed = [
      theory.pretrained_optimum(3, 10, noise_std=0.1),
      theory.zero_shot_full_family(theta0, 0.5),
      theory.value_only_zero_shot(theta0, q=0.8),
      theory.value_only_few_shot(theta0, 10, q=0.8, noise_std=0.1),
  ]
  for params in constructed:
    assert set(params) == {"W_KQ", "W_V"}
    for array in params.values():
      assert array.shape == (1, 1, 5, 5)
      assert array.dtype == jnp.float32


def test_zero_shot_family_layout():
  theta0 = unit_vector(3, seed=19)
  params = theory.zero_shot_full_family(theta0, 0.5, dtype=jnp.float64)
  w_kq, w_v = np.asarray(params["W_KQ"][0, 0]), np.asarray(params["W_V"][0, 0])

  expected_kq = np.zeros((5, 5))
  expected_kq[0, 0] = 2.0
  expected_v = np.zeros((5, 5))
  expected_v[-1, 1:4] = 0.5 * theta0
  expected_v[-1, -1] = 1.0
  np.testing.assert_allclose(w_kq, expected_kq, rtol=1e-15)
  np.testing.assert_allclose(w_v, expected_v, rtol=1e-15)


# ---------------------------------------------------------------------------
# Invalid input.

VALID_KQ = np.zeros((5, 5))
TOO_SMALL = np.zeros((2, 2))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: theory.population_risk(np.zeros((5, 4)), VALID_KQ, 1, noise_std=0.1), "w_kq"),
        (lambda: theory.population_risk(TOO_SMALL, TOO_SMALL, 1, noise_std=0.1), "w_kq"),
        (lambda: theory.population_risk(VALID_KQ, np.zeros((6, 6)), 1, noise_std=0.1), "w_v"),
        (
            lambda: theory.population_risk(VALID_KQ, VALID_KQ, 1, noise_std=0.1, theta=np.ones(4)),
            r"theta must have shape \(3,\)",
        ),
        (lambda: theory.population_risk(VALID_KQ, VALID_KQ, -1, noise_std=0.1), "n must"),
        (lambda: theory.population_risk(VALID_KQ, VALID_KQ, 1.5, noise_std=0.1), "n must"),
        (lambda: theory.population_risk(VALID_KQ, VALID_KQ, np.arange(3), noise_std=0.1), "vmap"),
        (lambda: theory.population_risk(VALID_KQ, VALID_KQ, 1, noise_std=-0.1), "noise_std"),
        (lambda: theory.population_risk(VALID_KQ, VALID_KQ, 1, noise_std=0.1, x_std=0.0), "x_std"),
        (lambda: theory.merged_kq(np.zeros((5, 5)), np.zeros((4, 4))), "w_k"),
        (lambda: theory.pretrained_scale(0, 20, noise_std=0.1), "d must"),
        (lambda: theory.pretrained_optimum(5, -2, noise_std=0.1), "n_pt"),
        (lambda: theory.zero_shot_full_family(np.ones((2, 3)), 1.0), "theta0"),
        (lambda: theory.zero_shot_full_family(np.ones(3), 0.0), "w must"),
        (lambda: theory.value_only_zero_shot_scale(3, 0.0), "q must"),
    ],
)
def test_invalid_arguments_raise(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def test_params_several_layers_or_heads():
  for num_layers, num_heads in [(2, 1), (1, 2)]:
    shape = (num_layers, num_heads, 5, 5)
    params = {"W_KQ": np.zeros(shape), "W_V": np.zeros(shape)}
    with pytest.raises(ValueError, match=f"L = {num_layers} and H = {num_heads}.*Monte Carlo"):
      theory.population_risk_of_params(params, 1, noise_std=0.1)


def test_params_invalid_keys_or_shapes():
  merged = {"W_KQ": np.zeros((1, 1, 5, 5)), "W_V": np.zeros((1, 1, 5, 5))}
  with pytest.raises(ValueError, match="keys"):
    theory.population_risk_of_params({**merged, "W_K": merged["W_V"]}, 1, noise_std=0.1)
  with pytest.raises(ValueError, match="keys"):
    theory.population_risk_of_params({"W_V": merged["W_V"]}, 1, noise_std=0.1)
  with pytest.raises(ValueError, match=r"params\['W_KQ'\]"):
    wrong_size = {**merged, "W_KQ": np.zeros((1, 1, 6, 6))}
    theory.population_risk_of_params(wrong_size, 1, noise_std=0.1)
  with pytest.raises(ValueError, match=r"must have shape \(L, H, D, D\), got \(5, 5\)"):
    no_layer_axes = {"W_KQ": np.zeros((5, 5)), "W_V": np.zeros((5, 5))}
    theory.population_risk_of_params(no_layer_axes, 1, noise_std=0.1)
