"""Exact test errors and theory-derived parameters of one-layer linear attention.

The model and data follow Lee, Sohn and Lee, "Fine-Tuning Without Forgetting In-Context
Learning: A Theoretical Analysis of Linear Attention Models", 2026, arXiv 2602.23197.
A token is ``z = (1, x, y)`` in R^D with ``D = d + 2``: index 0 is the constant, indices
``1..d`` are the input ``x`` and index ``d + 1`` is the label ``y``. A prompt with ``n``
shots has ``n + 1`` tokens, and the last one is the query, whose label entry is 0. With the
merged key-query matrix ``Q = W_KQ`` and the value row ``v = W_V[-1, :]``, one layer and
one head predict

    yhat = (1 / (n + 1)) * sum_{j = 1}^{n + 1} (z_q^T Q z_j) (v^T z_j),

so the query attends to itself. Inputs are ``x ~ N(0, s^2 I_d)`` with ``s = x_std``, and
labels are ``y = theta.x + eps`` with ``eps ~ N(0, sigma^2)`` and ``sigma = noise_std``. The
test error ``R(n) = E[(yhat - y_q)^2]`` uses the noisy query label, so ``R(n) >= sigma^2``.

The module provides:

- ``population_risk`` and ``population_risk_of_params``: the exact ``R(n)`` of any
  one-layer, one-head model, for a fixed task or averaged over tasks uniform on the unit
  sphere. No sampling is involved.
- ``merged_kq``: the merged matrix ``W_Q^T W_K`` of separate key and query matrices.
- Constructors of the optima derived in closed form, which return merged parameters of
  shape ``(1, 1, D, D)``, and the closed-form risks of their families. They cover the
  pretraining optimum ``c* I`` and the family of zero-shot minimizers with uniform
  attention. They also cover the value-row solutions ``a*`` for the zero-shot loss and
  ``w*(n)`` for the zero-shot plus n-shot loss.

All functions are pure JAX, and the risks work under ``jit``, ``vmap`` (over ``n``, for
example) and ``grad``. Arguments are checked in Python, before tracing, and invalid ones
raise ``ValueError``. Values that are
traced cannot be checked, so a traced ``n`` must be a non-negative integer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "merged_kq",
    "population_risk",
    "population_risk_of_params",
    "pretrained_family_risk",
    "pretrained_optimum",
    "pretrained_optimum_risk",
    "pretrained_scale",
    "value_only_few_shot",
    "value_only_few_shot_weight",
    "value_only_zero_shot",
    "value_only_zero_shot_scale",
    "value_row_risk",
    "zero_shot_full_family",
    "zero_shot_full_family_risk",
]

_MERGED_KEYS = frozenset({"W_KQ", "W_V"})
_SEPARATE_KEYS = frozenset({"W_K", "W_Q", "W_V"})


# ---------------------------------------------------------------------------
# Argument checks. They run in Python, so they see shapes always and values
# only when the value is concrete (not a tracer).


def _is_concrete(value) -> bool:
  return not isinstance(value, jax.core.Tracer)


def _check_scalar(name: str, value, accepts, requirement: str) -> None:
  """Raises unless `value` is a scalar and, when concrete, finite and `accepts` it."""
  if jnp.ndim(value) != 0:
    raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}")
  if _is_concrete(value):
    number = float(np.asarray(value))
    if not (math.isfinite(number) and accepts(number)):
      raise ValueError(f"{name} must be finite and {requirement}, got {number}")


def _check_nonnegative(name: str, value) -> None:
  _check_scalar(name, value, lambda number: number >= 0.0, ">= 0")


def _check_positive(name: str, value) -> None:
  _check_scalar(name, value, lambda number: number > 0.0, "> 0")


def _check_nonzero(name: str, value) -> None:
  _check_scalar(name, value, lambda number: number != 0.0, "nonzero")


def _check_shots(name: str, n) -> None:
  if jnp.ndim(n) != 0:
    raise ValueError(
        f"{name} must be a scalar number of shots, got shape {jnp.shape(n)}. "
        f"Use jax.vmap to evaluate several values"
    )
  if _is_concrete(n):
    number = float(np.asarray(n))
    if not (number >= 0.0 and number == math.floor(number)):
      raise ValueError(f"{name} must be a non-negative integer number of shots, got {number}")


def _check_feature_dim(name: str, d) -> None:
  if not (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1):
    raise ValueError(f"{name} must be a Python int >= 1 (the feature dimension), got {d!r}")


def _check_task_vector(name: str, theta) -> int:
  """Check that ``theta`` is a vector and return its length, the feature dimension d."""
  shape = jnp.shape(theta)
  if len(shape) != 1 or shape[0] < 1:
    raise ValueError(f"{name} must be a vector of shape (d,) with d >= 1, got shape {shape}")
  return shape[0]


def _floating_dtype(*arrays):
  dtype = jnp.result_type(*arrays)
  if not jnp.issubdtype(dtype, jnp.floating):
    dtype = jnp.result_type(float)
  return dtype


# ---------------------------------------------------------------------------
# Polynomials of degree <= 2 in the task vector theta, and their expectations.


class _ThetaQuadratic(NamedTuple):
  """Polynomials ``c + b.theta + theta^T M theta``, batched over leading axes.

  ``c`` has shape ``batch``, ``b`` has shape ``batch + (d,)`` and ``M`` has shape
  ``batch + (d, d)``.
  """

  c: jax.Array
  b: jax.Array
  M: jax.Array

  def scale(self, factor) -> _ThetaQuadratic:
    return _ThetaQuadratic(factor * self.c, factor * self.b, factor * self.M)

  def plus(self, other: _ThetaQuadratic) -> _ThetaQuadratic:
    return _ThetaQuadratic(self.c + other.c, self.b + other.b, self.M + other.M)

  def plus_constant(self, constant) -> _ThetaQuadratic:
    return _ThetaQuadratic(self.c + constant, self.b, self.M)


def _affine_dot(u0, U, w0, W) -> _ThetaQuadratic:
  """Expand ``(u0 + U theta).(w0 + W theta)`` as a quadratic in theta.

  ``u0`` and ``w0`` have shape ``batch + (k,)``, ``U`` and ``W`` shape ``batch + (k, d)``.
  """
  c = jnp.sum(u0 * w0, axis=-1)
  b = (w0[..., None, :] @ U)[..., 0, :] + (u0[..., None, :] @ W)[..., 0, :]
  M = jnp.swapaxes(U, -1, -2) @ W
  return _ThetaQuadratic(c, b, M)


class _FixedTask:
  """Expectations over a single task vector: evaluation at ``theta``."""

  def __init__(self, theta):
    self.theta = theta

  def mean(self, p: _ThetaQuadratic):
    theta = self.theta
    return p.c + p.b @ theta + (p.M @ theta) @ theta

  def mean_product(self, p1: _ThetaQuadratic, p2: _ThetaQuadratic):
    return self.mean(p1) * self.mean(p2)


class _SphereTask:
  """Expectations over theta uniform on the unit sphere of R^d.

  The moments used are ``E[theta theta^T] = I/d``, ``E[theta_i theta_j theta_k theta_l] =
  (d_ij d_kl + d_ik d_jl + d_il d_jk) / (d (d + 2))`` and zero for odd orders.
  """

  def __init__(self, d: int):
    self.d = d

  def mean(self, p: _ThetaQuadratic):
    return p.c + jnp.trace(p.M, axis1=-2, axis2=-1) / self.d

  def mean_product(self, p1: _ThetaQuadratic, p2: _ThetaQuadratic):
    d = self.d
    trace1 = jnp.trace(p1.M, axis1=-2, axis2=-1)
    trace2 = jnp.trace(p2.M, axis1=-2, axis2=-1)
    sym1 = (p1.M + jnp.swapaxes(p1.M, -1, -2)) / 2
    sym2 = (p2.M + jnp.swapaxes(p2.M, -1, -2)) / 2
    trace_of_product = jnp.sum(sym1 * sym2, axis=(-2, -1))
    return (
        p1.c * p2.c
        + (p1.c * trace2 + p2.c * trace1) / d
        + jnp.sum(p1.b * p2.b, axis=-1) / d
        + (trace1 * trace2 + 2 * trace_of_product) / (d * (d + 2))
    )


# ---------------------------------------------------------------------------
# Gaussian moments of x ~ N(0, s^2 I) by Isserlis' theorem. A, H are symmetric.


def _quartic_moment(A, s2):
  """``E[(x^T A x)^2]``."""
  return s2**2 * (jnp.trace(A) ** 2 + 2 * jnp.sum(A * A))


def _mixed_quartic_moment(a, u, H, s2):
  """``E[(a.x)(u.x)(x^T H x)]``."""
  return s2**2 * ((a @ u) * jnp.trace(H) + 2 * a @ H @ u)


def _sextic_moment(H, u, s2):
  """``E[(x^T H x)^2 (u.x)^2]``."""
  trace_H = jnp.trace(H)
  Hu = H @ u
  return s2**3 * (
      trace_H**2 * (u @ u) + 4 * trace_H * (u @ Hu) + 2 * (u @ u) * jnp.sum(H * H) + 8 * (Hu @ Hu)
  )


# ---------------------------------------------------------------------------
# Exact population risk.


class _Blocks(NamedTuple):
  """Blocks of the value row ``v = [v0, vx, vy]`` and of rows 0..d of ``Q``."""

  v0: jax.Array
  vx: jax.Array
  vy: jax.Array
  q00: jax.Array
  q0x: jax.Array
  q0y: jax.Array
  qx0: jax.Array
  Qxx: jax.Array
  qxy: jax.Array


def _split_blocks(Q, V, d: int) -> _Blocks:
  v = V[-1]
  return _Blocks(
      v0=v[0],
      vx=v[1 : d + 1],
      vy=v[d + 1],
      q00=Q[0, 0],
      q0x=Q[0, 1 : d + 1],
      q0y=Q[0, d + 1],
      qx0=Q[1 : d + 1, 0],
      Qxx=Q[1 : d + 1, 1 : d + 1],
      qxy=Q[1 : d + 1, d + 1],
  )


def _risk(blocks: _Blocks, n, noise_var, s2, task, d: int):
  """Return ``R(n)`` given the expectation operator ``task`` over theta.

  Given the query input x and theta, the n context terms ``score_j * value_j`` are
  i.i.d. products of two jointly Gaussian scalars. Their mean is ``mu = alpha v0 + s_ab``
  and their variance is ``tau2`` (Isserlis). With the query's own term ``T_q``,

      R(n) = sigma^2 + E[(n mu + T_q - (n + 1) theta.x)^2] / (n + 1)^2
                     + n E[tau2] / (n + 1)^2.

  The first expectation is taken of a cubic in x and the second of a quadratic, by
  Gaussian moments up to sixth order. Every theta-dependent piece is a polynomial of
  degree <= 2 in theta, and only products of two of them occur.
  """
  v0, vx, vy, q00, q0x, q0y, qx0, Qxx, qxy = blocks
  eye = jnp.eye(d, dtype=vx.dtype)

  # Affine functions of theta: the value weight on x_j, W = vx + vy theta; the key-query
  # weight on x_j from the constant, q0x + q0y theta; and row i of Qxx + qxy theta^T,
  # which is the weight on x_j from the query's x_i.
  W = (vx, vy * eye)
  const_key = (q0x, q0y * eye)
  input_key_rows = (Qxx, qxy[:, None, None] * eye)

  # Covariances of (score_j, value_j): s_bb does not depend on x, and
  # s_ab = s_ab0 + s_ab1.x splits by degree in x.
  s_bb = _affine_dot(*W, *W).scale(s2).plus_constant(noise_var * vy**2)
  s_ab0 = _affine_dot(*const_key, *W).scale(s2).plus_constant(noise_var * vy * q0y)
  s_ab1 = _affine_dot(*input_key_rows, *W).scale(s2).plus_constant(noise_var * vy * qxy)

  # E_x[s_aa] = s^2 (|q0x + q0y theta|^2 + s^2 ||Qxx + qxy theta^T||_F^2)
  #             + sigma^2 (q0y^2 + s^2 |qxy|^2)
  key_rows_norm = _affine_dot(*input_key_rows, *input_key_rows)
  key_rows_norm = _ThetaQuadratic(*(jnp.sum(part, axis=0) for part in key_rows_norm))
  mean_s_aa = (
      _affine_dot(*const_key, *const_key)
      .plus(key_rows_norm.scale(s2))
      .scale(s2)
      .plus_constant(noise_var * (q0y**2 + s2 * (qxy @ qxy)))
  )

  # n mu + T_q - (n + 1) theta.x = F0 + F1.x + x^T F2 x + (x^T H x)(u.x).
  H = (Qxx + Qxx.T) / 2
  u = vx
  h1 = qx0 + q0x
  F0 = s_ab0.scale(n).plus_constant((n + 1) * q00 * v0)
  F1 = _ThetaQuadratic(
      c=(n + 1) * v0 * qx0 + v0 * q0x + q00 * vx + n * s_ab1.c,
      b=n * s_ab1.b - (n + 1) * eye,
      M=n * s_ab1.M,
  )
  F2 = v0 * H + (jnp.outer(h1, u) + jnp.outer(u, h1)) / 2

  mean_F1 = task.mean(F1)
  mean_error_square = (
      task.mean_product(F0, F0)
      + 2 * s2 * jnp.trace(F2) * task.mean(F0)
      + s2 * jnp.sum(task.mean_product(F1, F1))
      + _quartic_moment(F2, s2)
      + 2 * _mixed_quartic_moment(mean_F1, u, H, s2)
      + _sextic_moment(H, u, s2)
  )

  # E[tau2] with tau2 = alpha^2 s_bb + v0^2 s_aa + 2 alpha v0 s_ab + s_aa s_bb + s_ab^2
  # and alpha = q00 + qx0.x.
  mean_alpha_square = q00**2 + s2 * (qx0 @ qx0)
  mean_alpha_s_ab = q00 * task.mean(s_ab0) + s2 * (qx0 @ task.mean(s_ab1))
  mean_s_ab_square = task.mean_product(s_ab0, s_ab0) + s2 * jnp.sum(task.mean_product(s_ab1, s_ab1))
  mean_context_variance = (
      mean_alpha_square * task.mean(s_bb)
      + v0**2 * task.mean(mean_s_aa)
      + 2 * v0 * mean_alpha_s_ab
      + task.mean_product(mean_s_aa, s_bb)
      + mean_s_ab_square
  )

  return noise_var + (mean_error_square + n * mean_context_variance) / (n + 1) ** 2


def population_risk(w_kq, w_v, n, *, noise_std, x_std=1.0, theta=None):
  """Compute the exact test error ``R(n) = E[(yhat - y_q)^2]`` of a one-layer, one-head model.

  Args:
    w_kq: merged key-query matrix ``W_KQ`` of shape ``(D, D)``, ``D = d + 2``. Only rows
      ``0..d`` enter the prediction, because row ``d + 1`` multiplies the query's zero label.
    w_v: value matrix ``W_V`` of shape ``(D, D)``. Only its last row enters the prediction.
    n: number of shots (context tokens before the query), a non-negative integer or a
      scalar array, so that the function can be vmapped over it.
    noise_std: label noise standard deviation ``sigma``.
    x_std: input standard deviation ``s``.
    theta: task vector of shape ``(d,)``, not necessarily of unit norm. ``None`` averages
      over tasks uniform on the unit sphere of R^d.

  Returns:
    A scalar with the floating dtype of ``w_kq``, ``w_v`` and ``theta``. The result is a
    closed form, exact up to floating-point rounding.

  Raises:
    ValueError: if a shape is invalid, or ``n``, ``noise_std`` or ``x_std`` has an
      invalid concrete value.
  """
  shape = jnp.shape(w_kq)
  if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 3:
    raise ValueError(
        f"w_kq must be a square matrix of shape (D, D) with D = d + 2 >= 3, got shape {shape}"
    )
  if jnp.shape(w_v) != shape:
    raise ValueError(f"w_v must have the shape of w_kq, {shape}, got shape {jnp.shape(w_v)}")
  d = shape[0] - 2
  if theta is not None and jnp.shape(theta) != (d,):
    raise ValueError(
        f"theta must have shape ({d},) to match w_kq of shape {shape}, got shape "
        f"{jnp.shape(theta)}. Pass theta=None to average over tasks on the unit sphere"
    )
  _check_shots("n", n)
  _check_nonnegative("noise_std", noise_std)
  _check_positive("x_std", x_std)

  arrays = (w_kq, w_v) if theta is None else (w_kq, w_v, theta)
  dtype = _floating_dtype(*arrays)
  Q = jnp.asarray(w_kq, dtype)
  V = jnp.asarray(w_v, dtype)
  n = jnp.asarray(n).astype(dtype)
  noise_var = jnp.square(jnp.asarray(noise_std, dtype))
  s2 = jnp.square(jnp.asarray(x_std, dtype))
  theta = None if theta is None else jnp.asarray(theta, dtype)
  return _compiled_risk(Q, V, n, noise_var, s2, theta)


@jax.jit
def _compiled_risk(Q, V, n, noise_var, s2, theta):
  # Compiling the whole formula makes an eager call one dispatch instead of many small
  # operations. An outer jit, vmap or grad traces through it as usual.
  d = Q.shape[0] - 2
  task = _SphereTask(d) if theta is None else _FixedTask(theta)
  return _risk(_split_blocks(Q, V, d), n, noise_var, s2, task, d)


def merged_kq(w_q, w_k):
  """Return the merged key-query matrix ``W_Q^T W_K``, batched over leading axes.

  The attention score ``(W_Q z_i)^T (W_K z_j)`` equals ``z_i^T (W_Q^T W_K) z_j``.
  """
  shape_q, shape_k = jnp.shape(w_q), jnp.shape(w_k)
  if len(shape_q) < 2 or shape_q[-1] != shape_q[-2]:
    raise ValueError(f"w_q must have square matrices on its last two axes, got shape {shape_q}")
  if shape_k != shape_q:
    raise ValueError(f"w_k must have the shape of w_q, {shape_q}, got shape {shape_k}")
  return jnp.swapaxes(w_q, -1, -2) @ w_k


def population_risk_of_params(params, n, *, noise_std, x_std=1.0, theta=None):
  """Compute the exact test error ``R(n)`` of a parameter PyTree with one layer and one head.

  ``params`` is merged, ``{'W_KQ', 'W_V'}``, or separate, ``{'W_K', 'W_Q', 'W_V'}``, with
  arrays of shape ``(L, H, D, D)``. Separate parameters are merged with ``merged_kq``.
  The other arguments are those of ``population_risk``.

  Raises:
    ValueError: if the keys or shapes are invalid, or ``L`` or ``H`` is not 1. A model with
      several heads or layers is not a single (value, key-query) pair, so it has no closed
      form here and its risk must be estimated by Monte Carlo.
  """
  if not isinstance(params, Mapping):
    raise ValueError(f"params must be a dict of arrays, got {type(params).__name__}")
  keys = frozenset(params)
  if keys not in (_MERGED_KEYS, _SEPARATE_KEYS):
    raise ValueError(
        f"params must have the keys {sorted(_MERGED_KEYS)} (merged) or "
        f"{sorted(_SEPARATE_KEYS)} (separate), got {sorted(keys)}"
    )
  shape = jnp.shape(params["W_V"])
  for key in sorted(keys):
    key_shape = jnp.shape(params[key])
    if len(key_shape) != 4 or key_shape[-1] != key_shape[-2]:
      raise ValueError(f"params['{key}'] must have shape (L, H, D, D), got {key_shape}")
    if key_shape != shape:
      raise ValueError(
          f"params['{key}'] must have the shape of params['W_V'], {shape}, got {key_shape}"
      )
  num_layers, num_heads = shape[0], shape[1]
  if (num_layers, num_heads) != (1, 1):
    raise ValueError(
        f"population_risk_of_params needs L = 1 layer and H = 1 head, got L = {num_layers} "
        f"and H = {num_heads}. A model with several heads or layers does not reduce to a "
        f"single (value, key-query) pair, so no closed form covers it; estimate its risk "
        f"by Monte Carlo instead"
    )

  if keys == _MERGED_KEYS:
    w_kq = params["W_KQ"][0, 0]
  else:
    w_kq = merged_kq(params["W_Q"][0, 0], params["W_K"][0, 0])
  return population_risk(
      w_kq, params["W_V"][0, 0], n, noise_std=noise_std, x_std=x_std, theta=theta
  )


# ---------------------------------------------------------------------------
# Theory-derived parameters and their closed-form risks.


def _merged_params(w_kq, w_v):
  return {"W_KQ": w_kq[None, None], "W_V": w_v[None, None]}


def pretrained_scale(d, n_pt, *, noise_std, x_std=1.0):
  """Return ``c* = (m + 1) / ((m + d + 1) s^2 + d sigma^2)``, the pretraining optimum scale.

  ``W_KQ[x, x] = c* I`` with ``W_V[-1, -1] = 1`` minimizes the sphere-averaged risk at
  ``n = m = n_pt`` shots over the models ``W_KQ[x, x] = Gamma``. The gradient over all of
  rows 0..d of ``W_KQ`` and the value row is also zero there.
  """
  _check_feature_dim("d", d)
  _check_shots("n_pt", n_pt)
  _check_nonnegative("noise_std", noise_std)
  _check_positive("x_std", x_std)
  return (n_pt + 1) / ((n_pt + d + 1) * x_std**2 + d * noise_std**2)


def pretrained_optimum(d, n_pt, *, noise_std, x_std=1.0, dtype=jnp.float32):
  """Build merged parameters with ``W_V[-1, -1] = 1``, ``W_KQ[1:d+1, 1:d+1] = c* I``, else 0.

  The model predicts ``(1 / (n + 1)) sum_{j <= n} c* (x_q.x_j) y_j``, and the query's own
  term is 0. ``c*`` is ``pretrained_scale(d, n_pt, ...)``.
  """
  scale = pretrained_scale(d, n_pt, noise_std=noise_std, x_std=x_std)
  size = d + 2
  input_block = scale * jnp.eye(d, dtype=dtype)
  w_kq = jnp.zeros((size, size), dtype).at[1 : d + 1, 1 : d + 1].set(input_block)
  w_v = jnp.zeros((size, size), dtype).at[-1, -1].set(1)
  return _merged_params(w_kq, w_v)


def pretrained_family_risk(n, c, d, *, noise_std, x_std=1.0):
  """Compute ``R(n)`` of the model ``W_KQ[x, x] = c I``, ``W_V[-1, -1] = 1`` on a unit task.

  The risk is the same for every unit task, and hence also for the sphere average:

      R(n; c) = sigma^2 + s^2 (1 - n s^2 c / (n + 1))^2
                + n c^2 s^4 ((d + 1) s^2 + d sigma^2) / (n + 1)^2.
  """
  _check_shots("n", n)
  _check_feature_dim("d", d)
  _check_nonnegative("noise_std", noise_std)
  _check_positive("x_std", x_std)
  s2 = x_std**2
  noise_var = noise_std**2
  return (
      noise_var
      + s2 * (1 - n * s2 * c / (n + 1)) ** 2
      + n * c**2 * s2**2 * ((d + 1) * s2 + d * noise_var) / (n + 1) ** 2
  )


def pretrained_optimum_risk(n, d, n_pt, *, noise_std, x_std=1.0):
  """Compute ``R(n)`` of ``pretrained_optimum(d, n_pt, ...)`` on any unit task.

  At ``n = n_pt = m`` it equals ``sigma^2 + s^2 K / (m s^2 + K)`` with
  ``K = (d + 1) s^2 + d sigma^2``.
  """
  scale = pretrained_scale(d, n_pt, noise_std=noise_std, x_std=x_std)
  return pretrained_family_risk(n, scale, d, noise_std=noise_std, x_std=x_std)


def zero_shot_full_family(theta0, w, *, dtype=jnp.float32):
  """Build merged parameters that minimize the zero-shot risk on ``theta0`` for any ``w != 0``.

  ``W_V[-1, 1:d+1] = w theta0``, ``W_V[-1, -1] = 1`` and ``W_KQ[0, 0] = 1 / w``, else 0.
  Every score is ``1 / w``, so the attention is uniform and does not depend on the query.
  At ``n = 0`` the prediction is ``theta0.x_q`` and the risk on ``theta0`` is ``sigma^2``.
  """
  d = _check_task_vector("theta0", theta0)
  _check_nonzero("w", w)
  size = d + 2
  w_kq = jnp.zeros((size, size), dtype).at[0, 0].set(1 / w)
  w_v = (
      jnp.zeros((size, size), dtype)
      .at[-1, 1 : d + 1]
      .set(w * jnp.asarray(theta0, dtype))
      .at[-1, -1]
      .set(1)
  )
  return _merged_params(w_kq, w_v)


def zero_shot_full_family_risk(n, w, rho, *, noise_std, x_std=1.0):
  """Compute ``R(n)`` of ``zero_shot_full_family(theta0, w)`` on a unit task ``theta``.

  ``theta0`` and ``theta`` are unit vectors with ``rho = theta.theta0``; ``rho = 1`` is
  ``theta0`` and ``rho = -1`` is ``-theta0``. The risk does not depend on ``d`` and is
  affine in ``rho``, so ``rho = 0`` gives the average over tasks uniform on the sphere:

      R = sigma^2 + s^2 |theta0 / (n + 1) - theta|^2
          + n (s^2 |theta0 + theta / w|^2 + sigma^2 / w^2) / (n + 1)^2.
  """
  _check_shots("n", n)
  _check_nonzero("w", w)
  _check_nonnegative("noise_std", noise_std)
  _check_positive("x_std", x_std)
  s2 = x_std**2
  noise_var = noise_std**2
  bias_square = 1 / (n + 1) ** 2 - 2 * rho / (n + 1) + 1
  value_square = 1 + 2 * rho / w + 1 / w**2
  return noise_var + s2 * bias_square + n * (s2 * value_square + noise_var / w**2) / (n + 1) ** 2


def value_only_zero_shot_scale(d, q, *, x_std=1.0):
  """Return ``a* = 1 / (q s^2 (d + 4))``, the zero-shot optimal value weight on ``theta0``.

  With ``W_KQ[x, x] = q I`` fixed, the value row ``[0, a* theta0, w]`` minimizes the
  zero-shot risk on a unit ``theta0`` for every ``w``, which multiplies the query's zero
  label. That risk is ``sigma^2 + 2 s^2 / (d + 4)``.
  """
  _check_feature_dim("d", d)
  _check_nonzero("q", q)
  _check_positive("x_std", x_std)
  return 1 / (q * x_std**2 * (d + 4))


def _value_row_params(theta0, q, a, w, dtype):
  d = _check_task_vector("theta0", theta0)
  size = d + 2
  input_block = q * jnp.eye(d, dtype=dtype)
  w_kq = jnp.zeros((size, size), dtype).at[1 : d + 1, 1 : d + 1].set(input_block)
  w_v = (
      jnp.zeros((size, size), dtype)
      .at[-1, 1 : d + 1]
      .set(a * jnp.asarray(theta0, dtype))
      .at[-1, -1]
      .set(w)
  )
  return _merged_params(w_kq, w_v)


def value_only_zero_shot(theta0, *, q, w=1.0, x_std=1.0, dtype=jnp.float32):
  """Build the value-only zero-shot optimum for the key-query block ``q I``.

  ``W_KQ[1:d+1, 1:d+1] = q I`` and ``W_V[-1] = [0, a* theta0, w]``, with ``a*`` from
  ``value_only_zero_shot_scale``, and every other entry 0. Fine-tuning only the value
  matrix of ``pretrained_optimum`` on the zero-shot loss corresponds to ``q = c*`` and
  ``w = 1``, because ``W_V[-1, -1]`` receives no gradient from that loss.
  """
  d = _check_task_vector("theta0", theta0)
  scale = value_only_zero_shot_scale(d, q, x_std=x_std)
  return _value_row_params(theta0, q, scale, w, dtype)


def value_only_few_shot_weight(n, d, q, a, *, noise_std, x_std=1.0):
  """Return ``w*(n)``, the label weight ``W_V[-1, -1]`` minimizing the n-shot risk on ``theta0``.

  The model is ``W_KQ[x, x] = q I`` with value row ``[0, a theta0, w]`` and a unit
  ``theta0``:

      w*(n) = ((n + 1) - s^2 q a (n + 2 d + 3)) / (q ((n + d + 1) s^2 + d sigma^2)).

  The zero-shot loss does not depend on ``w``, so ``w*(n)`` also minimizes the zero-shot
  loss plus any positive multiple of the n-shot loss.
  """
  _check_shots("n", n)
  _check_feature_dim("d", d)
  _check_nonzero("q", q)
  _check_nonnegative("noise_std", noise_std)
  _check_positive("x_std", x_std)
  s2 = x_std**2
  return ((n + 1) - s2 * q * a * (n + 2 * d + 3)) / (q * ((n + d + 1) * s2 + d * noise_std**2))


def value_only_few_shot(theta0, n_ft, *, q, noise_std, x_std=1.0, dtype=jnp.float32):
  """Build the value-only optimum of the zero-shot plus ``n_ft``-shot loss on ``theta0``.

  ``W_KQ[1:d+1, 1:d+1] = q I`` and ``W_V[-1] = [0, a* theta0, w*(n_ft)]``, with ``a*`` from
  ``value_only_zero_shot_scale`` and ``w*`` from ``value_only_few_shot_weight``.
  """
  d = _check_task_vector("theta0", theta0)
  scale = value_only_zero_shot_scale(d, q, x_std=x_std)
  weight = value_only_few_shot_weight(n_ft, d, q, scale, noise_std=noise_std, x_std=x_std)
  return _value_row_params(theta0, q, scale, weight, dtype)


def value_row_risk(n, *, q, a, w, rho, d, noise_std, x_std=1.0):
  """Compute ``R(n)`` of ``W_KQ[x, x] = q I``, value row ``[0, a theta0, w]``, on a unit task.

  ``theta0`` and ``theta`` are unit vectors with ``rho = theta.theta0``; ``rho = 1`` is
  ``theta0`` and ``rho = -1`` is ``-theta0``. The risk is affine in ``rho``, so ``rho = 0``
  gives the average over tasks uniform on the sphere. With ``k = n s^2 q``,
  ``G = k a theta0 + (k w - (n + 1)) theta`` and ``W = a theta0 + w theta``:

      (n + 1)^2 (R - sigma^2) = s^2 |G|^2 + 2 s^4 q a (d + 2) G.theta0
                                + s^6 q^2 a^2 (d + 2)(d + 4)
                                + n s^4 q^2 ((d + 1) s^2 |W|^2 + d sigma^2 w^2).

  ``a = 0`` gives the pretrained family, with ``q w`` in place of ``c``.
  """
  _check_shots("n", n)
  _check_feature_dim("d", d)
  _check_nonnegative("noise_std", noise_std)
  _check_positive("x_std", x_std)
  s2 = x_std**2
  noise_var = noise_std**2
  k = n * s2 * q
  label_coefficient = k * w - (n + 1)
  G_square = (k * a) ** 2 + 2 * k * a * label_coefficient * rho + label_coefficient**2
  G_dot_theta0 = k * a + label_coefficient * rho
  W_square = a**2 + 2 * a * w * rho + w**2
  scaled_excess = (
      s2 * G_square
      + 2 * s2**2 * q * a * (d + 2) * G_dot_theta0
      + s2**3 * q**2 * a**2 * (d + 2) * (d + 4)
      + n * s2**2 * q**2 * ((d + 1) * s2 * W_square + d * noise_var * w**2)
  )
  return noise_var + scaled_excess / (n + 1) ** 2
