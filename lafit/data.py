"""Regression tasks, prompts and finite datasets, as pure functions of PRNG keys.

A task is a vector `theta` in R^d. Inputs are `x ~ N(0, x_std^2 I_d)` and labels
`y = theta^T x + eps` with `eps ~ N(0, noise_std^2)`. A prompt with `n` shots is
`N = n + 1` tokens `z_j = (1, x_j, y_j)` in R^(d+2). The last token is the query: its label
entry is 0, and its true label is the prediction target.

Array names carry their shapes: `B` prompts, `N` tokens, `D = d + 2` token entries,
`M` dataset size.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from lafit import ops
from lafit import prng

Array = jax.Array
TaskSampler = Callable[[Array, int], Array]


class Prompts(NamedTuple):
  """A batch of prompts: tokens with the query label zeroed, and the query labels."""

  z_BxNxD: Array
  y_B: Array


class Dataset(NamedTuple):
  """A finite set of `(x, y)` pairs of one task."""

  x_Mxd: Array
  y_M: Array


def token_dim(d: int) -> int:
  """Returns the token width `d + 2` (constant, features, label)."""
  return d + 2


def sample_sphere(key: Array, shape: tuple[int, ...], d: int,
                  dtype=jnp.float32) -> Array:
  """Samples vectors uniform on the unit sphere of R^d, with shape `(*shape, d)`."""
  g = prng.normal(key, (*shape, d), dtype)
  return g / jnp.linalg.norm(g, axis=-1, keepdims=True)


def rotate_towards(theta0: Array, u: Array, phi) -> Array:
  """Returns `cos(phi) theta0 + sin(phi) u_perp`, the unit task at angle `phi` from `theta0`.

  `u_perp` is `u` with its `theta0` component removed and rescaled to unit norm, so that
  `phi = 0` gives `theta0` and `phi = pi` gives `-theta0`. `u` may carry leading batch axes.
  """
  u_perp = u - (u @ theta0)[..., None] * theta0
  u_perp = u_perp / jnp.linalg.norm(u_perp, axis=-1, keepdims=True)
  return jnp.cos(phi) * theta0 + jnp.sin(phi) * u_perp


def task_sampler(kind: str, theta0: Array, phi: float = 0.0) -> TaskSampler:
  """Returns a function `(key, batch_size) -> theta_Bxd` for a named task family.

  Args:
    kind: `sphere` (a fresh uniform unit task per prompt), `theta0` (the fixed task),
      `neg_theta0` (its opposite), or `angle` (a fresh task per prompt at angle `phi`
      from `theta0`, in a uniformly random orthogonal direction).
    theta0: the fixed unit task, shape (d,). `sphere` reads only its size and dtype.
    phi: the angle in radians, for `angle`.
  """
  d = theta0.shape[-1]
  if kind == 'sphere':
    return lambda key, batch_size: sample_sphere(key, (batch_size,), d, theta0.dtype)
  if kind == 'theta0':
    return lambda key, batch_size: jnp.broadcast_to(theta0, (batch_size, theta0.shape[-1]))
  if kind == 'neg_theta0':
    return lambda key, batch_size: jnp.broadcast_to(-theta0, (batch_size, theta0.shape[-1]))
  if kind == 'angle':
    if d < 2:
      raise ValueError(f'task kind angle needs d >= 2 for an orthogonal direction, got d={d}.')

    def sample_at_angle(key, batch_size):
      u_Bxd = prng.normal(key, (batch_size, d), theta0.dtype)
      return rotate_towards(theta0, u_Bxd, phi)

    return sample_at_angle
  raise ValueError(
      f'Unknown task kind {kind!r}; valid kinds are sphere, theta0, neg_theta0, angle.')


def make_tokens(x_BxNxd: Array, y_BxN: Array) -> Prompts:
  """Builds tokens `(1, x, y)` from `N` pairs, the last pair being the query."""
  ones_BxNx1 = jnp.ones((*x_BxNxd.shape[:-1], 1), x_BxNxd.dtype)
  context_y_BxN = y_BxN.at[:, -1].set(0.0)
  z_BxNxD = jnp.concatenate([ones_BxNx1, x_BxNxd, context_y_BxN[..., None]], axis=-1)
  return Prompts(z_BxNxD=z_BxNxD, y_B=y_BxN[:, -1])


def sample_prompts(key: Array, theta_Bxd: Array, n: int, *, x_std: float,
                   noise_std: float) -> Prompts:
  """Samples one prompt of `n` shots per task, with fresh inputs and noise."""
  batch_size, d = theta_Bxd.shape
  key_x, key_eps = jax.random.split(key)
  # Flat draws reshaped give the same values as shaped draws. For keys that `prng` passes
  # to `jax.random`, they run about 1.5 times faster on CPU when the last axis is short.
  x_BxNxd = x_std * prng.normal(
      key_x, (batch_size * (n + 1) * d,), theta_Bxd.dtype).reshape(batch_size, n + 1, d)
  eps_BxN = noise_std * prng.normal(
      key_eps, (batch_size * (n + 1),), theta_Bxd.dtype).reshape(batch_size, n + 1)
  y_BxN = ops.contract_last(x_BxNxd, theta_Bxd[:, None, :]) + eps_BxN
  return make_tokens(x_BxNxd, y_BxN)


def make_dataset(key: Array, theta: Array, size: int, *, x_std: float,
                 noise_std: float) -> Dataset:
  """Samples `size` pairs `(x, y)` of the fixed task `theta`."""
  key_x, key_eps = jax.random.split(key)
  x_Mxd = x_std * prng.normal(key_x, (size, theta.shape[-1]), theta.dtype)
  y_M = x_Mxd @ theta + noise_std * prng.normal(key_eps, (size,), theta.dtype)
  return Dataset(x_Mxd=x_Mxd, y_M=y_M)


def dataset_indices(key: Array, dataset_size: int, batch_size: int, n: int) -> Array:
  """Returns the `(batch_size, n + 1)` pair indices of `sample_prompts_from_dataset`."""
  return prng.randint(key, (batch_size, n + 1), 0, dataset_size)


def sample_prompts_from_dataset(key: Array, dataset: Dataset, batch_size: int,
                                n: int) -> Prompts:
  """Draws `batch_size` prompts of `n + 1` pairs uniformly with replacement from `dataset`.

  The last pair of each prompt is its query.
  """
  index_BxN = dataset_indices(key, dataset.y_M.shape[0], batch_size, n)
  return make_tokens(dataset.x_Mxd[index_BxN], dataset.y_M[index_BxN])


def dataset_tokens(dataset: Dataset) -> Array:
  """Returns every pair of `dataset` as a context token `(1, x, y)`, shape `(M, D)`."""
  x_Mxd = dataset.x_Mxd
  return jnp.concatenate([jnp.ones((x_Mxd.shape[0], 1), x_Mxd.dtype), x_Mxd,
                          dataset.y_M[:, None]], axis=1)
