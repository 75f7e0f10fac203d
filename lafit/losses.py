"""Zero-shot, few-shot and mixed squared losses, and the few-shot weight schedules.

The few-shot (in-context) loss at `n` shots is the mean of `(yhat - y_q)^2` over prompts of
`n + 1` tokens. The zero-shot loss is the same loss on the query token alone. The mixed
fine-tuning loss at step `t` is `L_ZS + lambda(t) L_FS` on the same sampled prompts.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from lafit import data as data_lib
from lafit import model as model_lib
from lafit import sufficient

Array = jax.Array
LOSS_KINDS = ('fs', 'zs', 'zsfs')


def few_shot_loss(params: model_lib.Params,
                  prompts: data_lib.Prompts | sufficient.GramPrompts) -> Array:
  """Mean squared error of the query prediction on whole prompts.

  `GramPrompts` work for one-layer models only (see `sufficient.predict_from_gram`).
  """
  if isinstance(prompts, sufficient.GramPrompts):
    yhat_B = sufficient.predict_from_gram(params, prompts)
  else:
    yhat_B = model_lib.predict(params, prompts.z_BxNxD)
  return jnp.mean(jnp.square(yhat_B - prompts.y_B))


def zero_shot_loss(params: model_lib.Params,
                   prompts: data_lib.Prompts | sufficient.GramPrompts) -> Array:
  """Mean squared error of the prediction from the query token alone."""
  if isinstance(prompts, sufficient.GramPrompts):
    yhat_B = sufficient.predict_zero_shot(params, prompts)
    return jnp.mean(jnp.square(yhat_B - prompts.y_B))
  query_prompts = data_lib.Prompts(prompts.z_BxNxD[:, -1:, :], prompts.y_B)
  return few_shot_loss(params, query_prompts)


def zero_and_few_shot_losses(params: model_lib.Params,
                             prompts: data_lib.Prompts | sufficient.GramPrompts
                             ) -> tuple[Array, Array]:
  """Returns `(L_ZS, L_FS)` on the same prompts.

  For a one-layer model on tokens, the zero-shot prediction is the query's own term of the
  few-shot sum (with `N = 1`), so both come from one pass over the tokens.
  """
  if isinstance(prompts, sufficient.GramPrompts):
    yhat_zero_shot_B, yhat_few_shot_B = sufficient.predict_zero_and_few_shot(params, prompts)
    return (jnp.mean(jnp.square(yhat_zero_shot_B - prompts.y_B)),
            jnp.mean(jnp.square(yhat_few_shot_B - prompts.y_B)))
  if params['W_V'].shape[0] != 1:
    return zero_shot_loss(params, prompts), few_shot_loss(params, prompts)
  z_BxNxD = prompts.z_BxNxD
  terms_BxN = model_lib.one_layer_token_terms(params, z_BxNxD)
  query_label_B = z_BxNxD[:, -1, -1]
  yhat_zero_shot_B = query_label_B + terms_BxN[:, -1]
  yhat_few_shot_B = query_label_B + jnp.sum(terms_BxN, axis=1) / z_BxNxD.shape[1]
  return (jnp.mean(jnp.square(yhat_zero_shot_B - prompts.y_B)),
          jnp.mean(jnp.square(yhat_few_shot_B - prompts.y_B)))


def linear_decay(num_steps: int) -> optax.Schedule:
  """Returns `lambda(t) = (T - 1 - t) / (T - 1)`: 1 at the first step, 0 at the last."""
  if num_steps < 2:
    return optax.constant_schedule(1.0)
  return optax.linear_schedule(init_value=1.0, end_value=0.0, transition_steps=num_steps - 1)


def few_shot_weight_schedule(weight, num_steps: int) -> optax.Schedule:
  """Returns the schedule of `lambda` for the mixed loss.

  Args:
    weight: `'linear_decay'` (the reference schedule), a non-negative number (a constant
      weight), or any optax schedule (a callable of the step).
    num_steps: the number of fine-tuning steps `T`, used by `'linear_decay'`.
  """
  if callable(weight):
    return weight
  if weight == 'linear_decay':
    return linear_decay(num_steps)
  if isinstance(weight, str):
    raise ValueError(f"few-shot weight {weight!r} is invalid; use 'linear_decay', a number "
                     '>= 0 or an optax schedule.')
  if weight < 0:
    raise ValueError(f'few-shot weight must be >= 0, got {weight}.')
  return optax.constant_schedule(float(weight))


def make_loss_fn(kind: str, num_steps: int = 1, fs_weight='linear_decay'
                 ) -> Callable[[model_lib.Params, data_lib.Prompts, Array], Array]:
  """Returns `loss(params, prompts, step)` for a loss kind.

  Args:
    kind: `fs` (few-shot only, as in pretraining), `zs` (zero-shot only) or `zsfs`
      (`L_ZS + lambda(step) L_FS`).
    num_steps: the length of the run, for the `linear_decay` weight.
    fs_weight: the few-shot weight of `zsfs` (see `few_shot_weight_schedule`).
  """
  if kind == 'fs':
    return lambda params, prompts, step: few_shot_loss(params, prompts)
  if kind == 'zs':
    return lambda params, prompts, step: zero_shot_loss(params, prompts)
  if kind != 'zsfs':
    raise ValueError(f'loss kind {kind!r} is invalid; valid kinds are {", ".join(LOSS_KINDS)}.')
  schedule = few_shot_weight_schedule(fs_weight, num_steps)

  def mixed_loss(params, prompts, step):
    zero_shot, few_shot = zero_and_few_shot_losses(params, prompts)
    return zero_shot + schedule(step) * few_shot

  return mixed_loss


FINETUNE_LOSS_KINDS = ('zs', 'zsfs')


def few_shot_coefficients(kinds) -> Array:
  """Returns the few-shot coefficient of each fine-tuning loss kind: 0 for `zs`, 1 for `zsfs`.

  These are the `loss_args` of `make_joint_loss_fn` for a list of regimes.
  """
  for kind in kinds:
    if kind not in FINETUNE_LOSS_KINDS:
      raise ValueError(f'fine-tuning loss kind {kind!r} is invalid; valid kinds are '
                       f'{", ".join(FINETUNE_LOSS_KINDS)}.')
  return jnp.asarray([float(kind == 'zsfs') for kind in kinds], jnp.float32)


def make_joint_loss_fn(num_steps: int = 1, fs_weight='linear_decay', *, few_shot: bool = True):
  """Returns `loss(params, prompts, step, fs_coef) = L_ZS + fs_coef lambda(step) L_FS`.

  One function for both fine-tuning losses, with the loss kind as data: `fs_coef = 0` gives
  the zero-shot loss and `fs_coef = 1` the mixed one, so regimes of both kinds can share a
  compiled step (`lafit.train.JointTrainer`). With `fs_coef = 0` the value and gradient are
  those of `L_ZS` exactly, since `0 * L_FS` adds zeros.

  Args:
    num_steps, fs_weight: the schedule of `lambda`, as in `make_loss_fn`.
    few_shot: `False` when every regime has `fs_coef = 0`, to skip computing `L_FS`.
  """
  schedule = few_shot_weight_schedule(fs_weight, num_steps)

  def joint_loss(params, prompts, step, fs_coef):
    if not few_shot:
      return zero_shot_loss(params, prompts)
    zero_shot, few_shot_value = zero_and_few_shot_losses(params, prompts)
    return zero_shot + fs_coef * schedule(step) * few_shot_value

  return joint_loss

