"""How fast are the UNet's and the VAE's thin convolutions, and the gathers
ToMe's unmerge makes, in PyTorch on this GPU?

conv_in (4 -> 320 channels) and conv_out (320 -> 4) run on every DeepCache
partial step. cuDNN's NHWC tensor-core kernels want channel counts that are
multiples of 8: this times each convolution as it is and with its thin side
zero-padded to 8 channels, NHWC fp16, CUDA events (the median of 7 batches
of 50 calls after a warm-up), the kernels each launches, and ToMe's unmerge
gather (at::gather against index_select over rows). Run on the GPU machine:
python3 bench/head_convs.py (results: docs/bench/h200-2026-12-01-split/
head_convs.txt, on one H200 on 2026-12-01).
"""
import torch
from torch.profiler import ProfilerActivity, profile

import cuda_events


def timed(fn):
    return cuda_events.timed(fn, batches=7)  # the median of 7 batches of 50 calls


torch.backends.cudnn.benchmark = True
dev, f16 = "cuda", torch.float16
cl = torch.channels_last


def kernels(fn):
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return [e.name[:70] for e in prof.events() if e.device_type.name == "CUDA"]


def conv_case(name, shape, cout, pad_in=0, pad_out=0):
    x = torch.randn(shape, device=dev, dtype=f16).contiguous(memory_format=cl)
    cin = shape[1]
    w = torch.randn(cout, cin, 3, 3, device=dev, dtype=f16).contiguous(memory_format=cl)
    b = torch.randn(cout, device=dev, dtype=f16)
    base = lambda: torch.nn.functional.conv2d(x, w, b, padding=1)
    print(f"{name}: {tuple(shape)} -> {cout}")
    print(f"  as is, with bias     {timed(base):8.1f} us  {kernels(base)}")
    nob = lambda: torch.nn.functional.conv2d(x, w, None, padding=1)
    print(f"  as is, without bias  {timed(nob):8.1f} us")
    if pad_out:
        wp = torch.zeros(pad_out, cin, 3, 3, device=dev, dtype=f16)
        wp[:cout] = w
        wp = wp.contiguous(memory_format=cl)
        bp = torch.zeros(pad_out, device=dev, dtype=f16)
        bp[:cout] = b
        padded = lambda: torch.nn.functional.conv2d(x, wp, bp, padding=1)
        padded_nchw = lambda: torch.nn.functional.conv2d(x, wp, bp, padding=1)[:, :cout].contiguous()
        print(f"  out padded to {pad_out}     {timed(padded):8.1f} us  {kernels(padded)}")
        print(f"  ... then NCHW [:cout] {timed(padded_nchw):8.1f} us")
        asis_nchw = lambda: torch.nn.functional.conv2d(x, w, b, padding=1).contiguous()
        print(f"  as is, then NCHW     {timed(asis_nchw):8.1f} us")
        y = torch.nn.functional.conv2d(x, wp, bp, padding=1)[:, :cout]
        ref = torch.nn.functional.conv2d(x.float(), w.float(), b.float(), padding=1)
        print(f"  padded max |err| vs fp32 {float((y.float() - ref).abs().max()):.3g}, as is "
              f"{float((base().float() - ref).abs().max()):.3g}")
    if pad_in:
        xp = torch.zeros(shape[0], pad_in, shape[2], shape[3], device=dev, dtype=f16).contiguous(memory_format=cl)
        xp[:, :cin] = x
        wp = torch.zeros(cout, pad_in, 3, 3, device=dev, dtype=f16)
        wp[:, :cin] = w
        wp = wp.contiguous(memory_format=cl)
        padded = lambda: torch.nn.functional.conv2d(xp, wp, b, padding=1)
        print(f"  in padded to {pad_in} (input already 8 wide) {timed(padded):8.1f} us  {kernels(padded)}")
        x_nchw = torch.randn(shape, device=dev, dtype=f16)
        def pad_then():
            t = torch.nn.functional.pad(x_nchw, (0, 0, 0, 0, 0, pad_in - cin)).contiguous(memory_format=cl)
            return torch.nn.functional.conv2d(t, wp, b, padding=1)
        print(f"  NCHW input padded per call, then conv {timed(pad_then):8.1f} us")
        as_now = lambda: torch.nn.functional.conv2d(x_nchw.contiguous(memory_format=cl), w, b, padding=1)
        print(f"  NCHW input to NHWC per call, conv as is {timed(as_now):8.1f} us")


torch.manual_seed(0)
conv_case("UNet conv_out", (2, 320, 64, 64), 4, pad_out=8)
conv_case("UNet conv_in", (2, 4, 64, 64), 320, pad_in=8)
conv_case("VAE conv_out", (1, 128, 512, 512), 3, pad_out=8)
conv_case("VAE conv_in", (1, 4, 64, 64), 512, pad_in=8)

# ToMe unmerge: rows of [B, N - r, C] to [B, N, C] by a map.
B, N, C, r = 2, 4096, 320, 2048
x = torch.randn(B, N - r, C, device=dev, dtype=f16)
m = torch.randint(0, N - r, (B, N), device=dev)
g = lambda: x.gather(1, m.unsqueeze(-1).expand(B, N, C))
flat = (m + torch.arange(B, device=dev).unsqueeze(1) * (N - r)).reshape(-1)
i = lambda: x.reshape(-1, C).index_select(0, flat).view(B, N, C)
print(f"unmerge gather: at::gather {timed(g):.1f} us {kernels(g)}; index_select rows {timed(i):.1f} us {kernels(i)}")
assert torch.equal(g(), i())
# ToMe's unit rows: x / ||x||.
xm = torch.randn(B, N, C, device=dev, dtype=f16)
u = lambda: xm / xm.norm(2, -1, keepdim=True)
print(f"unit rows: norm + div {timed(u):.1f} us {kernels(u)}")
