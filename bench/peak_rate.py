#!/usr/bin/env python3
"""What fp16 arithmetic this GPU reaches through PyTorch's own libraries: a
large matrix product (cuBLAS) and the convolutions and attention shapes that
dominate a Stable Diffusion UNet at batch 8 with CFG (cuDNN, autotuned). The
engine's share of the peak (bench_engine's of_peak column) is against a
fixed 790 TFLOP/s; these numbers say what is attainable on the card at hand,
shape by shape.

Usage (on the GPU machine): python3 bench/peak_rate.py [--json FILE]
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F
    if not torch.cuda.is_available():
        sys.exit("peak_rate.py: no CUDA device (this measures a GPU)")
    torch.backends.cudnn.benchmark = True
    dev, dt = "cuda", torch.float16

    def timed(fn, flops):
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(args.iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        s = start.elapsed_time(end) / 1e3 / args.iters
        return s, flops / s / 1e12

    rows = []

    def add(name, fn, flops):
        s, tflops = timed(fn, flops)
        rows.append({"shape": name, "ms": s * 1e3, "tflops": tflops})
        print(f"{name:58s} {s * 1e3:8.3f} ms {tflops:7.1f} TFLOP/s", flush=True)

    for n in (4096, 8192):
        a = torch.randn(n, n, device=dev, dtype=dt)
        b = torch.randn(n, n, device=dev, dtype=dt)
        add(f"matmul {n}x{n}x{n}", lambda: a @ b, 2 * n**3)
    # Batch 8 with CFG is 16 latents. SD1.5 at 512 px: 64x64 latents, 320 to
    # 1280 channels; SDXL at 1024 px: 128x128 latents, 320 to 1280 channels.
    for c, hw in ((320, 64), (640, 32), (1280, 16), (1280, 8), (320, 128), (640, 64), (1280, 32)):
        x = torch.randn(16, c, hw, hw, device=dev, dtype=dt)
        w = torch.randn(c, c, 3, 3, device=dev, dtype=dt)
        add(f"conv3x3 16x{c}x{hw}x{hw}", lambda: F.conv2d(x, w, padding=1), 2 * 16 * c * c * 9 * hw * hw)
    # Self-attention: 16 x heads x tokens x head_dim.
    for heads, tokens, hd in ((8, 4096, 40), (5, 4096, 64), (10, 4096, 64), (20, 1024, 64), (5, 9216, 64)):
        q = torch.randn(16, heads, tokens, hd, device=dev, dtype=dt)
        add(f"attention 16x{heads} heads x{tokens} tokens x{hd}", lambda: F.scaled_dot_product_attention(q, q, q),
            4 * 16 * heads * tokens * tokens * hd)
    print(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    if args.json:
        json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows},
                  open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
