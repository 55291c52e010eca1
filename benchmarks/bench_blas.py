"""Large float32 products on this CPU: torch's matmul (MKL) against dcbench.blas (prints its figures).

Run from the repository root with the project importable (`pip install -e .` or `PYTHONPATH=.`):
    OMP_NUM_THREADS=1 python benchmarks/bench_blas.py            # the full VOC07 SVM sizes
    OMP_NUM_THREADS=1 python benchmarks/bench_blas.py --n 1000   # quicker

Shapes are the SVM solver's: the Gram X X^T (n x d, d = 9,216 pooled conv features) and a fixed
n x n kernel times P thin vectors, as one solver pass multiplies it. Each figure is the best of
`--repeats` runs, both sides in this process at torch's thread count.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from dcbench import blas


def best_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5011)
    parser.add_argument("--d", type=int, default=9216)
    parser.add_argument("--columns", default="20,80")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.n, args.d, generator=gen)
    print(f"torch threads {torch.get_num_threads()}, oneDNN {torch.backends.mkldnn.is_available()}, "
          f"n {args.n}, d {args.d}", flush=True)
    with blas.threads():
        t_torch = best_time(lambda: x @ x.T, args.repeats)
        t_ours = best_time(lambda: blas.gram(x), args.repeats)
        print(f"gram X X^T: torch {t_torch:.3f} s  numpy syrk {t_ours:.3f} s  ratio {t_torch / t_ours:.2f}x")
        k = torch.rand(args.n, args.n, generator=gen)
        k = (k + k.T) / 2
        packed = blas.Packed.of(k)
        for cols in (int(c) for c in args.columns.split(",")):
            thin(k, packed, torch.rand(cols, args.n, generator=gen), args.repeats)


def thin(k: torch.Tensor, packed: blas.Packed, m: torch.Tensor, repeats: int) -> None:
    t_torch = best_time(lambda: m @ k, repeats)
    t_np = best_time(lambda: blas.matmul(m, k), repeats)
    t_packed = best_time(lambda: packed.left(m), repeats)
    print(f"kernel x {m.shape[0]:3d} rows: torch {t_torch * 1e3:7.1f} ms  numpy {t_np * 1e3:7.1f} ms  "
          f"prepacked oneDNN {t_packed * 1e3:7.1f} ms  ratio vs torch {t_torch / t_packed:.2f}x", flush=True)

if __name__ == "__main__":
    main()
