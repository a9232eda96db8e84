"""Training-step throughput: forward+backward of the A*PO policy loss vs this machine's matmul peak.

    python bench/train_step.py            # tiny + small, three RL batch shapes, median of 5
    python bench/train_step.py --quick    # < 1 minute (smaller batches, 1 repeat, no profile)

What is timed: the real loss path of stage 2. ``tinyzero.algorithms.common.trajectory_logprobs``
(which calls ``token_logprobs_and_entropy``) on a right-padded batch, then A*PO's regression loss
(``astarpo.astarpo_loss`` on the trajectory sums) minus the entropy bonus (``masked_mean``), as in
``astarpo.regression_loss``; then ``backward``. The optimizer step (global-norm clip + AdamW, as in
``TinyZeroTrainer.optimize``) is timed separately and reported on its own.

Batches are realistic: the sequences the trainer would build from 128 trajectories of the real
tasks (``Task.behaviour_turns`` demonstrations, skill 0.8, seed 0, tokenised and padded by
``tinyzero.context`` exactly as ``make_batch`` does):

* ``frozenlake_episode``: FrozenLake 4x4, whole episode per sequence (rollout.history=-1): 128 rows
  of 26-205 tokens, padded to 205 (about half the padded rectangle is padding);
* ``frozenlake_markov``: FrozenLake with the Markov context of configs/frozenlake.yaml
  (history=0): one row per turn, ~500 rows of 24-27 tokens;
* ``countdown``: countdown prompt + answer, 128 rows of 44-53 tokens.

Side by side in one process: ``ours`` is this checkout's code; ``baseline`` is
tinyzero/models/transformer.py as of ``--baseline`` (default: the commit before the training-path
changes), loaded from git into a separate module, with the same weights, through the same loss code.
Repeats interleave the two systems (A B A B ...) so that load from other users hits both alike;
each figure is the median over ``--repeats`` timed runs after one warm-up.

FLOPs (stated convention, PaLM-style): a sequence of t tokens costs 6·N·t + 12·L·d·t² for
forward+backward, N = weights used in matmuls (every nn.Linear, the tied LM head counted once;
embedding lookups and norms not counted), L layers, d = d_model; the attention term counts full
(non-causal) QKᵀ and AV. "Useful" figures use only real (non-pad) tokens; "padded" figures count the
whole padded rectangle the trainer hands over (B × longest row), whatever a system actually computes.
The peak is the best of several large fp32 matmuls (2048², torch.mm) at the same thread count,
measured several times during the run (the best one is used): fraction of peak = useful GFLOP/s ÷
peak GFLOP/s, both measured in this process.

``--compile`` adds a third system, ``compiled``: this checkout's model under ``torch.compile(model,
dynamic=True)`` (what ``run.compile=true`` does to the trainer's training forward), same weights; its
first call, which compiles, is timed apart (``first_call_s``, every system) and is not in the medians.
``--bf16`` adds ``bf16``: the same model under bfloat16 autocast (what ``run.dtype=bfloat16`` does),
also reported against this CPU's bf16 matmul peak (``peak_gflops_bf16``); it pays only on CPUs with
native bf16 (AVX512-BF16, AMX), which is why the trainer's default stays float32.

Writes ``bench/results/train_step.json`` (``train_step_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine_info, matmul_peak_gflops, require_cpp_compiler, write_results  # noqa: E402
from tinyzero.algorithms import common  # noqa: E402
from tinyzero.algorithms.astarpo import astarpo_loss  # noqa: E402
from tinyzero.config import TaskConfig  # noqa: E402
from tinyzero.context import Turn, pad_batch, training_sequences  # noqa: E402
from tinyzero.environments import make_task  # noqa: E402
from tinyzero.models.tokenizer import CharTokenizer  # noqa: E402
from tinyzero.models.transformer import TransformerLM, model_config  # noqa: E402

# The commit before the training-path changes of bench/train_step.py's first version.
BASELINE_REV = "bdfa8b523ac256b3b0b617082ddb2743c184dd4c"
WORKLOADS = {  # name → (task, rollout.history)
    "frozenlake_episode": ("frozenlake", -1),
    "frozenlake_markov": ("frozenlake", 0),
    "countdown": ("countdown", 0),
}
BETA2, ENTROPY_COEF, LR = 0.2, 0.01, 5e-4  # configs/frozenlake.yaml values (cost does not depend on them)


# ----------------------------------------------------------------------------- inputs


def make_workload(name: str, trajectories: int) -> common.Batch:
    """The trainer's padded batch for ``trajectories`` demonstration episodes of the named workload."""
    task_name, history = WORKLOADS[name]
    tok, task, rng = CharTokenizer(), make_task(TaskConfig(name=task_name)), random.Random(0)
    seqs, owner = [], []
    for n, problem in enumerate(task.problems("train", trajectories)):
        turns = [
            Turn(obs, tok.encode(act) + [tok.eos_id]) for obs, act in task.behaviour_turns(problem, rng, 0.8)
        ]
        for s in training_sequences(tok, turns, history):
            seqs.append(s)
            owner.append(n)
    ids, attn, mask = pad_batch(seqs, tok.pad_id)
    return common.Batch(ids, attn, mask, torch.tensor(owner), trajectories)


def load_baseline(rev: str):
    """tinyzero/models/transformer.py at git revision ``rev`` as a separate module, or None if unavailable."""
    try:
        src = subprocess.run(
            ["git", "show", f"{rev}:tinyzero/models/transformer.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"baseline {rev[:10]} unavailable ({e.__class__.__name__}); timing ours only")
        return None
    path = Path(tempfile.mkdtemp()) / "transformer_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("transformer_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["transformer_baseline"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- measurement


def matmul_flops(model: torch.nn.Module) -> int:
    """Weights that take part in matmuls: every nn.Linear's weight, each tensor once (tied head once)."""
    seen = {id(m.weight): m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)}
    return sum(seen.values())


def step_flops(n_matmul: int, layers: int, d_model: int, lengths: list[int]) -> float:
    """Forward+backward FLOPs of sequences of the given lengths (formula in the module docstring)."""
    return float(sum(6 * n_matmul * t + 12 * layers * d_model * t * t for t in lengths))


def policy_loss(model: torch.nn.Module, batch: common.Batch, ref_traj, rewards, v_star) -> torch.Tensor:
    """A*PO's stage-2 loss on ``batch``, as ``astarpo.regression_loss`` computes it."""
    lp = common.trajectory_logprobs(model, batch)
    entropy = common.masked_mean(lp.entropy, batch.mask)
    return astarpo_loss(lp.traj, ref_traj, rewards, v_star, BETA2) - ENTROPY_COEF * entropy


class System:
    """One implementation under test: a model, its log-prob function, and an AdamW optimizer."""

    def __init__(self, name: str, model: torch.nn.Module, logprob_fn, bf16: bool = False) -> None:
        self.name, self.model, self.logprob_fn, self.bf16 = name, model, logprob_fn, bf16
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=LR)

    def loss(self, batch, targets) -> torch.Tensor:
        """The loss; ``bf16``: its forward under bfloat16 autocast, as ``run.dtype=bfloat16`` runs it
        (the backward, outside autocast, follows the dtypes the forward chose)."""
        with (
            mock.patch.object(common, "token_logprobs_and_entropy", self.logprob_fn),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16),
        ):
            return policy_loss(self.model, batch, *targets)

    def forward_backward(self, batch, targets) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        self.loss(batch, targets).backward()
        return time.perf_counter() - start

    def optimizer_step(self) -> float:
        start = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return time.perf_counter() - start


def check_agreement(systems: list[System], batch, targets) -> dict:
    """Loss and gradients of every system vs the first, same weights: the speed-up must not change maths."""
    out = {}
    ref_loss, ref_grads = None, None
    for s in systems:
        s.optimizer.zero_grad(set_to_none=True)
        loss = s.loss(batch, targets)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in s.model.parameters()])
        if ref_loss is None:
            ref_loss, ref_grads = loss.detach(), grads
            continue
        out[s.name] = dict(
            loss=float(ref_loss),
            loss_abs_diff=float((loss.detach() - ref_loss).abs()),
            grad_max_abs_diff=float((grads - ref_grads).abs().max()),
            grad_max_abs=float(ref_grads.abs().max()),
        )
    return out


def time_systems(systems: list[System], batch, targets, repeats: int) -> dict[str, dict]:
    """Forward+backward and optimizer seconds per system (lists), repeats interleaved across systems."""
    times = {s.name: dict(fwd_bwd=[], optimizer=[]) for s in systems}
    for r in range(repeats + 1):
        for s in systems:
            t_fb = s.forward_backward(batch, targets)
            t_opt = s.optimizer_step()
            if r > 0:  # r == 0 is the warm-up
                times[s.name]["fwd_bwd"].append(t_fb)
                times[s.name]["optimizer"].append(t_opt)
    return times


def top_ops(system: System, batch, targets, rows: int = 12) -> list[dict]:
    """torch.profiler (CPU) over one forward+backward: the ops with the most self CPU time."""
    system.forward_backward(batch, targets)  # warm
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        system.forward_backward(batch, targets)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [
        dict(
            op=e.key,
            self_ms=round(e.self_cpu_time_total / 1e3, 1),
            self_pct=round(100 * e.self_cpu_time_total / total, 1),
            calls=e.count,
        )
        for e in events[:rows]
    ]


# ----------------------------------------------------------------------------- main


def build_systems(preset: str, baseline, compile_too: bool = False, bf16: bool = False) -> list[System]:
    from tinyzero.models.transformer import token_logprobs_and_entropy

    torch.manual_seed(0)
    model = TransformerLM(model_config(preset, vocab_size=CharTokenizer().vocab_size, max_seq_len=512))
    systems = [System("ours", model, token_logprobs_and_entropy)]
    if bf16:  # the same module (same weights) under bfloat16 autocast, as run.dtype=bfloat16 does
        systems.append(System("bf16", model, token_logprobs_and_entropy, bf16=True))
    if compile_too:  # the same module (same weights) behind torch.compile, as run.compile=true does
        systems.append(System("compiled", torch.compile(model, dynamic=True), token_logprobs_and_entropy))
    if baseline is not None:
        old = baseline.TransformerLM(
            baseline.model_config(preset, vocab_size=model.config.vocab_size, max_seq_len=512)
        )
        old.load_state_dict(model.state_dict())
        systems.append(System("baseline", old, baseline.token_logprobs_and_entropy))
    return systems


def figures(times: list[float], flops_useful: float, flops_padded: float, real: int, padded: int) -> dict:
    """Median figures (what a shared machine gives) and best-of-N ones (closest to an idle machine)."""
    med, best = statistics.median(times), min(times)
    return dict(
        fwd_bwd_s=round(med, 4),
        fwd_bwd_s_best=round(best, 4),
        tok_s_real=round(real / med, 1),
        tok_s_padded=round(padded / med, 1),
        tok_s_real_best=round(real / best, 1),
        gflops_useful=round(flops_useful / med / 1e9, 2),
        gflops_padded=round(flops_padded / med / 1e9, 2),
        gflops_useful_best=round(flops_useful / best / 1e9, 2),
    )


def add_fractions(entry: dict, peak: float) -> None:
    """Fraction of the matmul peak, from the median and from the best time."""
    for s in ("ours", "baseline", "compiled", "bf16"):
        if s in entry:
            entry[s]["frac_of_peak"] = round(entry[s]["gflops_useful"] / peak, 4)
            entry[s]["frac_of_peak_best"] = round(entry[s]["gflops_useful_best"] / peak, 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run that finishes in under a minute")
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--trajectories", type=int, default=128, help="trajectories per batch")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline", default=BASELINE_REV, help="git revision to compare with, or 'none'")
    ap.add_argument("--compile", action="store_true", help="also time the model under torch.compile")
    ap.add_argument("--bf16", action="store_true", help="also time it under bfloat16 autocast (run.dtype)")
    ap.add_argument(
        "--profile", default="small:frozenlake_episode", help="preset:workload to profile, or 'none'"
    )
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/train_step[_quick].json)")
    args = ap.parse_args()
    if args.compile:
        require_cpp_compiler()
    name = "train_step_quick.json" if args.quick else "train_step.json"
    args.out = args.out or str(Path(__file__).parent / "results" / name)
    if args.quick:
        args.trajectories, args.repeats, args.profile = min(args.trajectories, 16), 1, "none"
        if args.workloads == ",".join(WORKLOADS):
            args.workloads = "frozenlake_episode"
    torch.set_num_threads(args.threads)
    baseline = None if args.baseline == "none" else load_baseline(args.baseline)
    profile_at = tuple(args.profile.split(":")) if args.profile != "none" else None

    peak_n = 1024 if args.quick else 2048  # quick: a cheaper (slightly lower) peak, never quoted
    peaks = [matmul_peak_gflops(peak_n)]
    results: dict = {"presets": {}}
    print(f"threads={torch.get_num_threads()} matmul peak {peaks[0]:.1f} GFLOP/s (fp32 {peak_n}², best of 5)")
    print(
        f"{'preset':<6} {'workload':<19} {'rows×T':>8} {'real':>6} {'system':<9}"
        f"{'fwd+bwd s':>9} {'tok/s':>8} {'pad tok/s':>9} {'GFLOP/s':>8} {'peak%':>6} {'best%':>6} "
        f"{'opt ms':>7}"
    )
    for preset in args.presets.split(","):
        systems = build_systems(preset, baseline, args.compile, args.bf16)
        model = systems[0].model
        cfg = model.config
        n_matmul = matmul_flops(model)
        results["presets"][preset] = {
            "params": model.num_params(),
            "matmul_params": n_matmul,
            "workloads": {},
        }
        for wl in args.workloads.split(","):
            batch = make_workload(wl, args.trajectories)
            g = torch.Generator().manual_seed(1)
            targets = tuple(torch.randn(batch.num_traj, generator=g) for _ in range(3))  # ref, r, V*
            lengths = batch.attn.sum(1).tolist()
            rows, width = batch.ids.shape
            real, padded = sum(lengths), rows * width
            f_useful = step_flops(n_matmul, cfg.n_layers, cfg.d_model, lengths)
            f_padded = step_flops(n_matmul, cfg.n_layers, cfg.d_model, [width] * rows)
            # First call of each system, kept out of the medians (it compiles, for the compiled one).
            first_call_s = {s.name: round(s.forward_backward(batch, targets), 2) for s in systems}
            agreement = check_agreement(systems, batch, targets)
            peaks.append(matmul_peak_gflops(peak_n))
            timing = time_systems(systems, batch, targets, args.repeats)
            entry = dict(
                rows=rows,
                padded_len=width,
                min_len=min(lengths),
                real_tokens=real,
                padded_tokens=padded,
                gflop_useful=round(f_useful / 1e9, 3),
                gflop_padded=round(f_padded / 1e9, 3),
                agreement_vs_ours=agreement,
                first_call_s=first_call_s,
            )
            peak_now = max(peaks)
            for s in systems:
                t = timing[s.name]
                entry[s.name] = figures(t["fwd_bwd"], f_useful, f_padded, real, padded)
                entry[s.name]["optimizer_s"] = round(statistics.median(t["optimizer"]), 5)
            add_fractions(entry, peak_now)
            for s in systems:
                e = entry[s.name]
                print(
                    f"{preset:<6} {wl:<19} {rows:>4}×{width:<3} {real:>6} {s.name:<9}{e['fwd_bwd_s']:>9.3f} "
                    f"{e['tok_s_real']:>8,.0f} {e['tok_s_padded']:>9,.0f} {e['gflops_useful']:>8.1f} "
                    f"{100 * e['frac_of_peak']:>5.1f}% {100 * e['frac_of_peak_best']:>5.1f}% "
                    f"{1e3 * e['optimizer_s']:>7.1f}"
                )
            med = {k: statistics.median(v["fwd_bwd"]) for k, v in timing.items()}
            if baseline is not None:
                best = {k: min(v["fwd_bwd"]) for k, v in timing.items()}
                entry["speedup_vs_baseline"] = round(med["baseline"] / med["ours"], 2)
                entry["speedup_vs_baseline_best"] = round(best["baseline"] / best["ours"], 2)
                print(
                    f"{'':<6} {wl:<19} speed-up vs baseline {entry['speedup_vs_baseline']:.2f}x "
                    f"(median), {entry['speedup_vs_baseline_best']:.2f}x (best)"
                )
            if "bf16" in timing:
                entry["speedup_bf16_vs_ours"] = round(med["ours"] / med["bf16"], 2)
                print(f"{'':<6} {wl:<19} bf16 autocast vs ours {entry['speedup_bf16_vs_ours']:.2f}x (median)")
            if "compiled" in timing:
                entry["speedup_compiled_vs_ours"] = round(med["ours"] / med["compiled"], 2)
                print(
                    f"{'':<6} {wl:<19} compiled vs ours {entry['speedup_compiled_vs_ours']:.2f}x (median); "
                    f"first call (compiling) {first_call_s['compiled']:.1f} s"
                )
            if profile_at == (preset, wl):
                entry["profile_top_ops"] = {s.name: top_ops(s, batch, targets) for s in systems}
                for s in systems:
                    print(f"  top ops ({s.name}, self CPU time of one forward+backward):")
                    for op in entry["profile_top_ops"][s.name]:
                        print(
                            f"    {op['op'][:48]:<48} {op['self_ms']:>9.1f} ms "
                            f"{op['self_pct']:>5.1f}% {op['calls']:>5}"
                        )
            results["presets"][preset]["workloads"][wl] = entry
    peaks.append(matmul_peak_gflops(peak_n))
    peak = max(peaks)
    for p in results["presets"].values():  # against the final best peak (measured again at the end)
        for entry in p["workloads"].values():
            add_fractions(entry, peak)
    results["peak_gflops"] = round(peak, 2)
    if args.bf16:  # what the bf16 system is measured against too: this CPU's bf16 matmul ceiling
        results["peak_gflops_bf16"] = round(matmul_peak_gflops(peak_n, dtype=torch.bfloat16), 2)
        print(f"bf16 matmul peak: {results['peak_gflops_bf16']:.1f} GFLOP/s")
    results["peak_measurements_gflops"] = [round(x, 2) for x in peaks]
    print(f"matmul peak used: {peak:.1f} GFLOP/s (best of {len(peaks)} measurements; fractions above use it)")
    results["config"] = dict(
        presets=args.presets.split(","),
        workloads=args.workloads.split(","),
        trajectories=args.trajectories,
        repeats=args.repeats,
        statistic="median (and best) of repeats, systems interleaved",
        peak_matmul=f"fp32 {peak_n}x{peak_n} torch.mm, best of 5, repeated {len(peaks)} times, max used",
        baseline_rev=args.baseline if baseline is not None else None,
        compiled=args.compile,
        bf16=args.bf16,
        quick=args.quick,
        flops_formula="per sequence of t tokens: 6*N_matmul*t + 12*L*d_model*t^2 (fwd+bwd)",
        tokens="tok_s_real counts non-pad tokens; tok_s_padded counts rows x longest row",
    )
    results["machine"] = machine_info()
    write_results(results, args.out)


if __name__ == "__main__":
    main()
