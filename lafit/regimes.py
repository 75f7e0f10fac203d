"""Fine-tuning regimes as data: trainable masks and the optimizer chains that honour them.

A regime names the trainable parameters: `all`, `v` (`W_V` only) or `kq` (`W_KQ` only)
for the merged model, and `all`, `v`, `k` (`W_K` only) or `q` (`W_Q` only) for the
separate one. It becomes a mask, a PyTree of booleans with the structure of the
parameters. The optimizer chain zeroes the gradients of frozen parameters before clipping,
so the global norm is taken over the trainable parameters only.

A mask's entries may also be boolean arrays, traced ones included. `stack_masks` turns
several regimes into one mask whose entries have a leading regime axis, so that one
compiled step can `vmap` over the regimes (see `lafit.train.JointTrainer`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lafit import model as model_lib

Array = jax.Array
Mask = dict[str, bool | Array]

TRAINABLE = {
    'merged': {'all': ('W_KQ', 'W_V'), 'v': ('W_V',), 'kq': ('W_KQ',)},
    'separate': {'all': ('W_K', 'W_Q', 'W_V'), 'v': ('W_V',), 'k': ('W_K',), 'q': ('W_Q',)},
}
OPTIMIZERS = ('sgd', 'adam')


def trainable_mask(params: model_lib.Params, trainable: str) -> Mask:
  """Returns the mask of a named trainable set: `True` where a parameter is trained."""
  parameterization = model_lib.parameterization_of(params)
  valid = TRAINABLE[parameterization]
  if trainable not in valid:
    raise ValueError(f'trainable={trainable!r} is invalid for {parameterization} parameters; '
                     f'valid values are {", ".join(valid)}.')
  return {name: name in valid[trainable] for name in params}


def stack_masks(masks: list[Mask]) -> dict[str, Array]:
  """Stacks the masks of `R` regimes into one mask of boolean arrays of shape `(R,)`."""
  if not masks:
    raise ValueError('stack_masks needs at least one mask, got none.')
  names = list(masks[0])
  for mask in masks[1:]:
    if list(mask) != names:
      raise ValueError(f'every mask must name the parameters {names}, got {list(mask)}.')
  return {name: jnp.asarray([bool(mask[name]) for mask in masks]) for name in names}


def _select(flag, trained, frozen):
  """Returns `trained` where `flag` is true, else `frozen`; `flag` may be traced."""
  if isinstance(flag, (bool, np.bool_)):
    return trained if flag else frozen
  return jnp.where(flag, trained, frozen)


def zero_frozen_gradients(mask: Mask) -> optax.GradientTransformation:
  """Sets the updates of frozen parameters (mask `False`) to zero."""

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    updates = {name: _select(mask[name], u, jnp.zeros_like(u)) for name, u in updates.items()}
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(name: str, learning_rate, *, momentum: float = 0.9, b1: float = 0.9,
                   b2: float = 0.9, eps: float = 1e-8, clip_norm: float | None = 1.0,
                   mask: Mask | None = None) -> optax.GradientTransformation:
  """Builds `zero frozen gradients -> clip by global norm -> SGD or Adam`.

  Args:
    name: `sgd` (with heavy-ball momentum, no weight decay) or `adam`.
    learning_rate: a positive float or an optax schedule.
    momentum: the SGD momentum (0.9 in the reference experiment).
    b1, b2, eps: the Adam constants (the reference uses `b1 = b2 = 0.9`).
    clip_norm: gradients are rescaled when their global norm exceeds this; `None` turns
      clipping off.
    mask: the trainable mask; `None` trains every parameter.
  """
  if name == 'sgd':
    base = optax.sgd(learning_rate, momentum=momentum)
  elif name == 'adam':
    base = optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)
  else:
    raise ValueError(f'optimizer={name!r} is invalid; valid values are {", ".join(OPTIMIZERS)}.')
  chain = []
  if mask is not None:
    chain.append(zero_frozen_gradients(mask))
  if clip_norm is not None:
    chain.append(optax.clip_by_global_norm(clip_norm))
  chain.append(base)
  return optax.chain(*chain)


def apply_masked_updates(params: model_lib.Params, updates: model_lib.Params,
                         mask: Mask | None) -> model_lib.Params:
  """Adds `updates` to trainable parameters and returns frozen ones unchanged.

  Frozen parameters are passed through rather than added to a zero update, so they stay
  bit-identical (adding `+0.0` would turn a `-0.0` entry into `+0.0`). With an array flag
  the choice is a `jnp.where`, which passes them through just as exactly.
  """
  new_params = optax.apply_updates(params, updates)
  if mask is None:
    return new_params
  return {name: _select(mask[name], new_params[name], params[name]) for name in params}
