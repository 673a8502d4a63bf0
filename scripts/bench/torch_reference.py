# The PyTorch side of `npm run bench`. Usage: python3 torch_reference.py SPEC_JSON
# SPEC_JSON: {"threads": 2, "min_time_s": 1.5, "workloads": [{"workload", "config", "batch", "height", "width",
# "tokens"}]}. Prints one JSON line per workload and batch: fwd_ms (no grad) and fwdbwd_ms (gradients of sum(output)
# w.r.t. every parameter, the sample and the context), medians after two warm-ups.
# Run it with OPENBLAS_NUM_THREADS=1: torch's own 2 OpenMP threads plus 2 OpenBLAS threads oversubscribe 2 cores.
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_torch import UNet2DConditionModel  # noqa: E402


def machine_ticks():
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


class BackgroundLoad:
    """Share of the machine's CPU used by other processes since creation (machine busy time minus our own)."""

    def __init__(self):
        self.busy, self.total = machine_ticks()
        self.own = time.process_time()

    def percent(self):
        busy, total = machine_ticks()
        own_ticks = (time.process_time() - self.own) * os.sysconf("SC_CLK_TCK")
        return max(0.0, 100.0 * (busy - self.busy - own_ticks) / max(1, total - self.total))


def median_ms(fn, min_time_s, min_runs=3, max_runs=30, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < min_time_s and len(times) < max_runs):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return statistics.median(times) * 1000, len(times)


def measure(item, min_time_s):
    torch.manual_seed(0)
    model = UNet2DConditionModel(item["config"])
    batch = item["batch"]
    generator = torch.Generator().manual_seed(1)
    in_channels = item["config"]["in_channels"]
    sample = torch.randn(batch, in_channels, item["height"], item["width"], generator=generator)
    context = torch.randn(batch, item["tokens"], item["config"]["cross_attention_dim"], generator=generator)
    timesteps = torch.tensor([10 if i % 2 == 0 else 500 for i in range(batch)])

    def forward():
        with torch.no_grad():
            model(sample, timesteps, context)

    grad_sample = sample.clone().requires_grad_(True)
    grad_context = context.clone().requires_grad_(True)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        grad_sample.grad = None
        grad_context.grad = None
        model(grad_sample, timesteps, grad_context).sum().backward()

    load = BackgroundLoad()
    fwd_ms, fwd_runs = median_ms(forward, min_time_s)
    fwdbwd_ms, fwdbwd_runs = median_ms(forward_backward, min_time_s)
    background = load.percent()
    return {
        "workload": item["workload"],
        "batch": batch,
        "engine": "pytorch",
        "fwd_ms": round(fwd_ms, 2),
        "fwdbwd_ms": round(fwdbwd_ms, 2),
        "runs": [fwd_runs, fwdbwd_runs],
        "params": sum(p.numel() for p in model.parameters()),
        "background_pct": round(background, 2),
        "detail": f"torch {torch.__version__}, {torch.get_num_threads()} threads, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}",
    }


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec.get("threads", 2))
    for item in spec["workloads"]:
        print(json.dumps(measure(item, spec.get("min_time_s", 1.5))), flush=True)


main()
