r"""Benchmarks of lafit on the machine at hand, with a floor estimate for the same work.

Every figure is the median of `--repeats` runs (at least 5 by default) after compilation,
and every ratio is between two numbers measured in the same invocation. The results are
printed as JSON, and written to `--out` too, for BENCHMARKS.md.

    python benchmarks/run_benchmarks.py --out=benchmarks/results.json
    python benchmarks/run_benchmarks.py --sections=steps,evaluation --repeats=5

Sections:
  floor        random numbers per second (numpy, torch if installed, each JAX PRNG and
               lafit.prng) and memory bandwidth
  steps        pretraining and fine-tuning steps/s at the reference batch, against the floor;
               fine-tuning one regime per run and all 6 regimes in one joint step
  attention    full N x N attention against the one-layer query-row path (loss + gradient)
  evaluation   exact risk over n = 0..40 on three tasks against Monte Carlo, and the
               Monte Carlo floor
  seeds        seed scaling: S seeds in one vmapped call, S in --seed_counts, for both
               pretraining samplers
  sweep_seeds  the quick protocol for S seeds in one `lafit.sweep` call (runs/quick_seeds.py),
               S in --sweep_seed_counts, wall time including compilation
  end_to_end   the quick and full paper runs, and the full run without the theory curves:
               wall time of the process (start, imports and run) and of the run, compile
               time, phases, peak memory, in fresh processes with no compilation cache and
               with a warm one
  torch        the PyTorch baseline (benchmarks/torch_reference.py), if torch is installed
"""

import argparse
import concurrent.futures
import functools
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lafit import cache  # pylint: disable=g-import-not-at-top
from lafit import data as data_lib
from lafit import experiment
from lafit import losses
from lafit import model as model_lib
from lafit import prng
from lafit import regimes
from lafit import train as train_lib
from runs import paper

D_FEATURES = 5
BATCH = 5000
N_SHOTS = 20
NOISE_STD = 0.1 ** 0.5


def median_time(fn, repeats: int, inner: int = 1) -> float:
  """Returns the median over `repeats` of the seconds per call of `fn` (run `inner` times)."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(inner):
      out = fn()
    jax.block_until_ready(out)
    times.append((time.perf_counter() - start) / inner)
  return float(np.median(times))


def machine() -> dict:
  return {'processor': platform.processor() or platform.machine(), 'cores': os.cpu_count(),
          'python': platform.python_version(), 'jax': jax.__version__,
          'devices': [str(d) for d in jax.devices()], 'date': time.strftime('%Y-%m-%d')}


# Floor


def numpy_normals_per_second(repeats: int, threads: int) -> float:
  size = 4_000_000
  generators = [np.random.default_rng(i) for i in range(threads)]

  def fill(rng):
    return rng.standard_normal(size, dtype=np.float32)

  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    seconds = median_time(lambda: list(pool.map(fill, generators)), repeats)
  return threads * size / seconds


def jax_normals_per_second(impl: str, repeats: int) -> float:
  size = 4_000_000
  sample = jax.jit(lambda key: jax.random.normal(key, (size,)))
  key = jax.random.key(0, impl=impl)
  return size / median_time(lambda: sample(key), repeats)


def lafit_normals_per_second(repeats: int) -> float:
  size = 4_000_000
  sample = jax.jit(lambda key: prng.normal(key, (size,)))
  return size / median_time(lambda: sample(jax.random.PRNGKey(0)), repeats)


@functools.cache
def _torch_buffer(size: int):
  import torch  # pylint: disable=g-import-not-at-top
  return torch.empty(size, dtype=torch.float32)


def torch_normals_per_second(repeats: int, threads: int) -> float | None:
  if importlib.util.find_spec('torch') is None:
    return None
  import torch  # pylint: disable=g-import-not-at-top
  size = 4_000_000
  previous = torch.get_num_threads()
  torch.set_num_threads(threads)
  out = _torch_buffer(size)
  try:
    return size / median_time(lambda: out.normal_(), repeats)
  finally:
    torch.set_num_threads(previous)


@functools.cache
def _copy_buffers() -> tuple[np.ndarray, np.ndarray]:
  # Allocated once, because the floor is measured again between timed repeats. Two fresh
  # 200 MB arrays there slowed the next repeat of a training step by 10% to 70% in trials.
  source = np.ones(16_000_000, np.float32)
  return source, np.empty_like(source)


def bandwidth_bytes_per_second(repeats: int) -> float:
  """Returns the copy bandwidth (bytes read plus written) of a 64 MB float32 array."""
  source, target = _copy_buffers()
  seconds = median_time(lambda: np.copyto(target, source), repeats)
  return 2 * source.nbytes / seconds


def floor_measures() -> dict:
  """Returns `{name: measure(repeats) -> rate}` for every rate of the floor section."""
  measures = {
      'numpy_normals_per_s_1_thread': lambda repeats: numpy_normals_per_second(repeats, 1),
      'numpy_normals_per_s_all_cores':
          lambda repeats: numpy_normals_per_second(repeats, os.cpu_count()),
      'bandwidth_bytes_per_s': bandwidth_bytes_per_second,
  }
  for impl in ('threefry2x32', 'rbg', 'unsafe_rbg'):
    measures[f'jax_normals_per_s_{impl}'] = functools.partial(jax_normals_per_second, impl)
  measures['lafit_prng_normals_per_s'] = lafit_normals_per_second
  if importlib.util.find_spec('torch') is not None:
    for threads in sorted({1, os.cpu_count()}):
      measures[f'torch_normals_per_s_{threads}_threads'] = functools.partial(
          torch_normals_per_second, threads=threads)
  return measures


def bench_floor(args) -> dict:
  return {name: measure(args.repeats) for name, measure in floor_measures().items()}


def floor_seconds(floor: dict, normals: float, bytes_moved: float) -> float:
  """Estimates the time of `normals` draws plus `bytes_moved` at this machine's best rates."""
  best_rate = max(v for k, v in floor.items() if '_normals_per_s' in k)
  return normals / best_rate + bytes_moved / floor['bandwidth_bytes_per_s']


def time_against_floor(fn, floor: dict, normals: float, bytes_moved: float, repeats: int,
                       inner: int = 1) -> tuple[float, float]:
  """Returns the median seconds per call of `fn` and the median ratio to its floor.

  After each timed repeat, the fastest normal sampler of `floor` and the copy bandwidth
  are measured again, and that repeat's time is divided by the floor from those two
  rates. This machine's speed drifted by 10% to 30% between the sections of one
  invocation, which moved ratios to rates measured minutes earlier by as much.
  """
  measures = floor_measures()
  fastest = max((name for name in floor if '_normals_per_s' in name), key=floor.get)
  jax.block_until_ready(fn())
  times, ratios = [], []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(inner):
      out = fn()
    jax.block_until_ready(out)
    seconds = (time.perf_counter() - start) / inner
    rates = {name: measures[name](3) for name in (fastest, 'bandwidth_bytes_per_s')}
    times.append(seconds)
    ratios.append(seconds / floor_seconds(rates, normals, bytes_moved))
  return float(np.median(times)), float(np.median(ratios))


# Training steps


def reference_config():
  return paper.get_config()


def time_steps(trainer, params, key, num_steps: int, repeats: int, floor: dict,
               normals: float, bytes_moved: float) -> tuple[float, float]:
  """Returns the median seconds per step of a compiled `num_steps`-step scan and the median
  ratio to the floor of one step (see `time_against_floor`)."""
  state = trainer.init(params, key)
  run = jax.jit(trainer.train_steps, static_argnums=1,
                compiler_options=train_lib.compiler_options())
  seconds, ratio = time_against_floor(lambda: run(state, num_steps), floor,
                                      num_steps * normals, num_steps * bytes_moved, repeats)
  return seconds / num_steps, ratio


def bench_steps(args, floor: dict) -> dict:
  """Times training steps at the reference batch, each beside the floor of its work.

  `*_floor_s` is the floor from the rates of the floor section, and `*_vs_floor` the
  median ratio to a floor measured again after each repeat.
  """
  config = reference_config()
  key = jax.random.PRNGKey(0)
  params = model_lib.init_params(key, D_FEATURES)
  num_tokens = N_SHOTS + 1
  token_bytes = BATCH * num_tokens * (D_FEATURES + 2) * 4
  result = {}

  def add_steps(name, trainer, normals, bytes_moved, floor_name):
    result[f'{name}_s_per_step'], result[f'{name}_vs_floor'] = time_steps(
        trainer, params, key, args.steps, args.repeats, floor, normals, bytes_moved)
    result[f'{floor_name}_floor_s'] = floor_seconds(floor, normals, bytes_moved)

  config.pretrain.sampler = 'tokens'
  pretrainer = experiment.pretrain_trainer(config)
  # The tokens are written once by the sampler and read once by the loss and its gradient.
  add_steps('pretrain', pretrainer,
            BATCH * num_tokens * (D_FEATURES + 1) + BATCH * D_FEATURES, 3 * token_bytes,
            'pretrain')
  sample = jax.jit(pretrainer.sample_batch)
  result['pretrain_sampling_s'] = median_time(lambda: sample(key, 0), args.repeats, inner=10)

  config.pretrain.sampler = 'gram'
  gram_trainer = experiment.pretrain_trainer(config)
  # Per prompt: 2p + p(p-1)/2 normals and p chi-squares (p = d + 1), plus the task and the
  # query; the Gram matrices are written once and read once.
  p = D_FEATURES + 1
  gram_draws = BATCH * (2 * p + p * (p - 1) // 2 + p + D_FEATURES)
  gram_bytes = BATCH * (D_FEATURES + 2) * (D_FEATURES + 3) * 4
  add_steps('pretrain_gram', gram_trainer, gram_draws, 3 * gram_bytes, 'pretrain_gram')
  sample_gram = jax.jit(gram_trainer.sample_batch)
  result['pretrain_gram_sampling_s'] = median_time(lambda: sample_gram(key, 0), args.repeats,
                                                   inner=10)

  theta0 = data_lib.sample_sphere(key, (), D_FEATURES)
  dataset = data_lib.make_dataset(key, theta0, 100_000, x_std=1.0, noise_std=NOISE_STD)
  # Fine-tuning draws integers instead of normals: count each index as one draw. The floor
  # is that of one batch, whether one regime or all of them use it.
  finetune_draws, finetune_bytes = BATCH * num_tokens, 3 * token_bytes
  # One regime per run, on token batches: each regime samples its own batches.
  token_sampler = experiment.finetune_sampler(config, theta0, dataset, reduce_to_gram=False)
  for loss in ('zs', 'zsfs'):
    for trainable in ('all', 'v', 'kq'):
      mask = regimes.trainable_mask(params, trainable)
      trainer = train_lib.Trainer(losses.make_loss_fn(loss, 5000), token_sampler,
                                  experiment.make_optimizer(config, 0.01, mask), mask)
      add_steps(f'finetune_{loss}_{trainable}', trainer, finetune_draws, finetune_bytes,
                'finetune')
  # The default: all 6 regimes in one step on one shared batch, reduced to Gram matrices.
  joint = experiment.joint_finetune_trainer(
      config, experiment.regime_names(config),
      experiment.finetune_sampler(config, theta0, dataset))
  add_steps('finetune_joint_6_regimes', joint, finetune_draws, finetune_bytes, 'finetune')
  sample_joint = jax.jit(joint.sample_batch)
  result['finetune_joint_sampling_s'] = median_time(lambda: sample_joint(key, 0), args.repeats,
                                                    inner=10)
  return result


def bench_attention(args) -> dict:
  key = jax.random.PRNGKey(1)
  params = model_lib.init_params(key, D_FEATURES)
  theta = data_lib.sample_sphere(key, (BATCH,), D_FEATURES)
  prompts = data_lib.sample_prompts(key, theta, N_SHOTS, x_std=1.0, noise_std=NOISE_STD)

  def loss(p, method):
    yhat = model_lib.predict(p, prompts.z_BxNxD, method=method)
    return jnp.mean(jnp.square(yhat - prompts.y_B))

  full = jax.jit(jax.value_and_grad(lambda p: loss(p, 'full')))
  fast = jax.jit(jax.value_and_grad(lambda p: loss(p, 'query_row')))
  result = {'full_attention_s': median_time(lambda: full(params), args.repeats, inner=10),
            'query_row_s': median_time(lambda: fast(params), args.repeats, inner=10)}
  result['speedup'] = result['full_attention_s'] / result['query_row_s']
  return result


def bench_evaluation(args, floor: dict) -> dict:
  """Times exact and Monte Carlo test error at n = 0..40 on theta0, -theta0 and the sphere.

  Monte Carlo runs as in a paper run (`experiment.monte_carlo_curves`): one compiled call
  for all tasks, 250,000 prompts per task (the reference's 5 x 50,000), every model of a
  stack scored on one shared sample.
  """
  key = jax.random.PRNGKey(2)
  params = model_lib.init_params(key, D_FEATURES, init_std=0.3)
  theta0 = data_lib.sample_sphere(key, (), D_FEATURES)
  tasks = ('theta0', 'neg_theta0', 'sphere')
  num_prompts = 250_000

  def exact():
    return experiment._exact_curves(  # pylint: disable=protected-access
        params, theta0, NOISE_STD, 1.0, tasks=tasks, n_max=40)

  def monte_carlo(params_M):
    return experiment._monte_carlo_curves(  # pylint: disable=protected-access
        params_M, key, theta0, 1.0, NOISE_STD, tasks=tasks, n_max=40,
        num_prompts=num_prompts, chunk_size=10_000)

  single_model = jax.tree_util.tree_map(lambda leaf: leaf[None], params)
  keys = jax.random.split(key, 7)
  seven = jax.vmap(lambda k: model_lib.init_params(k, D_FEATURES, init_std=0.3))(keys)
  # Per prompt: 41 tokens of d + 1 normals, and d more for a sphere task. The tokens are
  # written once and read once.
  num_tokens = 41
  normals = len(tasks) * num_prompts * (num_tokens * (D_FEATURES + 1) + D_FEATURES)
  bytes_moved = 2 * len(tasks) * num_prompts * num_tokens * (D_FEATURES + 2) * 4
  result = {'exact_s': median_time(exact, args.repeats, inner=10),
            'monte_carlo_floor_s': floor_seconds(floor, normals, bytes_moved)}
  for name, params_M in (('monte_carlo_250k', single_model),
                         ('monte_carlo_250k_7_models', seven)):
    result[f'{name}_s'], result[f'{name}_vs_floor'] = time_against_floor(
        lambda params_M=params_M: monte_carlo(params_M), floor, normals, bytes_moved,
        args.repeats)
  result['speedup'] = result['monte_carlo_250k_s'] / result['exact_s']
  return result


def bench_seeds(args) -> dict:
  result = {}
  for sampler in ('gram', 'tokens'):
    config = reference_config()
    config.pretrain.sampler = sampler
    result[sampler] = seed_scaling(args, experiment.pretrain_trainer(config))
  return result


def seed_scaling(args, trainer) -> dict:
  """Times pretraining steps of S seeds in one `jit(vmap(...))` call, S in --seed_counts."""
  result = {}
  for num_seeds in args.seed_counts:
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    params = jax.vmap(lambda k: model_lib.init_params(k, D_FEATURES))(keys)
    state = jax.vmap(trainer.init)(params, keys)
    run = jax.jit(jax.vmap(trainer.train_steps, in_axes=(0, None)), static_argnums=1,
                  compiler_options=train_lib.compiler_options())
    steps = max(1, args.steps // num_seeds)
    seconds = median_time(lambda: run(state, steps), max(3, args.repeats // 2)) / steps
    result[f'{num_seeds}_seeds_s_per_step'] = seconds
  base = result[f'{args.seed_counts[0]}_seeds_s_per_step'] / args.seed_counts[0]
  for num_seeds in args.seed_counts:
    per_seed = result[f'{num_seeds}_seeds_s_per_step'] / num_seeds
    result[f'{num_seeds}_seeds_cost_per_seed_vs_{args.seed_counts[0]}'] = per_seed / base
  return result


def bench_sweep_seeds(args) -> dict:
  """Times `python -m lafit.sweep` on `runs/quick_seeds.py` for each seed count, cold.

  Each run is a fresh process with no compilation cache, so every count pays its
  compilation. The counts take turns, `--sweep_repeats` rounds, so that the machine's
  drift spreads over all of them, and each figure is the median of its runs. The sweep
  trains blocks of `seeds_per_chunk` seeds per call.
  """
  seconds = {num_seeds: [] for num_seeds in args.sweep_seed_counts}
  for _ in range(args.sweep_repeats):
    for num_seeds in args.sweep_seed_counts:
      with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        subprocess.run([sys.executable, '-m', 'lafit.sweep', '--config=runs/quick_seeds.py',
                        f'--workdir={workdir}', f'--config.num_seeds={num_seeds}',
                        '--compilation_cache='], check=True, capture_output=True, cwd=REPO)
        seconds[num_seeds].append(time.perf_counter() - start)
  result = {'runs': args.sweep_repeats}
  for num_seeds, times in seconds.items():
    result[f'{num_seeds}_seeds_s'] = float(np.median(times))
    result[f'{num_seeds}_seeds_runs_s'] = times
  base = args.sweep_seed_counts[0]
  for num_seeds in args.sweep_seed_counts:
    result[f'{num_seeds}_seeds_vs_{base}'] = (result[f'{num_seeds}_seeds_s']
                                              / result[f'{base}_seeds_s'])
  return result


def run_end_to_end(variant: str, cache_dir: str = '') -> dict:
  """Runs one paper config in this process and returns wall, compile and memory figures.

  With `cache_dir`, compiled programs are read from and written to that persistent cache."""
  compile_seconds = []

  def listener(event, duration, **kwargs):
    del kwargs
    if event.endswith('backend_compile_duration'):
      compile_seconds.append(duration)

  jax.monitoring.register_event_duration_secs_listener(listener)
  if cache_dir:
    cache.enable_compilation_cache(cache_dir)
  config = end_to_end_config(variant)
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    experiment.run(config, workdir)
    wall = time.perf_counter() - start
    with open(os.path.join(workdir, 'timing.json')) as f:
      phases = json.load(f)['phases']
  return {'wall_s': wall, 'compile_s': float(np.sum(compile_seconds)),
          'peak_memory_mib': peak_resident_kib() / 1024, **phases}


def end_to_end_config(variant: str):
  """Returns the paper config of `variant`, figures off.

  A variant is a variant of runs/paper.py (`quick`, `full`), optionally followed by
  `-no_theory`: without the theory curves (closed forms and population training), which
  leaves the work of the published protocol, training and evaluation.
  """
  name, _, option = variant.partition('-')
  if option not in ('', 'no_theory'):
    raise ValueError(f'--variants: invalid option {option!r} in {variant!r}. The only valid '
                     'option is no_theory.')
  config = paper.get_config(name)
  config.plots = False
  if option == 'no_theory':
    config.eval.theory = False
  return config


def peak_resident_kib() -> int:
  """Returns this process's peak resident memory from /proc (VmHWM), in KiB.

  `getrusage(RUSAGE_SELF).ru_maxrss` is not used because Linux carries it across `execve`,
  so a child started by this script would report the parent's peak.
  """
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmHWM:'):
        return int(line.split()[1])
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bench_end_to_end(args) -> dict:
  """Runs each variant in fresh processes: without a compilation cache, and with a warm one."""
  result = {}
  with tempfile.TemporaryDirectory() as cache_dir:
    for variant in args.variants:
      for label, flags in (('cold', []), ('warm_cache', [f'--_cache_dir={cache_dir}'])):
        if flags:  # Fill the cache first; this run is not timed.
          end_to_end_process(variant, flags)
        runs = [end_to_end_process(variant, flags) for _ in range(args.end_to_end_repeats)]
        summary = {key: float(np.median([r[key] for r in runs])) for key in runs[0]}
        summary['runs'] = len(runs)
        result[f'{variant}_{label}'] = summary
  return result


def end_to_end_process(variant: str, flags: list[str]) -> dict:
  """Runs `variant` in a fresh process; `process_s` also counts its start and imports."""
  start = time.perf_counter()
  done = subprocess.run([sys.executable, __file__, f'--_end_to_end={variant}', *flags],
                        capture_output=True, text=True, check=True, cwd=REPO)
  process_s = time.perf_counter() - start
  return {'process_s': process_s, **json.loads(done.stdout.strip().splitlines()[-1])}


def bench_torch(args) -> dict:
  script = os.path.join(REPO, 'benchmarks', 'torch_reference.py')
  if importlib.util.find_spec('torch') is None:
    return {'skipped': 'torch is not installed; see BUILD.md'}
  result = {}
  for name, steps in (('quick', 500),):
    runs = []
    for _ in range(args.torch_repeats or args.end_to_end_repeats):
      with tempfile.NamedTemporaryFile(suffix='.json') as out:
        subprocess.run([sys.executable, script, f'--pretrain_steps={steps}',
                        f'--finetune_steps={steps}', f'--json_out={out.name}'],
                       check=True, capture_output=True, cwd=REPO)
        with open(out.name) as f:
          runs.append(json.load(f))
    result[name] = runs
  return result


SECTIONS = ('floor', 'steps', 'attention', 'evaluation', 'seeds', 'sweep_seeds', 'end_to_end',
            'torch')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--sections', default=','.join(SECTIONS),
                      help=f'Comma-separated sections to run, from {", ".join(SECTIONS)}.')
  parser.add_argument('--repeats', type=int, default=5, help='Timed runs per figure (>= 1).')
  parser.add_argument('--steps', type=int, default=200,
                      help='Optimizer steps per timed scan in the steps and seeds sections.')
  parser.add_argument('--seed_counts', default='1,8,64,512',
                      help='Seed counts of the seeds section, comma-separated.')
  parser.add_argument('--sweep_seed_counts', default='1,64',
                      help='Seed counts of the sweep_seeds section, comma-separated.')
  parser.add_argument('--sweep_repeats', type=int, default=5,
                      help='Runs of each seed count of the sweep_seeds section.')
  parser.add_argument('--variants', default='quick,full,full-no_theory',
                      help='Paper config variants of the end_to_end section; a suffix '
                      '-no_theory leaves out the theory curves.')
  parser.add_argument('--end_to_end_repeats', type=int, default=5,
                      help='Runs of each end-to-end variant and of the torch baseline.')
  parser.add_argument('--torch_repeats', type=int, default=0,
                      help='Runs of the torch baseline; 0 uses --end_to_end_repeats.')
  parser.add_argument('--out', default=None, help='Path of the JSON results file.')
  parser.add_argument('--_end_to_end', default=None, help=argparse.SUPPRESS)
  parser.add_argument('--_cache_dir', default='', help=argparse.SUPPRESS)
  args = parser.parse_args()

  if args._end_to_end:  # pylint: disable=protected-access
    print(json.dumps(run_end_to_end(args._end_to_end, args._cache_dir)))  # pylint: disable=protected-access
    return

  sections = args.sections.split(',')
  for section in sections:
    if section not in SECTIONS:
      parser.error(f'--sections: unknown section {section!r}; valid: {", ".join(SECTIONS)}.')
  for name in ('repeats', 'sweep_repeats', 'end_to_end_repeats'):
    if getattr(args, name) < 1:
      parser.error(f'--{name} must be >= 1, got {getattr(args, name)}.')
  args.seed_counts = [int(s) for s in args.seed_counts.split(',')]
  args.sweep_seed_counts = [int(s) for s in args.sweep_seed_counts.split(',')]
  args.variants = args.variants.split(',')
  for variant in args.variants:
    try:
      end_to_end_config(variant)
    except ValueError as error:
      parser.error(str(error))

  results = {'machine': machine()}
  floor = bench_floor(args)
  results['floor'] = floor
  for section in sections:
    if section == 'floor':
      continue
    print(f'running {section} ...', file=sys.stderr, flush=True)
    if section in ('steps', 'evaluation'):
      results[section] = globals()[f'bench_{section}'](args, floor)
    else:
      results[section] = globals()[f'bench_{section}'](args)
  text = json.dumps(results, indent=2)
  print(text)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  main()
