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
  fig.suptitle('markers: learned models; lines: theory' if theory else 'test error', y=1.03)
  return fig


def plot_loss_traces(models: dict):
  """Plots each model's training loss (window means) against the step."""
  colors = _model_colors(list(models))
  fig, ax = plt.subplots(figsize=(7, 4))
  for name, model in models.items():
    ax.plot(model.trace_steps, model.loss_trace, color=colors[name], label=name)
  ax.set_yscale('log')
  ax.set_xlabel('step (within its phase)')
  ax.set_ylabel('training loss')
  ax.legend(fontsize=7)
  return fig


def plot_parameters(models: dict):
  """Draws heatmaps of the merged W_KQ and W_V (layer 0, head 0) of every model.

  Under zero-shot fine-tuning of all parameters the attention collapses onto the constant
  coordinate, which shows as a large `W_KQ[0, 0]` entry.
  """
  names = list(models)
  fig, axes = plt.subplots(len(names), 2, figsize=(6, 2.8 * len(names)), squeeze=False)
  for row, name in enumerate(names):
    merged = model_lib.to_merged(models[name].params)
    for col, key in enumerate(('W_KQ', 'W_V')):
      matrix = np.asarray(merged[key][0, 0])
      limit = max(float(np.max(np.abs(matrix))), 1e-12)
      ax = axes[row][col]
      image = ax.imshow(matrix, cmap='RdBu_r', vmin=-limit, vmax=limit)
      ax.set_title(f'{name}: {key}', fontsize=9)
      labels = ['1'] + [f'x{i}' for i in range(1, matrix.shape[0] - 1)] + ['y']
      ax.set_xticks(range(len(labels)), labels, fontsize=6)
      ax.set_yticks(range(len(labels)), labels, fontsize=6)
      fig.colorbar(image, ax=ax, fraction=0.046)
  fig.tight_layout()
  return fig


def write_figures(directory: str, results: dict, models: dict) -> None:
  """Writes `test_error.png`, `losses.png` and `parameters.png` into `directory`."""
  for filename, fig in (('test_error.png', plot_test_error(results)),
                        ('losses.png', plot_loss_traces(models)),
                        ('parameters.png', plot_parameters(models))):
    io.save_figure(os.path.join(directory, filename), fig)
    plt.close(fig)
