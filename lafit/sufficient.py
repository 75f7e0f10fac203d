"""Prompts reduced to the context Gram matrix, and a sampler of its exact distribution.

A one-layer model reads the context only through `G = sum_{j <= n} z_j z_j^T`:

    yhat = z_q[-1] + (1/(n+1)) (1/H) sum_h z_q^T W_KQ_h (G + z_q z_q^T) W_V_h[-1, :],

so a batch of `(z_q, G, y_q, n)` trains and evaluates it exactly like the tokens do.
`sample_gram_prompts` draws `G` directly, with a number of random draws that does not grow
with `n`:

- A context token is `z = C (1, w)` with `w ~ N(0, I_p)` and `p = d + 1`. The lower
  triangular `C` keeps the constant 1, scales `w` by `(x_std, noise_std)` to `(x, eps)`
  and turns `eps` into the label `y = theta.x + eps`. Hence `G = C M C^T` with
  `M = sum_j (1, w_j)(1, w_j)^T`.
- Rotating the `n` rows `w_j` by an orthogonal matrix whose first row is
  `(1, ..., 1) / sqrt(n)` leaves `g = sum_j w_j / sqrt(n) ~ N(0, I_p)` and `n - 1` fresh i.i.d. rows. Their
  Gram matrix is Wishart with `n - 1` degrees of freedom, and its Bartlett factor `L`
  is lower triangular with `L_ii = sqrt(chi2(n - 1 - i))` (0-based `i`) and standard
  normals below the diagonal. When `n - 1 < p`, the columns `i >= n - 1` are zero.
- Then `M = R R^T` with `R = [[sqrt(n), 0], [g, L]]`, and `G = F F^T` with `F = C R`.

Per prompt this costs `2p + p(p-1)/2` normals and `p` chi-square variates, against
`(n + 1) p` normals for the tokens. `jax.random.chisquare` is exact but slow on CPU
because it runs a rejection loop per element, so `sample_chisquare` runs the same
Marsaglia-Tsang method vectorized over the whole batch.

Array names carry their shapes as in `lafit.data`: `B` prompts, `D = d + 2` token
entries, `p = d + 1` random entries of a token.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lafit import data as data_lib
from lafit import model as model_lib
from lafit import prng

Array = jax.Array

# Marsaglia-Tsang rejects about 4.8% of candidates at shape 1 and fewer at larger shapes
# (a Monte Carlo estimate over 4e6 candidates), about 0.4% at the shapes of the reference
# Gram batch. Each retry pass gives one fresh candidate to one rejected variate in every
# group of this many consecutive variates, so a pass costs an eighth of the first draw.
# On the reference batch 98% of the calls ended after one or two passes (300 calls).
_RETRY_GROUP_SIZE = 8


class GramPrompts(NamedTuple):
  """A batch of prompts with the context reduced to its Gram matrix.

  Attributes:
    z_q_BxD: query tokens `(1, x_q, 0)`.
    gram_BxDxD: context Gram matrices `sum_j z_j z_j^T` over the `n` context tokens.
    y_B: query labels `theta.x_q + eps_q`.
    num_context: the number of context tokens `n` of each prompt, integer, shape `(B,)`.
  """

  z_q_BxD: Array
  gram_BxDxD: Array
  y_B: Array
  num_context: Array


def _is_concrete(value) -> bool:
  return not isinstance(value, jax.core.Tracer)


def _check_std(name: str, value) -> None:
  if jnp.ndim(value) != 0:
    raise ValueError(f'{name} must be a scalar, got shape {jnp.shape(value)}.')
  if _is_concrete(value):
    number = float(np.asarray(value))
    if not (math.isfinite(number) and number >= 0.0):
      raise ValueError(f'{name} must be finite and >= 0, got {number}.')


def _check_counts(name: str, value: Array) -> None:
  """Rejects non-integer dtypes and, when `value` is concrete, negative entries."""
  if not jnp.issubdtype(value.dtype, jnp.integer):
    raise ValueError(f'{name} must be an integer or an integer array, got dtype {value.dtype}.')
  if _is_concrete(value) and value.size and int(np.min(np.asarray(value))) < 0:
    raise ValueError(f'{name} must be >= 0, got minimum {int(np.min(np.asarray(value)))}.')


def _marsaglia_tsang(x: Array, u: Array, shape_minus_third: Array) -> tuple[Array, Array]:
  """Returns the Gamma candidate `c v` and whether it is accepted, for shapes >= 1.

  `x` is standard normal and `u` is uniform on [0, 1). `shape_minus_third` is `a - 1/3`.
  """
  c = shape_minus_third
  root_v = 1.0 + x / jnp.sqrt(9.0 * c)
  v = root_v * root_v * root_v
  positive = v > 0
  log_v = jnp.log(jnp.where(positive, v, 1.0))
  accepted = positive & (jnp.log(u) < 0.5 * x * x + c - c * v + c * log_v)
  return c * v, accepted


def _retry_rejected(key: Array, chi2_M: Array, pending_M: Array, shape_minus_third_M: Array,
                    group_size: int) -> Array:
  """Redraws the pending entries of `chi2_M` until every one is accepted.

  The entries are split into groups of `group_size` consecutive ones. Each pass gives the
  first pending entry of every group a fresh candidate and keeps it if accepted, so every
  rejected variate is redrawn independently until accepted and the result is exact.
  Finding the first pending entry of a group is a reduction along a short axis, so no
  pass compacts the pending entries of the whole array. Compacting them with
  `jnp.nonzero` took more than half of the chi-square time on the reference batch (a
  2-core x86-64 CPU).
  """
  size = chi2_M.shape[0]
  dtype = chi2_M.dtype
  num_groups = -(-size // group_size)
  padding = num_groups * group_size - size
  shape_minus_third_GxK = jnp.pad(shape_minus_third_M, (0, padding),
                                  constant_values=1.0).reshape(num_groups, group_size)
  slot_K = jnp.arange(group_size)

  def try_pending(state):
    key, chi2_GxK, pending_GxK = state
    key, key_x, key_u = jax.random.split(key, 3)
    first_G = jnp.argmax(pending_GxK, axis=1)
    chosen_GxK = (slot_K[None, :] == first_G[:, None]) & pending_GxK
    shape_minus_third_G = jnp.sum(jnp.where(chosen_GxK, shape_minus_third_GxK, 0.0), axis=1)
    # A group without a pending entry gets shape 0 here. Its candidate is discarded, and
    # the floor at shape 1 (2/3 = 1 - 1/3) keeps it finite.
    x_G = prng.normal(key_x, (num_groups,), dtype)
    u_G = prng.uniform(key_u, (num_groups,), dtype)
    gamma_G, accepted_G = _marsaglia_tsang(x_G, u_G, jnp.maximum(shape_minus_third_G, 2 / 3))
    taken_GxK = chosen_GxK & accepted_G[:, None]
    chi2_GxK = jnp.where(taken_GxK, 2.0 * gamma_G[:, None], chi2_GxK)
    return key, chi2_GxK, pending_GxK & ~taken_GxK

  state = (key, jnp.pad(chi2_M, (0, padding)).reshape(num_groups, group_size),
           jnp.pad(pending_M, (0, padding)).reshape(num_groups, group_size))
  _, chi2_GxK, _ = jax.lax.while_loop(lambda state: jnp.any(state[2]), try_pending, state)
  return chi2_GxK.reshape(-1)[:size]


def sample_chisquare(key: Array, df, dtype=jnp.float32) -> Array:
  """Samples chi-square variates with integer degrees of freedom `df >= 0`, shape of `df`.

  `df >= 2` uses Marsaglia-Tsang for Gamma(df / 2) with every rejection redrawn, `df = 1`
  is the square of a normal, and `df = 0` gives 0, so every variate is exact. The method
  is vectorized over all entries. Under `jit` on a 2-core x86-64 CPU (jax 0.10.2, 30,000
  variates per call) it draws about 55 million variates per second and
  `jax.random.chisquare` about 5 million, because the latter splits a key and runs a
  rejection loop for each entry.

  Raises:
    ValueError: if `df` is not an integer array or, when concrete, has a negative entry.
      A traced `df` cannot be checked, and a negative traced entry gives 0.
  """
  df = jnp.asarray(df)
  _check_counts('df', df)
  if df.size == 0:
    return jnp.zeros(df.shape, dtype)
  return _sample_chisquare_flat(key, df.reshape(-1), dtype).reshape(df.shape)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _sample_chisquare_flat(key: Array, df_M: Array, dtype,
                           retry_group_size: int = _RETRY_GROUP_SIZE) -> Array:
  """Samples chi-square variates for a vector `df_M`, as `sample_chisquare` does.

  Tests pass other values of `retry_group_size`: one group of all entries makes the retry
  loop run one pass per rejected variate.
  """
  size = df_M.shape[0]
  # Entries with df < 2 run the method at the dummy shape 1 and discard its output, so
  # their candidate normal is unused and serves as the normal that df = 1 squares.
  shape_minus_third_M = jnp.maximum(df_M.astype(dtype) / 2.0, 1.0) - 1.0 / 3.0
  key_x, key_u, key_retry = jax.random.split(key, 3)
  x_M = prng.normal(key_x, (size,), dtype)
  u_M = prng.uniform(key_u, (size,), dtype)
  gamma_M, accepted_M = _marsaglia_tsang(x_M, u_M, shape_minus_third_M)

  chi2_M = jnp.where(df_M >= 2, 2.0 * gamma_M, jnp.where(df_M == 1, x_M * x_M, 0.0))
  pending_M = (df_M >= 2) & ~accepted_M
  return _retry_rejected(key_retry, chi2_M, pending_M, shape_minus_third_M, retry_group_size)


def _shots_per_prompt(n, batch_size: int) -> Array:
  n = jnp.asarray(n)
  if n.ndim not in (0, 1) or (n.ndim == 1 and n.shape[0] != batch_size):
    raise ValueError(f'n must be a scalar or have shape ({batch_size},), one count per '
                     f'prompt, got shape {n.shape}.')
  _check_counts('n', n)
  return jnp.broadcast_to(n.astype(jnp.int32), (batch_size,))


def sample_gram_prompts(key: Array, theta_Bxd: Array, n, *, x_std: float,
                        noise_std: float) -> GramPrompts:
  """Samples one prompt of `n` shots per task, as query, context Gram matrix and label.

  The result has the exact joint distribution of `gram_from_tokens` applied to
  `lafit.data.sample_prompts(key', theta_Bxd, n, ...)`, but not the same values for the
  same key. The cost does not grow with `n`.

  Args:
    key: PRNG key, of any PRNG implementation.
    theta_Bxd: one task per prompt.
    n: the number of context tokens, a non-negative integer, or an integer array of
      shape `(B,)` for a count per prompt. It may be traced.
    x_std, noise_std: the input and label-noise standard deviations.

  Raises:
    ValueError: on a wrong shape or dtype, or a negative `n`, `x_std` or `noise_std`.
      Traced values cannot be checked. A negative traced `n` gives NaN in `gram_BxDxD`.
  """
  theta_Bxd = jnp.asarray(theta_Bxd)
  if theta_Bxd.ndim != 2 or theta_Bxd.shape[1] < 1:
    raise ValueError(f'theta_Bxd must have shape (B, d) with d >= 1, got shape '
                     f'{theta_Bxd.shape}.')
  if not jnp.issubdtype(theta_Bxd.dtype, jnp.floating):
    raise ValueError(f'theta_Bxd must have a floating dtype, got {theta_Bxd.dtype}.')
  _check_std('x_std', x_std)
  _check_std('noise_std', noise_std)
  n_B = _shots_per_prompt(n, theta_Bxd.shape[0])
  dtype = theta_Bxd.dtype
  return _sample_gram_prompts(key, theta_Bxd, n_B, jnp.asarray(x_std, dtype),
                              jnp.asarray(noise_std, dtype))


def _times(a: Array | None, b: Array | None) -> Array | None:
  """Returns `a * b`, where `None` stands for an entry known to be 0."""
  return None if a is None or b is None else a * b


def _plus(a: Array | None, b: Array | None) -> Array | None:
  """Returns `a + b`, where `None` stands for an entry known to be 0."""
  if a is None:
    return b
  return a if b is None else a + b


@jax.jit
def _sample_gram_prompts(key, theta_Bxd, n_B, x_std, noise_std) -> GramPrompts:
  # Every matrix entry below is an array over the batch, shape (B,), and the matrices are
  # lists of rows with None for the entries that are 0 by construction. XLA then fuses the
  # whole construction into one loop over the prompts, and the products skip the zeros of
  # the triangular factors. With (B, D, D) arrays the sampler alone took 1.5 times as long
  # on the reference batch (a 2-core x86-64 CPU, jax 0.10.2).
  batch_size, d = theta_Bxd.shape
  dtype = theta_Bxd.dtype
  p = d + 1
  num_below = p * (p - 1) // 2
  key_normals, key_chisquare = jax.random.split(key)
  normals_KxB = prng.normal(key_normals, ((2 * p + num_below) * batch_size,), dtype).reshape(
      2 * p + num_below, batch_size)
  query = list(normals_KxB[:p])
  g = list(normals_KxB[p:2 * p])
  below = list(normals_KxB[2 * p:])
  theta = [theta_Bxd[:, i] for i in range(d)]

  # Query: z_q = (1, x_q, 0) and y_q = theta.x_q + eps_q.
  x_q = [x_std * query[i] for i in range(d)]
  y_B = noise_std * query[d]
  for i in range(d):
    y_B = y_B + theta[i] * x_q[i]
  ones_B = jnp.ones((batch_size,), dtype)
  zeros_B = jnp.zeros((batch_size,), dtype)
  z_q_BxD = jnp.stack([ones_B, *x_q, zeros_B], axis=1)

  # The Bartlett factor: row 0 of R is (sqrt(n), 0, ..., 0) and row 1 + i is
  # (g_i, L_i0, ..., L_ii, 0, ..., 0), where column j of L exists only for j < n - 1 and g
  # is zero without context.
  dof_B = n_B - 1
  df_pxB = jnp.maximum(dof_B[None, :] - jnp.arange(p)[:, None], 0)
  chi_pxB = jnp.sqrt(_sample_chisquare_flat(key_chisquare, df_pxB.reshape(-1), dtype)).reshape(
      p, batch_size)
  size = p + 1
  r = [[None] * size for _ in range(size)]
  r[0][0] = jnp.sqrt(n_B.astype(dtype))
  below_index = 0
  for i in range(p):
    r[1 + i][0] = jnp.where(n_B > 0, g[i], 0.0)
    for j in range(i):
      r[1 + i][1 + j] = jnp.where(j < dof_B, below[below_index], 0.0)
      below_index += 1
    r[1 + i][1 + i] = chi_pxB[i]

  # F = C R: C keeps the constant row, scales w to (x, eps) and replaces eps by the label
  # y = theta.x + eps. Then G = F F^T, whose lower triangle is mirrored.
  f = [r[0]] + [[_times(x_std, entry) for entry in r[1 + i]] for i in range(d)]
  y_row = [_times(noise_std, entry) for entry in r[d + 1]]
  for i in range(d):
    y_row = [_plus(y_entry, _times(theta[i], x_entry))
             for y_entry, x_entry in zip(y_row, f[1 + i])]
  f.append(y_row)
  gram = [[None] * size for _ in range(size)]
  for row in range(size):
    for col in range(row + 1):
      entry = None
      for k in range(size):
        entry = _plus(entry, _times(f[row][k], f[col][k]))
      gram[row][col] = gram[col][row] = zeros_B if entry is None else entry
  gram_BxDxD = jnp.stack([entry for row in gram for entry in row], axis=1).reshape(
      batch_size, size, size)
  return GramPrompts(z_q_BxD=z_q_BxD, gram_BxDxD=gram_BxDxD, y_B=y_B, num_context=n_B)


def gram_from_tokens(prompts: data_lib.Prompts) -> GramPrompts:
  """Converts token prompts (query last) to Gram prompts with the same predictions."""
  z_BxNxD = prompts.z_BxNxD
  if z_BxNxD.ndim != 3 or z_BxNxD.shape[1] < 1:
    raise ValueError(f'prompts.z_BxNxD must have shape (B, N, D) with N >= 1 (the query is '
                     f'the last token), got shape {z_BxNxD.shape}.')
  batch_size, num_tokens, token_dim = z_BxNxD.shape
  return GramPrompts(
      z_q_BxD=z_BxNxD[:, -1],
      gram_BxDxD=_context_gram(z_BxNxD[:, :-1]),
      y_B=prompts.y_B,
      num_context=jnp.full((batch_size,), num_tokens - 1, jnp.int32))


def sample_gram_prompts_from_dataset(key: Array, tokens_MxD: Array, batch_size: int,
                                     n: int) -> GramPrompts:
  """Draws prompts from a dataset as Gram prompts.

  The prompts are those of `lafit.data.sample_prompts_from_dataset` for the same key, and
  the result equals `gram_from_tokens` of them. Each pair is gathered once as a whole
  token from `tokens_MxD = lafit.data.dataset_tokens(dataset)`, which a run builds once.
  Gathering `x` and `y` apart and assembling the tokens took 0.17 ms more per reference
  batch (a 2-core x86-64 CPU, jax 0.10.2).
  """
  if tokens_MxD.ndim != 2 or tokens_MxD.shape[0] < 1:
    raise ValueError(f'tokens_MxD must have shape (M, D) with M >= 1, got shape '
                     f'{tokens_MxD.shape}.')
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
  if n < 0:
    raise ValueError(f'n must be >= 0, got {n}.')
  index_BxN = data_lib.dataset_indices(key, tokens_MxD.shape[0], batch_size, n)
  z_BxNxD = tokens_MxD[index_BxN]
  query_BxD = z_BxNxD[:, -1]
  return GramPrompts(
      z_q_BxD=query_BxD.at[:, -1].set(0.0),
      gram_BxDxD=_context_gram(z_BxNxD[:, :-1]),
      y_B=query_BxD[:, -1],
      num_context=jnp.full((batch_size,), n, jnp.int32))


# Up to this many context tokens, `_context_gram` unrolls its sum; beyond, it loops.
_MAX_UNROLLED_TOKENS = 64


def _context_gram(context_BxnxD: Array) -> Array:
  """Returns `sum_j z_j z_j^T` over the context tokens of each prompt.

  Summed token by token, because XLA's batched product of many tiny matrices is slow on
  CPU: on the reference batch this takes 0.26 ms against 9.3 ms for the equivalent
  `einsum` (a 2-core x86-64 CPU, jax 0.10.2).
  """
  batch_size, num_context, token_dim = context_BxnxD.shape

  def add_token(gram_BxDxD, z_BxD):
    return gram_BxDxD + z_BxD[:, :, None] * z_BxD[:, None, :]

  gram_BxDxD = jnp.zeros((batch_size, token_dim, token_dim), context_BxnxD.dtype)
  if num_context <= _MAX_UNROLLED_TOKENS:
    for j in range(num_context):
      gram_BxDxD = add_token(gram_BxDxD, context_BxnxD[:, j])
    return gram_BxDxD
  return jax.lax.fori_loop(0, num_context,
                           lambda j, gram: add_token(gram, context_BxnxD[:, j]), gram_BxDxD)


def query_only(prompts: GramPrompts) -> GramPrompts:
  """Drops the context (`G = 0`, `n = 0`): the prompt of the zero-shot loss."""
  return GramPrompts(z_q_BxD=prompts.z_q_BxD, gram_BxDxD=jnp.zeros_like(prompts.gram_BxDxD),
                     y_B=prompts.y_B, num_context=jnp.zeros_like(prompts.num_context))


def _check_gram_prompts(prompts: GramPrompts, token_dim: int) -> None:
  if not isinstance(prompts, GramPrompts):
    raise ValueError(f'prompts must be a GramPrompts, got {type(prompts).__name__}. Convert '
                     'token prompts with gram_from_tokens.')
  batch_size = prompts.z_q_BxD.shape[0]
  expected = {
      'z_q_BxD': (batch_size, token_dim),
      'gram_BxDxD': (batch_size, token_dim, token_dim),
      'y_B': (batch_size,),
      'num_context': (batch_size,),
  }
  for field, shape in expected.items():
    actual = jnp.shape(getattr(prompts, field))
    if actual != shape:
      raise ValueError(f'prompts.{field} must have shape {shape} to match the params '
                       f'(D = {token_dim}) and {batch_size} prompts, got shape {actual}.')


def _one_layer(params: model_lib.Params, prompts: GramPrompts) -> model_lib.Params:
  """Returns the merged parameters after checking that they fit Gram prompts."""
  merged = model_lib.to_merged(params)
  num_layers, _, token_dim, _ = merged['W_V'].shape
  if num_layers != 1:
    raise ValueError(f'predict_from_gram needs a one-layer model, got {num_layers} layers. '
                     'A deeper model depends on more than the context Gram matrix, so run '
                     'lafit.model.predict on token prompts instead.')
  _check_gram_prompts(prompts, token_dim)
  return merged


def _few_shot_prediction(merged, prompts: GramPrompts, query_kq_BxHxD: Array) -> Array:
  z_q_BxD = prompts.z_q_BxD
  value_HxD = merged['W_V'][0, :, -1, :]
  # The query attends to itself, so it adds z_q z_q^T to the context Gram matrix. Its term
  # z_q (z_q . v) is added to G v without forming G + z_q z_q^T: the sum would be written
  # out twice, once per layout that the gradient reads. On the reference batch (a 2-core
  # x86-64 CPU, jax 0.10.2) the loss and gradient took 0.42 ms this way and 0.68 ms with
  # the sum.
  context_values_BxHxD = jnp.einsum('bef,hf->bhe', prompts.gram_BxDxD, value_HxD)
  query_value_BxH = jnp.sum(z_q_BxD[:, None, :] * value_HxD[None], axis=-1)
  weighted_values_BxHxD = context_values_BxHxD + z_q_BxD[:, None, :] * query_value_BxH[..., None]
  update_B = jnp.mean(jnp.sum(query_kq_BxHxD * weighted_values_BxHxD, axis=-1), axis=1)
  num_tokens_B = prompts.num_context.astype(z_q_BxD.dtype) + 1.0
  return z_q_BxD[:, -1] + update_B / num_tokens_B


def _zero_shot_prediction(merged, prompts: GramPrompts, query_kq_BxHxD: Array) -> Array:
  # The query alone: its score with itself times its own value.
  z_q_BxD = prompts.z_q_BxD
  score_BxH = jnp.sum(query_kq_BxHxD * z_q_BxD[:, None, :], axis=-1)
  value_BxH = z_q_BxD @ merged['W_V'][0, :, -1, :].T
  return z_q_BxD[:, -1] + jnp.mean(score_BxH * value_BxH, axis=1)


def predict_from_gram(params: model_lib.Params, prompts: GramPrompts) -> Array:
  """Returns a one-layer model's prediction `yhat`, shape `(B,)`, from Gram prompts.

  Equals `lafit.model.predict` on the token prompts up to float rounding, for any number
  of heads and for merged or separate parameters.

  Raises:
    ValueError: if the model has more than one layer, because a deeper model reads more of
      the context than its Gram matrix, or if a shape of `prompts` does not match.
  """
  merged = _one_layer(params, prompts)
  query_kq_BxHxD = jnp.einsum('bd,hde->bhe', prompts.z_q_BxD, merged['W_KQ'][0])
  return _few_shot_prediction(merged, prompts, query_kq_BxHxD)


def predict_zero_shot(params: model_lib.Params, prompts: GramPrompts) -> Array:
  """Returns a one-layer model's prediction from the query token alone, shape `(B,)`.

  Equals `predict_from_gram(params, query_only(prompts))` without forming the query's
  Gram matrix. Raises as `predict_from_gram`.
  """
  merged = _one_layer(params, prompts)
  query_kq_BxHxD = jnp.einsum('bd,hde->bhe', prompts.z_q_BxD, merged['W_KQ'][0])
  return _zero_shot_prediction(merged, prompts, query_kq_BxHxD)


def predict_zero_and_few_shot(params: model_lib.Params, prompts: GramPrompts
                              ) -> tuple[Array, Array]:
  """Returns the zero-shot and few-shot predictions of a one-layer model, each `(B,)`.

  The zero-shot prediction reads the query token alone (as `query_only` would) and shares
  the query's key-query projection with the few-shot one. Raises as `predict_from_gram`.
  """
  merged = _one_layer(params, prompts)
  query_kq_BxHxD = jnp.einsum('bd,hde->bhe', prompts.z_q_BxD, merged['W_KQ'][0])
  return (_zero_shot_prediction(merged, prompts, query_kq_BxHxD),
          _few_shot_prediction(merged, prompts, query_kq_BxHxD))
