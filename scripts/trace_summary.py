#!/usr/bin/env python3
"""Sums the GPU time of a PyTorch profiler trace (bench_engine --profile) by
the engine's named regions (worker/engine/core/profile_scope.h).

Each kernel, copy and memset is attributed to the regions open on the host
when it was launched (matched through the launch's correlation id). Prints:
the GPU time per region path (count, total, per occurrence); the UNet
forwards grouped by which blocks they ran (DeepCache's partial steps apart
from full ones); the costliest kernels of the regions asked for with --top;
with --classes, the GPU time by kind of kernel (matrix products,
convolutions, attention, normalisation, the rest), the split that says
whether a run is bound by its arithmetic or by memory passes.

Usage: trace_summary.py TRACE.json [--top REGION ...] [--depth N] [--classes]
Standard library only (runs on the GPU machine's python3).
"""
import argparse
import bisect
import collections
import json
import statistics
import sys

GPU_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}
LAUNCH_CATS = {"cuda_runtime", "cuda_driver"}


class Region:
    __slots__ = ("name", "start", "end", "parent", "gpu_us", "children")

    def __init__(self, name, start, end, parent):
        self.name, self.start, self.end, self.parent = name, start, end, parent
        self.gpu_us = 0.0
        self.children = []

    def path(self):
        names, r = [], self
        while r is not None:
            names.append(r.name)
            r = r.parent
        return "/".join(reversed(names))


# Kernel classes by name, first match wins (lower case). Attention before
# matrix products: fused attention kernels are built from GEMM templates.
KERNEL_CLASSES = (
    ("attention", ("fmha", "flash", "attention", "attn", "mha", "sdpa")),
    ("convolution", ("conv", "fprop", "dgrad", "wgrad", "winograd", "implicit")),
    ("matrix product", ("gemm", "nvjet", "cublas", "cutlass", "xmma", "matmul", "splitk")),
    ("normalisation", ("norm", "moments", "scale_shift", "welford")),
    ("softmax", ("softmax",)),
)


def kernel_class(name, cat):
    if cat != "kernel":
        return "copy / memset"
    low = name.lower()
    for cls, keys in KERNEL_CLASSES:
        if any(k in low for k in keys):
            return cls
    return "elementwise and other"


def load(path):
    try:
        with open(path) as f:
            trace = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"{path}: cannot read a profiler trace ({e})")
    events = trace.get("traceEvents") if isinstance(trace, dict) else None
    if not isinstance(events, list):
        sys.exit(f"{path}: no 'traceEvents' list (not a PyTorch profiler trace)")
    return events


def build_regions(events):
    """The user regions as a forest per host thread, properly nested."""
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and e.get("cat") == "user_annotation":
            by_thread[e.get("tid")].append(e)
    regions = {}
    for tid, evs in by_thread.items():
        evs.sort(key=lambda e: (e["ts"], -e.get("dur", 0)))
        stack, out = [], []
        for e in evs:
            start, end = e["ts"], e["ts"] + e.get("dur", 0)
            while stack and stack[-1].end < start:
                stack.pop()
            r = Region(e["name"], start, end, stack[-1] if stack else None)
            if r.parent is not None:
                r.parent.children.append(r)
            out.append(r)
            stack.append(r)
        regions[tid] = out
    return regions


def innermost(regions, starts, ts):
    """The innermost region open at host time ts (regions sorted by start)."""
    i = bisect.bisect_right(starts, ts) - 1
    if i < 0:
        return None
    # Regions nest, so the one open at ts is the latest one started before it
    # or one of that one's ancestors.
    r = regions[i]
    while r is not None and r.end < ts:
        r = r.parent
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--top", action="append", default=[],
                    help="list the costliest kernels of region paths containing this name")
    ap.add_argument("--depth", type=int, default=99, help="cut region paths after N names")
    ap.add_argument("--classes", action="store_true",
                    help="also sum the GPU time by kind of kernel (under each --top region too)")
    args = ap.parse_args()

    events = load(args.trace)
    regions = build_regions(events)
    starts = {tid: [r.start for r in rs] for tid, rs in regions.items()}
    launches = {}
    for e in events:
        if e.get("ph") == "X" and e.get("cat") in LAUNCH_CATS:
            c = (e.get("args") or {}).get("correlation")
            if c is not None:
                launches[c] = (e.get("tid"), e["ts"])

    per_path = collections.defaultdict(float)
    kernels = collections.defaultdict(lambda: collections.defaultdict(float))
    total = 0.0
    unattributed = 0.0
    class_of = {}  # kernel name (cut) -> class
    for e in events:
        if e.get("ph") != "X" or e.get("cat") not in GPU_CATS:
            continue
        dur = float(e.get("dur", 0))
        total += dur
        launch = launches.get((e.get("args") or {}).get("correlation"))
        r = None
        if launch is not None and launch[0] in regions:
            r = innermost(regions[launch[0]], starts[launch[0]], launch[1])
        if r is None:
            unattributed += dur
            path = "(outside regions)"
        else:
            path = r.path()
            x = r
            while x is not None:
                x.gpu_us += dur
                x = x.parent
        path = "/".join(path.split("/")[: args.depth])
        per_path[path] += dur
        kernels[path][e["name"][:90]] += dur
        class_of.setdefault(e["name"][:90], kernel_class(e["name"], e.get("cat")))

    counts = collections.Counter()
    for rs in regions.values():
        for r in rs:
            counts["/".join(r.path().split("/")[: args.depth])] += 1

    print(f"GPU time (kernels, copies, memsets): {total / 1e3:.3f} ms; outside regions {unattributed / 1e3:.3f} ms")
    # Inclusive time per path: a path's own kernels plus its descendants'.
    inclusive = collections.defaultdict(float)
    for path, us in per_path.items():
        parts = path.split("/")
        for k in range(1, len(parts) + 1):
            inclusive["/".join(parts[:k])] += us
    print(f"\n{'region path':70s} {'count':>7s} {'incl ms':>9s} {'own ms':>9s} {'incl us/each':>13s}")
    for path in sorted(inclusive, key=lambda p: -inclusive[p]):
        if inclusive[path] < 0.002 * total:
            continue
        n = counts.get(path, 0)
        each = inclusive[path] / n if n else float("nan")
        print(f"{path:70s} {n:7d} {inclusive[path] / 1e3:9.3f} {per_path.get(path, 0) / 1e3:9.3f} {each:13.1f}")

    # UNet forwards by how many resnets and transformers ran in them
    # (DeepCache's partial steps apart from full ones).
    def count(r, name):
        return sum((c.name == name) + count(c, name) for c in r.children)

    groups = collections.defaultdict(list)
    for rs in regions.values():
        for r in rs:
            if r.name == "unet":
                groups[(count(r, "resnet"), count(r, "transformer"))].append(r.gpu_us)
    if groups:
        print(f"\nUNet forwards by the resnets and transformers they ran:")
        for (nr, nt), xs in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
            print(f"  {len(xs):4d} x median {statistics.median(xs):9.1f} us  ({nr} resnets, {nt} transformers)")

    def print_classes(agg, title):
        by_class = collections.defaultdict(lambda: [0.0, 0])
        for k, us in agg.items():
            by_class[class_of.get(k, "elementwise and other")][0] += us
            by_class[class_of.get(k, "elementwise and other")][1] += 1
        s = sum(agg.values())
        print(f"\n{title} by kind of kernel ({s / 1e3:.3f} ms):")
        for cls, (us, n) in sorted(by_class.items(), key=lambda kv: -kv[1][0]):
            print(f"  {cls:24s} {us / 1e3:9.3f} ms {100 * us / s if s else 0:5.1f}%  ({n} distinct kernels)")

    if args.classes:
        everything = collections.defaultdict(float)
        for ks in kernels.values():
            for k, us in ks.items():
                everything[k] += us
        print_classes(everything, "all GPU time")

    for name in args.top:
        agg = collections.defaultdict(float)
        for path, ks in kernels.items():
            if name in path.split("/"):
                for k, us in ks.items():
                    agg[k] += us
        if args.classes:
            print_classes(agg, f"'{name}'")
        s = sum(agg.values())
        print(f"\nkernels under '{name}' ({s / 1e3:.3f} ms):")
        for k, us in sorted(agg.items(), key=lambda kv: -kv[1])[:25]:
            print(f"  {us / 1e3:8.3f} ms {100 * us / s if s else 0:5.1f}%  {k}")


if __name__ == "__main__":
    main()
