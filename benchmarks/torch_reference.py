"""PyTorch baseline of the reference experiment, for lafit's benchmarks.

This is a plain PyTorch implementation of the synthetic linear-regression experiment that lafit
reproduces (Lee, Sohn and Lee, 2026, arXiv 2602.23197), written the way a typical research
codebase would be. It was written from lafit's science specification. It is not the code
published with the paper, and it is not imported by lafit.

What it runs, on the CPU in float32:
  * Pretraining: a one-layer linear self-attention model with merged parameters W_KQ and W_V
    (7 x 7 each for d = 5, init N(0, 0.05^2)) is trained on batches of 5000 prompts of 20
    shots, each prompt with a fresh task theta drawn uniformly from the unit sphere.
  * Fine-tuning: a task theta0 is drawn once and a dataset of 100,000 (x, y) pairs is drawn for
    it. Each step samples 5000 prompts of 21 pairs with replacement, and the last pair is the
    query. Each regime starts from the pretrained parameters with a fresh optimizer and is
    trained on the same batches. Regimes are named <loss>_<trainable>, with loss `zs`
    (zero-shot) or `zsfs` (zero-shot plus the few-shot loss weighted by
    lambda(t) = (T-1-t)/(T-1)), and trainable `all`, `v` (W_V only) or `kq` (W_KQ only).
  * Evaluation: Monte Carlo test error for n = 0 .. n_max shots on theta0 and -theta0. Test
    prompts are drawn afresh for every seed and n, and regenerated for every model and task.

The forward pass forms the full N x N attention matrix, and evaluation loops over n, because
that is how a straightforward baseline computes them. Both choices are the point of the
comparison with lafit, not oversights.

Run from the repository root:

    python benchmarks/torch_reference.py --pretrain_steps 500 --finetune_steps 500 \
        --json_out /tmp/torch_reference.json

Measured with torch 2.13.0 (CPU wheel) on a 2-core x86-64 machine shared with other jobs
(load average 2 to 6), on 2026-12-04: that command took 1140 s with torch's default 2 threads,
of which evaluation took 915 s. Timings on shared cores vary several-fold between runs.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import torch

D = 5
NOISE_VARIANCE = 0.1
INIT_STD = 0.05
BATCH_SIZE = 5000
PRETRAIN_SHOTS = 20
FINETUNE_SHOTS = 20
FINETUNE_DATASET_SIZE = 100_000
LEARNING_RATE = 0.01
MOMENTUM = 0.9
CLIP_NORM = 1.0
SEED = 0

LOSS_KINDS = ("zs", "zsfs")
TRAINABLE_SETS = ("all", "v", "kq")
ALL_REGIMES = tuple(f"{loss}_{trainable}" for loss in LOSS_KINDS for trainable in TRAINABLE_SETS)

# Steps left out of the per-step medians, so that allocator and thread-pool warm-up are not
# counted.
WARMUP_STEPS = 10

# Seeds of the generators, kept apart so that each phase draws the same numbers whatever ran
# before it.
PRETRAIN_DATA_SEED = 1
FINETUNE_TASK_SEED = 2
FINETUNE_BATCH_SEED = 3
DATAGEN_TIMING_SEED = 4
EVAL_SEED_BASE = 1000


class LinearSelfAttention(torch.nn.Module):
  """One-layer linear self-attention with merged parameters and a residual stream.

  Computes Z + (1/N) (Z W_KQ Z^T)(Z W_V^T) without a causal mask and predicts the last
  coordinate of the last (query) token.
  """

  def __init__(self, token_dim):
    super().__init__()
    self.w_kq = torch.nn.Parameter(INIT_STD * torch.randn(token_dim, token_dim))
    self.w_v = torch.nn.Parameter(INIT_STD * torch.randn(token_dim, token_dim))

  def forward(self, z):
    """Return the predictions, shape (batch,), for prompts z of shape (batch, N, D + 2)."""
    num_tokens = z.shape[1]
    attention = z @ self.w_kq @ z.transpose(1, 2)  # (batch, N, N)
    values = z @ self.w_v.T
    out = z + attention @ values / num_tokens
    return out[:, -1, -1]


def sample_sphere(num_tasks, generator):
  """Draw tasks uniformly from the unit sphere in R^D, shape (num_tasks, D)."""
  theta = torch.randn(num_tasks, D, generator=generator)
  return theta / theta.norm(dim=1, keepdim=True)


def sample_pairs(theta, num_pairs, generator):
  """Draw x ~ N(0, I) and y = theta.x + eps, eps ~ N(0, NOISE_VARIANCE), for each row of theta.

  theta has shape (batch, D). Returns x of shape (batch, num_pairs, D) and y of shape
  (batch, num_pairs).
  """
  x = torch.randn(theta.shape[0], num_pairs, D, generator=generator)
  noise = NOISE_VARIANCE**0.5 * torch.randn(theta.shape[0], num_pairs, generator=generator)
  y = torch.einsum("bnd,bd->bn", x, theta) + noise
  return x, y


def build_prompts(x, y):
  """Stack tokens (1, x, y) into prompts whose last token is the query, with its y set to 0.

  Returns the prompts of shape (batch, N, D + 2) and the query labels of shape (batch,).
  """
  ones = torch.ones(x.shape[0], x.shape[1], 1)
  z = torch.cat([ones, x, y.unsqueeze(-1)], dim=-1)
  query_label = z[:, -1, -1].clone()
  z[:, -1, -1] = 0.0
  return z, query_label


def make_pretraining_batch(generator):
  theta = sample_sphere(BATCH_SIZE, generator)
  x, y = sample_pairs(theta, PRETRAIN_SHOTS + 1, generator)
  return build_prompts(x, y)


def make_finetuning_batch(data_x, data_y, generator):
  """Sample BATCH_SIZE prompts of FINETUNE_SHOTS + 1 pairs from the dataset with replacement."""
  index = torch.randint(0, data_x.shape[0], (BATCH_SIZE, FINETUNE_SHOTS + 1), generator=generator)
  return build_prompts(data_x[index], data_y[index])


def mse(prediction, target):
  return ((prediction - target) ** 2).mean()


def median_step_ms(step_seconds):
  """Return the median step time in ms, leaving out the first WARMUP_STEPS steps if possible."""
  timed_steps = step_seconds[WARMUP_STEPS:] if len(step_seconds) > WARMUP_STEPS else step_seconds
  return 1000.0 * statistics.median(timed_steps)


def pretrain(model, num_steps):
  """Pretrain all parameters on fresh sphere tasks and return the losses and step times."""
  optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
  generator = torch.Generator().manual_seed(PRETRAIN_DATA_SEED)
  losses, step_seconds = [], []

  for step in range(num_steps):
    start = time.perf_counter()
    z, query_label = make_pretraining_batch(generator)
    loss = mse(model(z), query_label)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
    optimizer.step()
    step_seconds.append(time.perf_counter() - start)
    losses.append(loss.item())

    if step % 500 == 0 or step == num_steps - 1:
      print(f"  pretrain step {step:5d}  loss {losses[-1]:.4f}", flush=True)

  return losses, step_seconds


def time_pretraining_datagen(num_steps):
  """Return the per-step times of generating pretraining batches alone, in seconds."""
  generator = torch.Generator().manual_seed(DATAGEN_TIMING_SEED)
  step_seconds = []
  for _ in range(num_steps):
    start = time.perf_counter()
    make_pretraining_batch(generator)
    step_seconds.append(time.perf_counter() - start)
  return step_seconds


def few_shot_weight(step, num_steps):
  """Return lambda(t) = (T-1-t)/(T-1): 1 at the first step, 0 at the last (1 when T = 1)."""
  if num_steps == 1:
    return 1.0
  return (num_steps - 1 - step) / (num_steps - 1)


def finetune(model, regime, data_x, data_y, num_steps):
  """Fine-tune model in place under regime and return the losses and step times."""
  loss_kind, trainable = regime.split("_")
  model.w_kq.requires_grad_(trainable in ("all", "kq"))
  model.w_v.requires_grad_(trainable in ("all", "v"))
  trainable_params = [p for p in model.parameters() if p.requires_grad]

  optimizer = torch.optim.SGD(trainable_params, lr=LEARNING_RATE, momentum=MOMENTUM)
  # Every regime is trained on the same batches.
  generator = torch.Generator().manual_seed(FINETUNE_BATCH_SEED)
  losses, step_seconds = [], []

  for step in range(num_steps):
    start = time.perf_counter()
    z, query_label = make_finetuning_batch(data_x, data_y, generator)
    zero_shot_loss = mse(model(z[:, -1:, :]), query_label)
    if loss_kind == "zsfs":
      few_shot_loss = mse(model(z), query_label)
      loss = zero_shot_loss + few_shot_weight(step, num_steps) * few_shot_loss
    else:
      loss = zero_shot_loss
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable_params, CLIP_NORM)
    optimizer.step()
    step_seconds.append(time.perf_counter() - start)
    losses.append(loss.item())

    if step % 500 == 0 or step == num_steps - 1:
      print(f"  {regime} step {step:5d}  loss {losses[-1]:.4f}", flush=True)

  return losses, step_seconds


@torch.no_grad()
def monte_carlo_test_error(model, theta, num_prompts, num_seeds, n_max):
  """Return the Monte Carlo test error on task theta for n = 0 .. n_max shots.

  Each entry averages num_seeds independent sets of num_prompts prompts, drawn afresh for
  every n. The seeds do not depend on the model or the task, so every model is tested on the
  same x and noise draws.
  """
  error_sums = [0.0] * (n_max + 1)
  for seed in range(num_seeds):
    generator = torch.Generator().manual_seed(EVAL_SEED_BASE + seed)
    for n in range(n_max + 1):
      x, y = sample_pairs(theta.expand(num_prompts, D), n + 1, generator)
      z, query_label = build_prompts(x, y)
      error_sums[n] += mse(model(z), query_label).item()
  errors = [total / num_seeds for total in error_sums]
  return errors


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument(
      "--pretrain_steps", type=int, default=5000, help="number of pretraining steps (default: 5000)"
  )
  parser.add_argument(
      "--finetune_steps",
      type=int,
      default=5000,
      help="number of fine-tuning steps per regime (default: 5000)",
  )
  parser.add_argument(
      "--eval_prompts",
      type=int,
      default=50_000,
      help="Monte Carlo test prompts per seed, task and n (default: 50000)",
  )
  parser.add_argument(
      "--eval_seeds", type=int, default=5, help="number of Monte Carlo test seeds (default: 5)"
  )
  parser.add_argument(
      "--n_max", type=int, default=40, help="maximum number of shots evaluated (default: 40)"
  )
  parser.add_argument(
      "--threads",
      type=int,
      default=None,
      help="torch intra-op threads (default: torch's own default)",
  )
  # NOTE: on the 2-core machine above, with other jobs on the cores, 2 threads made a
  # pretraining step 4 to 12 times slower than 1 thread did (82-156 ms against 13-21 ms).
  parser.add_argument(
      "--regimes",
      default=",".join(ALL_REGIMES),
      help="comma-separated fine-tuning regimes, from "
      f"{', '.join(ALL_REGIMES)} (default: all six)",
  )
  parser.add_argument(
      "--datagen_steps",
      type=int,
      default=300,
      help="pretraining batches generated alone to time data generation " "(default: 300)",
  )
  parser.add_argument(
      "--json_out",
      default=None,
      help="path of a JSON file for the timings and results (default: none)",
  )
  args = parser.parse_args()

  for name in ("pretrain_steps", "finetune_steps", "eval_prompts", "eval_seeds", "datagen_steps"):
    if getattr(args, name) < 1:
      parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
  if args.n_max < 0:
    parser.error(f"--n_max must be at least 0, got {args.n_max}")
  if args.threads is not None and args.threads < 1:
    parser.error(f"--threads must be at least 1, got {args.threads}")
  if args.json_out:
    json_dir = os.path.dirname(os.path.abspath(args.json_out))
    if not os.path.isdir(json_dir):
      parser.error(f"directory of --json_out not found: {json_dir}; create it first")

  args.regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
  invalid = [r for r in args.regimes if r not in ALL_REGIMES]
  if invalid or not args.regimes:
    parser.error(
        f"invalid --regimes {invalid or args.regimes!r}; " f"valid: {', '.join(ALL_REGIMES)}"
    )
  return args


def main():
  args = parse_args()
  if args.threads is not None:
    torch.set_num_threads(args.threads)
  torch.manual_seed(SEED)
  run_start = time.perf_counter()
  phase_seconds = {}

  print(
      f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
      f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
      flush=True,
  )

  # Pretraining.
  model = LinearSelfAttention(D + 2)
  start = time.perf_counter()
  pretrain_losses, pretrain_step_seconds = pretrain(model, args.pretrain_steps)
  phase_seconds["pretrain"] = time.perf_counter() - start
  pretrained_state = {k: v.clone() for k, v in model.state_dict().items()}

  start = time.perf_counter()
  datagen_step_seconds = time_pretraining_datagen(args.datagen_steps)
  phase_seconds["pretrain_datagen_timing"] = time.perf_counter() - start

  # Fine-tuning.
  task_generator = torch.Generator().manual_seed(FINETUNE_TASK_SEED)
  theta0 = sample_sphere(1, task_generator)
  data_x, data_y = sample_pairs(theta0, FINETUNE_DATASET_SIZE, task_generator)
  data_x, data_y = data_x[0], data_y[0]

  models = {"pretrained": model}
  finetune_losses, finetune_step_ms = {}, {}
  for regime in args.regimes:
    regime_model = LinearSelfAttention(D + 2)
    regime_model.load_state_dict(pretrained_state)
    start = time.perf_counter()
    losses, step_seconds = finetune(regime_model, regime, data_x, data_y, args.finetune_steps)
    phase_seconds[f"finetune_{regime}"] = time.perf_counter() - start
    finetune_losses[regime] = losses
    finetune_step_ms[regime] = median_step_ms(step_seconds)
    models[regime] = regime_model

  # Evaluation.
  tasks = {"theta0": theta0[0], "neg_theta0": -theta0[0]}
  test_error = {}
  eval_seconds_per_model = {}
  eval_start = time.perf_counter()
  for name, eval_model in models.items():
    start = time.perf_counter()
    test_error[name] = {}
    for task_name, theta in tasks.items():
      test_error[name][task_name] = monte_carlo_test_error(
          eval_model, theta, args.eval_prompts, args.eval_seeds, args.n_max
      )
    eval_seconds_per_model[name] = time.perf_counter() - start
    print(f"  evaluated {name} in {eval_seconds_per_model[name]:.1f} s", flush=True)
  phase_seconds["eval"] = time.perf_counter() - eval_start
  total_seconds = time.perf_counter() - run_start

  # Report.
  pretrain_ms = median_step_ms(pretrain_step_seconds)
  datagen_ms = median_step_ms(datagen_step_seconds)
  print()
  print(f"total wall time            {total_seconds:8.1f} s")
  for phase, seconds in phase_seconds.items():
    print(f"  {phase:24s} {seconds:8.1f} s")
  print(f"pretrain step (median)     {pretrain_ms:8.2f} ms")
  print(f"  data generation alone    {datagen_ms:8.2f} ms")
  print(
      f"  rest (forward, backward, clip, update; by difference) "
      f"{pretrain_ms - datagen_ms:.2f} ms"
  )
  for regime, ms in finetune_step_ms.items():
    print(f"finetune step {regime:9s}    {ms:8.2f} ms")
  print(f"pretraining loss: first {pretrain_losses[0]:.4f}, last {pretrain_losses[-1]:.4f}")
  for regime, losses in finetune_losses.items():
    print(f"{regime} loss: first {losses[0]:.4f}, last {losses[-1]:.4f}")
  if args.n_max >= 20:
    print("test error at n = 20 (theory for the pretrained optimum: 0.345283):")
    for name, errors in test_error.items():
      print(
          f"  {name:10s} theta0 {errors['theta0'][20]:9.4f}   "
          f"-theta0 {errors['neg_theta0'][20]:9.4f}"
      )
  print("zero-shot test error on theta0:")
  for name, errors in test_error.items():
    print(f"  {name:10s} {errors['theta0'][0]:9.4f}")

  if args.json_out:
    record = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_at_end": os.getloadavg(),
        "args": vars(args),
        "total_seconds": total_seconds,
        "phase_seconds": phase_seconds,
        "eval_seconds_per_model": eval_seconds_per_model,
        "pretrain_step_ms_median": pretrain_ms,
        "pretrain_datagen_ms_median": datagen_ms,
        "finetune_step_ms_median": finetune_step_ms,
        "theta0": theta0[0].tolist(),
        "n_shots": list(range(args.n_max + 1)),
        "test_error": test_error,
        "params": {
            name: {"w_kq": trained.w_kq.tolist(), "w_v": trained.w_v.tolist()}
            for name, trained in models.items()
        },
        "pretrain_loss_first_last": [pretrain_losses[0], pretrain_losses[-1]],
        "finetune_loss_first_last": {r: [l[0], l[-1]] for r, l in finetune_losses.items()},
    }
    with open(args.json_out, "w") as f:
      json.dump(record, f, indent=1)
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
  main()
