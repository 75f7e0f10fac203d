"""The reference experiment end to end on a tiny configuration."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from lafit import experiment
from lafit import theory
from runs import paper

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides):
  config = paper.get_config('quick')
  config.d = 3
  config.pretrain.n_shots = 6
  config.pretrain.batch_size = 256
  config.pretrain.num_steps = 40
  config.finetune.n_shots = 6
  config.finetune.batch_size = 256
  config.finetune.num_steps = 20
  config.finetune.dataset_size = 2000
  config.eval.n_max = 12
  config.eval.num_prompts = 500
  config.eval.num_seeds = 2
  config.log_every = 20
  config.plots = False
  config.eval.theory = False
  for field, value in overrides.items():
    target = config
    *parents, leaf = field.split('.')
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


def read_results(workdir):
  with open(os.path.join(workdir, 'results.json')) as f:
    return json.load(f)


def test_run_writes_every_output(tmp_path):
  config = tiny_config(**{'plots': True, 'eval.theory': True})
  experiment.run(config, str(tmp_path))
  for name in ('config.json', 'results.json', 'results.md', 'loss_traces.npz', 'timing.json',
               'figures/test_error.png', 'figures/losses.png', 'figures/parameters.png'):
    assert (tmp_path / name).exists(), name
  results = read_results(tmp_path)
  expected_models = ['pretrained', 'zs_all', 'zs_v', 'zs_kq', 'zsfs_all', 'zsfs_v', 'zsfs_kq']
  assert results['models'] == expected_models
  assert results['n_shots'] == list(range(13))
  for model in expected_models:
    assert (tmp_path / 'models' / f'{model}.npz').exists()
    for task in ('theta0', 'neg_theta0', 'sphere'):
      curve = results['test_error'][model][task]
      assert len(curve) == 13
      # No model beats the noise floor sigma^2 = 0.1.
      assert min(curve) >= 0.1 - 1e-5
  assert [c['claim'] for c in results['claims']] == [1, 2, 3, 4]

  # Theory beside the learned curves: closed forms where they exist, population otherwise.
  closed = {'pretrained', 'zs_v', 'zsfs_v'}
  for model in expected_models:
    source = 'closed_form' if model in closed else 'population'
    assert results['theory_source'][model] == source
    assert set(results['population_error'][model]) == {'theta0', 'neg_theta0', 'sphere'}
    assert results['theory_gap'][model]['all_n'] >= results['theory_gap'][model]['n_ge_5']
  for n in (0, 1, 6, 12):
    expected = theory.pretrained_optimum_risk(n, 3, 6, noise_std=config.noise_std)
    np.testing.assert_allclose(results['theory_error']['pretrained']['sphere'][n], expected,
                               rtol=1e-5)
  a_star_floor = config.noise_std ** 2 + 2 / (3 + 4)
  np.testing.assert_allclose(results['theory_error']['zs_v']['theta0'][0], a_star_floor,
                             rtol=1e-5)
  assert (tmp_path / 'models' / 'population_zs_all.npz').exists()
  table = (tmp_path / 'results.md').read_text()
  assert table.count('\n') == 13 + 2


def test_rerun_reproduces_results_exactly(tmp_path):
  config = tiny_config(**{'finetune.losses': ('zsfs',), 'finetune.trainable': ('all',)})
  experiment.run(config, str(tmp_path / 'a'))
  experiment.run(config, str(tmp_path / 'b'))
  assert ((tmp_path / 'a' / 'results.json').read_bytes()
          == (tmp_path / 'b' / 'results.json').read_bytes())


def test_rerun_reuses_finished_models(tmp_path, caplog):
  config = tiny_config(**{'finetune.losses': ('zs',)})
  experiment.run(config, str(tmp_path))
  first = (tmp_path / 'results.json').read_bytes()
  os.remove(tmp_path / 'models' / 'zs_v.npz')
  caplog.clear()
  caplog.set_level(logging.INFO)
  experiment.run(config, str(tmp_path))
  reused = [r.message for r in caplog.records if 'reusing' in r.message]
  assert len(reused) == 3
  assert not any(m.startswith('zs_v:') for m in reused)
  assert (tmp_path / 'results.json').read_bytes() == first


def test_workdir_of_other_config_rejected(tmp_path):
  config = tiny_config(**{'finetune.losses': ('zs',), 'finetune.trainable': ('v',)})
  experiment.run(config, str(tmp_path))
  config.seed = 1
  with pytest.raises(ValueError, match='different config.*fields that differ: seed\\)'):
    experiment.run(config, str(tmp_path))


def test_finished_run_reevaluated(tmp_path, caplog):
  regimes = {'finetune.losses': ('zs',), 'finetune.trainable': ('v', 'kq')}
  experiment.run(tiny_config(**regimes, **{'eval.theory': True}), str(tmp_path))
  caplog.set_level(logging.INFO)
  experiment.run(tiny_config(**regimes, **{'eval.n_max': 4}), str(tmp_path))
  results = read_results(tmp_path)
  assert results['n_shots'] == [0, 1, 2, 3, 4]
  assert 'theory_error' not in results
  assert sum('reusing' in r.message for r in caplog.records) == 3


@pytest.mark.parametrize('field,value,message', [
    ('d', 0, 'config.d=0 is invalid: expected an integer >= 1'),
    ('pretrain.n_shots', -1, 'config.pretrain.n_shots=-1 is invalid'),
    ('noise_std', -0.1, 'config.noise_std=-0.1 is invalid'),
    ('finetune.learning_rate', 0.0, 'config.finetune.learning_rate=0.0 is invalid'),
    ('pretrain.num_steps', 0, 'config.pretrain.num_steps=0'),
    ('finetune.batch_size', 0, 'config.finetune.batch_size=0'),
    ('finetune.trainable', ('all', 'k'),
     "with parameterization='merged' each entry must be one of all, v, kq"),
    ('optimizer', 'rmsprop', 'valid values are sgd, adam'),
    ('parameterization', 'tied', 'valid values are merged, separate'),
    ('eval.tasks', ('theta0', 'cube'), 'config.eval.tasks'),
    ('pretrain.sampler', 'dice', 'valid values are auto, tokens, gram'),
    ('finetune.average_steps', 21,
     'config.finetune.average_steps=21 is invalid: expected at most finetune.num_steps=20'),
    ('pretrain.average_steps', -1, 'config.pretrain.average_steps=-1 is invalid'),
])
def test_bad_config_rejected_before_work(tmp_path, field, value, message):
  config = tiny_config()
  with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
    experiment.run(tiny_config(**{field: value}), str(tmp_path))
  assert not os.listdir(tmp_path)
  del config


def test_divergence_marked_not_reported(tmp_path):
  config = tiny_config(**{'pretrain.learning_rate': 1e4, 'clip_norm': 0.0, 'init_std': 1.0})
  experiment.run(config, str(tmp_path))
  results = read_results(tmp_path)
  assert results['diverged']['pretrained']['seed'] == 0
  assert results['diverged']['pretrained']['step'] >= 0
  assert results['test_error']['pretrained'] == {'theta0': None, 'neg_theta0': None,
                                                 'sphere': None}
  assert results['models'] == ['pretrained']
  assert 'diverged' in (tmp_path / 'results.md').read_text()


def test_gram_sampler_pretrains(tmp_path):
  regimes = {'finetune.losses': ('zs',), 'finetune.trainable': ('v',)}
  tokens = tiny_config(**regimes, **{'pretrain.num_steps': 150, 'pretrain.sampler': 'tokens'})
  gram = tiny_config(**regimes, **{'pretrain.num_steps': 150, 'pretrain.sampler': 'gram'})
  experiment.run(tokens, str(tmp_path / 'tokens'))
  experiment.run(gram, str(tmp_path / 'gram'))
  at_n_pt = [read_results(tmp_path / name)['test_error']['pretrained']['sphere'][6]
             for name in ('tokens', 'gram')]
  # Same distribution of batches, different draws: both end near the optimum.
  optimum = theory.pretrained_optimum_risk(6, 3, 6, noise_std=tokens.noise_std)
  assert at_n_pt[0] < 1.1 * optimum
  assert at_n_pt[1] < 1.1 * optimum
  assert at_n_pt[0] != at_n_pt[1]


def test_auto_sampler_picks_gram_for_one_layer():
  assert experiment.pretrain_sampler(tiny_config()) == 'gram'
  assert experiment.pretrain_sampler(tiny_config(num_layers=2)) == 'tokens'
  assert experiment.pretrain_sampler(tiny_config(**{'pretrain.sampler': 'tokens'})) == 'tokens'


def test_gram_sampler_needs_one_layer(tmp_path):
  config = tiny_config(**{'pretrain.sampler': 'gram', 'num_layers': 2})
  with pytest.raises(ValueError, match='gram sampler needs num_layers=1, got 2'):
    experiment.run(config, str(tmp_path))


def test_separate_two_layer_monte_carlo(tmp_path):
  config = tiny_config(**{'parameterization': 'separate', 'num_layers': 2,
                          'finetune.trainable': ('k', 'q'), 'finetune.losses': ('zs',)})
  experiment.run(config, str(tmp_path))
  results = read_results(tmp_path)
  assert results['test_error_method'] == 'monte_carlo'
  assert results['models'] == ['pretrained', 'zs_k', 'zs_q']
  stderr = np.asarray(results['monte_carlo']['stderr']['zs_k']['theta0'])
  assert np.all(stderr > 0)


def test_exact_and_monte_carlo_agree(tmp_path):
  config = tiny_config(**{'eval.method': 'both', 'eval.num_prompts': 20_000,
                          'eval.num_seeds': 1, 'finetune.losses': ('zs',),
                          'finetune.trainable': ('v',)})
  experiment.run(config, str(tmp_path))
  results = read_results(tmp_path)
  for model in results['models']:
    for task in results['tasks']:
      exact = np.asarray(results['test_error'][model][task])
      mc = np.asarray(results['monte_carlo']['test_error'][model][task])
      stderr = np.asarray(results['monte_carlo']['stderr'][model][task])
      # 39 curves points per model; 4.5 standard errors bound each with p > 0.99999.
      assert np.all(np.abs(exact - mc) < 4.5 * stderr), (model, task)


def test_command_line_quick_overrides(tmp_path):
  command = [sys.executable, '-m', 'lafit', '--config=runs/paper.py:quick',
             f'--workdir={tmp_path}', '--config.d=3', '--config.pretrain.batch_size=128',
             '--config.pretrain.num_steps=20', '--config.finetune.num_steps=10',
             '--config.finetune.batch_size=128', '--config.eval.n_max=10',
             '--config.plots=False', '--config.eval.theory=False',
             f'--compilation_cache={tmp_path / "xla"}']
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert 'Claim 1' in done.stdout
  assert read_results(tmp_path)['n_shots'] == list(range(11))
  assert len(os.listdir(tmp_path / 'xla')) > 10  # The compiled programs of the run.


def test_command_line_bad_value(tmp_path):
  command = [sys.executable, '-m', 'lafit', '--config=runs/paper.py:quick',
             f'--workdir={tmp_path}', '--config.pretrain.learning_rate=-0.5']
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert done.returncode != 0
  assert 'config.pretrain.learning_rate=-0.5 is invalid' in done.stderr
  assert 'Traceback' not in done.stderr


@pytest.mark.parametrize('num_layers', [1, 2])
def test_joint_finetuning_matches_each_regime(num_layers):
  # One compiled run of every regime gives each regime's own run: the same batches, the
  # same updates (the one-layer joint run works on Gram matrices, hence the tolerance).
  config = tiny_config(num_layers=num_layers)
  theta0 = np.array([0.6, 0.0, 0.8], np.float32)
  dataset = experiment.data_lib.make_dataset(
      experiment.jax.random.PRNGKey(1), theta0, config.finetune.dataset_size,
      x_std=config.x_std, noise_std=config.noise_std)
  params = experiment.model_lib.init_params(experiment.jax.random.PRNGKey(2), config.d,
                                            num_layers=num_layers, init_std=0.3)
  sample_batch = experiment.finetune_sampler(config, theta0, dataset)
  key = experiment.jax.random.PRNGKey(3)
  regime_list = experiment.regime_names(config)
  joint = experiment.finetune_all(config, params, regime_list, sample_batch, key)
  assert list(joint) == [name for name, _, _ in regime_list]
  for name, loss, trainable in regime_list:
    single = experiment.finetune(config, params, sample_batch, loss, trainable, key, name)
    for leaf in params:
      np.testing.assert_allclose(joint[name].params[leaf], single.params[leaf], rtol=1e-4,
                                 atol=1e-6)
    np.testing.assert_allclose(joint[name].loss_trace, single.loss_trace, rtol=1e-4)
