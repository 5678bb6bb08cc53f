"""Does PyTorch add a cuDNN convolution's bias in a pass of its own?

For the NHWC fp16 convolutions of SD1.5's UNet and VAE at 512 px: the time
of conv2d with its bias and without, in one process (CUDA events, 50 calls
each after a warm-up), and the kernels each launches (profiler); then what
the bias costs added afterwards (4-d or row-wise broadcast) against a plain
residual add of the same size. Run on the GPU machine:
python3 bench/conv_bias.py (results: docs/bench/h200-2026-12-01-kernels/
conv_bias.txt and bias_variants.txt; docs/engine-gpu.md).
"""
import torch
from torch.profiler import ProfilerActivity, profile

from cuda_events import timed

torch.backends.cudnn.benchmark = True
CASES = [  # (input NCHW, output channels, kernel): where they run
    ((2, 320, 64, 64), 320, 3, "UNet 4096-token resnet conv"),
    ((2, 640, 64, 64), 320, 3, "UNet up.3 resnet conv1 (concatenated input)"),
    ((2, 1280, 8, 8), 1280, 3, "UNet 64-token resnet conv"),
    ((1, 512, 128, 128), 512, 3, "VAE 128 px conv"),
    ((1, 256, 256, 256), 256, 3, "VAE 256 px conv"),
    ((1, 128, 512, 512), 128, 3, "VAE 512 px conv"),
]


def kernels(fn):
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None)
        rows.append((e.key[:70], t if t is not None else e.cuda_time_total))
    return rows


print(torch.cuda.get_device_name(), "torch", torch.__version__, "cudnn", torch.backends.cudnn.version())
for shape, cout, k, where in CASES:
    opts = dict(device="cuda", dtype=torch.half)
    x = torch.randn(*shape, **opts).to(memory_format=torch.channels_last)
    w = torch.randn(cout, shape[1], k, k, **opts).to(memory_format=torch.channels_last) * 0.02
    b = torch.randn(cout, **opts)
    with_bias = timed(lambda: torch.nn.functional.conv2d(x, w, b, padding=k // 2))
    without = timed(lambda: torch.nn.functional.conv2d(x, w, None, padding=k // 2))
    print(f"{where}: {shape} -> {cout}: with bias {with_bias:.1f} us, without {without:.1f} us, "
          f"bias costs {with_bias - without:.1f} us ({with_bias / without:.2f}x)")
    for name, t in kernels(lambda: torch.nn.functional.conv2d(x, w, b, padding=k // 2)):
        print(f"    {t:9.1f} us  {name}")

print("bias added after the convolution (us):")
for shape, cout, k, where in CASES:
    opts = dict(device="cuda", dtype=torch.half)
    x = torch.randn(*shape, **opts).to(memory_format=torch.channels_last)
    w = torch.randn(cout, shape[1], k, k, **opts).to(memory_format=torch.channels_last) * 0.02
    b = torch.randn(cout, **opts)
    y = torch.nn.functional.conv2d(x, w, None, padding=k // 2)
    r = torch.randn_like(y)
    rows = lambda z: z.permute(0, 2, 3, 1).view(-1, cout)  # NHWC as [pixels, channels]
    print(f"{shape} -> {cout}: bias4d {timed(lambda: y.add_(b.view(1, -1, 1, 1))):.1f}",
          f"bias2d {timed(lambda: rows(y).add_(b)):.1f}",
          f"resid {timed(lambda: torch.add(r, y)):.1f}",
          f"resid+bias2d {timed(lambda: rows(torch.add(r, y)).add_(b)):.1f}")
