"""Figures of a run: test error against shots, training losses, parameter heatmaps."""

import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from lafit import io
from lafit import model as model_lib

TASK_TITLES = {'theta0': r'$\theta_0$ (fine-tuning task)',
               'neg_theta0': r'$-\theta_0$ (unseen task)', 'sphere': 'fresh sphere tasks'}


def _model_colors(names):
  cmap = plt.get_cmap('tab10')
  return {name: cmap(i % 10) for i, name in enumerate(names)}


def plot_test_error(results: dict):
  """Plots test error against shots, one panel per task; theory as lines if present."""
  tasks = results['tasks']
  n_shots = np.asarray(results['n_shots'])
  colors = _model_colors(results['models'])
  theory = results.get('theory_error', {})
  exact = results['test_error_method'] == 'exact'
  fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
  fig.subplots_adjust(left=0.25 / len(tasks), right=0.98, bottom=0.12, top=0.85, wspace=0.25)
  for ax, task in zip(axes[0], tasks):
    for name in results['models']:
      curve = results['test_error'][name][task]
      if curve is None:
        continue
      style = '-' if exact and not theory else 'o'
      ax.plot(n_shots, curve, style, color=colors[name], label=name, markersize=3)
      theory_curve = theory.get(name, {}).get(task)
      if theory_curve is not None:
        ax.plot(n_shots, theory_curve, '-', color=colors[name], linewidth=1, alpha=0.8)
    ax.axhline(results['zero_predictor_error'], color='gray', linestyle=':',
               label='zero predictor')
    ax.axhline(results['noise_var'], color='black', linestyle='--', linewidth=0.8,
               label=r'$\sigma^2$ floor')
    ax.set_yscale('log')
    ax.set_xlabel('shots n')
    ax.set_ylabel('test error')
    ax.set_title(TASK_TITLES.get(task, task))
  axes[0][-1].legend(fontsize=7, loc='best')
  fig.suptitle('markers: learned models; lines: theory' if theory else 'test error')
  return fig


def plot_loss_traces(models: dict):
  """Plots each model's training loss (window means) against the step."""
  colors = _model_colors(list(models))
  fig, ax = plt.subplots(figsize=(7, 4))
  fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.95)
  for name, model in models.items():
    ax.plot(model.trace_steps, model.loss_trace, color=colors[name], label=name)
  ax.set_yscale('log')
  ax.set_xlabel('step (within its phase)')
  ax.set_ylabel('training loss')
  ax.legend(fontsize=7)
  return fig


def parameter_image(params: model_lib.Params) -> tuple[np.ndarray, dict[str, float]]:
  """Returns `W_KQ` and `W_V` (layer 0, head 0) side by side, each over its largest |entry|.

  The two `D x D` matrices are divided by their own largest absolute entry, so every value
  lies in [-1, 1], and a column of NaN (drawn blank) separates them. The second value maps
  `W_KQ` and `W_V` to their scale.
  """
  merged = model_lib.to_merged(params)
  blocks, scales = [], {}
  for key in ('W_KQ', 'W_V'):
    matrix = np.asarray(merged[key][0, 0], np.float64)
    scales[key] = max(float(np.max(np.abs(matrix))), 1e-12)
    blocks.append(matrix / scales[key])
  gap = np.full((blocks[0].shape[0], 1), np.nan)
  return np.concatenate([blocks[0], gap, blocks[1]], axis=1), scales


def plot_parameters(models: dict):
  """Draws heatmaps of the merged W_KQ and W_V (layer 0, head 0) of every model.

  Each matrix is shown over its own largest |entry|, stated in the panel's title, and one
  color scale serves all panels. Under zero-shot fine-tuning of all parameters the
  attention collapses onto the constant coordinate, which shows as a large `W_KQ[0, 0]`.
  """
  names = list(models)
  # One axes per model and fixed margins keep drawing fast. A grid of 14 panels with their
  # own colorbars and tight layout took about 2 s on a 2-core CPU.
  fig, axes = plt.subplots(len(names), 1, figsize=(6, 2.6 * len(names)), squeeze=False)
  fig.subplots_adjust(left=0.08, right=0.84, bottom=0.02, top=0.97, hspace=0.45)
  for ax, name in zip(axes[:, 0], names):
    image, scales = parameter_image(models[name].params)
    heatmap = ax.imshow(image, cmap='RdBu_r', vmin=-1.0, vmax=1.0)
    size = image.shape[0]
    labels = ['1'] + [f'x{i}' for i in range(1, size - 1)] + ['y']
    ax.set_xticks([*range(size), *range(size + 1, 2 * size + 1)], labels * 2, fontsize=6)
    ax.set_yticks(range(size), labels, fontsize=6)
    ax.tick_params(length=0)
    ax.set_frame_on(False)
    ax.set_title(f'{name}\nW_KQ (max |entry| {scales["W_KQ"]:.3g})    '
                 f'W_V (max |entry| {scales["W_V"]:.3g})', fontsize=8)
  colorbar_axes = fig.add_axes((0.88, 0.35, 0.02, 0.3))
  fig.colorbar(heatmap, cax=colorbar_axes, label='entry / max |entry| of its matrix')
  return fig


def write_figures(directory: str, results: dict, models: dict) -> None:
  """Writes `test_error.png`, `losses.png` and `parameters.png` into `directory`."""
  for filename, fig in (('test_error.png', plot_test_error(results)),
                        ('losses.png', plot_loss_traces(models)),
                        ('parameters.png', plot_parameters(models))):
    io.save_figure(os.path.join(directory, filename), fig, tight=False)
    plt.close(fig)
