"""CUDA-event timing shared by the PyTorch microbenchmarks in bench/ (run on
the GPU machine; the script's folder is on sys.path)."""
import statistics

import torch


def timed(fn, calls=50, batches=1):
    """Microseconds per call of fn: after 5 warm-up calls, `batches` batches
    of `calls` back-to-back calls between two CUDA events; the median batch."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(batches):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        torch.cuda.synchronize()
        runs.append(start.elapsed_time(end) / calls * 1000.0)
    return statistics.median(runs)
