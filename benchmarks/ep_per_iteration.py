"""Per-iteration time of extremal_perturbation, xaifast vs TorchRay (224x224, near-free model).

Usage: .venv/bin/python benchmarks/ep_per_iteration.py   (needs torchray installed)
Each call builds the pyramid once and runs max_iter=5 iterations; median of 3 calls.
"""

import time
import warnings

import torch
import torch.nn as nn

warnings.simplefilter("ignore")
torch.set_num_threads(2)
from xaifast.attribution.extremal_perturbation import extremal_perturbation as xep
from torchray.attribution.extremal_perturbation import extremal_perturbation as tep
class Cheap(nn.Module):
    def __init__(s):
        super().__init__(); torch.manual_seed(0); s.fc = nn.Linear(3 * 28 * 28, 10)
    def forward(s, x): return s.fc(x[:, :, ::8, ::8].flatten(1))
m = Cheap().eval(); x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
def per_iter(fn, areas, iters=5, reps=3):
    ts = []
    for _ in range(reps):
        s = time.perf_counter(); fn(m, x, 3, areas=areas, max_iter=iters); ts.append((time.perf_counter() - s) / iters)
    ts.sort(); return ts[len(ts) // 2] * 1e3
for areas in ([0.1], [0.05, 0.1, 0.2, 0.3]):
    a = per_iter(tep, areas); b = per_iter(xep, areas)
    print(f"areas={len(areas)}: torchray {a:.1f} ms/iter, xaifast {b:.1f} ms/iter, speed-up {a / b:.1f}x")
