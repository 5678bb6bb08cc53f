#!/usr/bin/env python3
"""Stock diffusers, and the original acceleration libraries applied to it, on
the same random full-size models that bench/bench_engine times: the reference
column for the engine's numbers.

What it measures: for each variant (baseline; DeepCache, ToMe and T-GATE as
their authors' libraries apply them to a diffusers pipeline) and each batch
size, full text-to-image calls of StableDiffusionPipeline (sd15, sd21) or
StableDiffusionXLPipeline (sdxl) in float16 on CUDA: DDIM (built from the
folder's scheduler config), classifier-free guidance 7.5, the folder's native
size (unet sample_size x VAE scale factor), output_type="np" so the prompt
encoding, the VAE decode and the post-processing are in the time, as they are
in the engine's. Every image of a batch has its own prompt (8 short distinct
ones) and its own seeded generator. Per (variant, batch): one warm-up call,
then --rounds timed calls with torch.cuda.synchronize() on both sides; the
median seconds per call and per image, the speedup against the baseline at
that batch, and the peak of torch.cuda.max_memory_allocated() over the
warm-up and the timed calls (reset_peak_memory_stats before).

Run it on the GPU machine, from the repository root:

    source scripts/diffusers-env.sh        # puts .device/*-src.tar.gz on PYTHONPATH
    build-gpu/diffsearch synth-model --like sd15 --full-size --dtype fp16 --out /tmp/sd15
    python3 bench/diffusers_bench.py --model /tmp/sd15 --kind sd15 \
        --batch 1 --batch 8 --steps 50 --rounds 3 --json $OUT/diffusers_sd15.json

    --variant NAME                a preset (default: all of them, see --list-variants)
    --variant NAME=KIND:K=V,...   e.g. deepcache_i2_b0=deepcache:cache_interval=2,cache_branch_id=0,
                                  tome_0.3=tome:ratio=0.3, tgate_gate10=tgate:gate_step=10,sp_interval=5
    --vae-upcast off              decode in float16 even where the VAE config asks for
                                  float32 (force_upcast; stock SDXL upcasts)
    --cudnn-benchmark             cuDNN autotuning (off in stock diffusers)

The acceleration libraries are not installed (the GPU machine has no network
and no pip): their repositories (horseee/DeepCache, dbolya/tomesd,
HaozheLiu-ST/T-GATE) were fetched on the CPU machine and each one's Python
package was packed with `git archive` into .device/{deepcache,tomesd,tgate}-src
.tar.gz, next to .device/diffusers-src.tar.gz (diffusers main); .device/ is
git-ignored and travels with the working tree. scripts/diffusers-env.sh
unpacks them into /tmp/pysrc. This script only imports them; the commit each
tarball was made from goes into the JSON. Libraries written against older
diffusers may break on main: every variant runs in its own try/except and a
failure is recorded as "failed: <reason>", so the baseline always comes out.

The numbers go to docs/engine-gpu.md (the "diffusers" columns), the raw JSON
to docs/bench/.
"""

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import tarfile
import time
import traceback
import types

PROMPTS = [
    "a red fox in fresh snow, morning light",
    "an old lighthouse on a rocky coast at dusk",
    "a bowl of ramen on a wooden table, steam rising",
    "a watercolor painting of a mountain village",
    "a vintage bicycle leaning on a brick wall",
    "a cat sleeping on a stack of books",
    "a futuristic city skyline at night, neon signs",
    "a field of sunflowers under a stormy sky",
]

# name -> (kind, params). The names and parameters are bench_engine's (see
# scripts/gpu-check.sh) so that the two tables line up.
PRESETS = {
    "baseline": ("baseline", {}),
    "deepcache_i3_b0": ("deepcache", {"cache_interval": 3, "cache_branch_id": 0}),
    "deepcache_i5_b0": ("deepcache", {"cache_interval": 5, "cache_branch_id": 0}),
    "tome_0.5": ("tome", {"ratio": 0.5}),
    "tgate_gate20": ("tgate", {"gate_step": 20}),
}

KINDS = ("baseline", "deepcache", "tome", "tgate")

# T-GATE's loader defaults (tgate/SD.py, tgate/SDXL.py).
TGATE_DEFAULTS = {"gate_step": 10, "sp_interval": 5, "fi_interval": 1, "warm_up": 2}
TGATE_KEYS = set(TGATE_DEFAULTS)
DEEPCACHE_KEYS = {"cache_interval", "cache_branch_id", "skip_mode"}
TOME_KEYS = {"ratio", "max_downsample", "sx", "sy", "use_rand", "merge_attn", "merge_crossattn", "merge_mlp"}
KIND_KEYS = {"baseline": set(), "deepcache": DEEPCACHE_KEYS, "tome": TOME_KEYS, "tgate": TGATE_KEYS}

LIBRARY_TARBALLS = {  # kind -> tarball in .device/ (its python package)
    "deepcache": "deepcache-src.tar.gz",
    "tome": "tomesd-src.tar.gz",
    "tgate": "tgate-src.tar.gz",
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- variants


def parse_value(text):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_variant(text):
    """'name' (a preset) or 'name=kind:key=value,...' -> dict(name, kind, params)."""
    if "=" not in text.split(":", 1)[0]:
        if text not in PRESETS:
            raise ValueError(f"--variant {text!r}: not a preset ({', '.join(PRESETS)}); "
                             "or give NAME=KIND:KEY=VALUE,...")
        kind, params = PRESETS[text]
        return {"name": text, "kind": kind, "params": dict(params)}
    name, spec = text.split("=", 1)
    kind, _, rest = spec.partition(":")
    kind = kind.strip()
    if not name or kind not in KINDS:
        raise ValueError(f"--variant {text!r}: expected NAME=KIND:KEY=VALUE,... with KIND one of {', '.join(KINDS)}")
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        if "=" not in item:
            raise ValueError(f"--variant {text!r}: {item!r} is not KEY=VALUE")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in KIND_KEYS[kind]:
            raise ValueError(f"--variant {text!r}: {kind} takes {', '.join(sorted(KIND_KEYS[kind])) or 'no parameters'}")
        params[key] = parse_value(value.strip())
    return {"name": name, "kind": kind, "params": params}


# ---------------------------------------------------------------- sources


def tarball_commit(path):
    """The commit `git archive` wrote into the tarball's pax header, or None."""
    try:
        with tarfile.open(path) as tar:
            return tar.pax_headers.get("comment")
    except Exception:
        return None


def describe_sources(device_dir):
    out = {}
    if not os.path.isdir(device_dir):
        return out
    for name in sorted(os.listdir(device_dir)):
        if name.endswith("-src.tar.gz"):
            path = os.path.join(device_dir, name)
            out[name] = {"bytes": os.path.getsize(path), "commit": tarball_commit(path)}
    return out


def module_file(name):
    mod = sys.modules.get(name)
    return getattr(mod, "__file__", None) if mod else None


# ---------------------------------------------------------------- helpers


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def short_error(exc):
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def import_tgate_loader(xl):
    """TgateSDLoader / TgateSDXLLoader. tgate/__init__.py imports every loader
    (PixArt, SVD, ...); if one of those no longer imports on diffusers main,
    load the one module needed with the package's __init__ bypassed."""
    sub, attr = ("SDXL", "TgateSDXLLoader") if xl else ("SD", "TgateSDLoader")
    try:
        mod = importlib.import_module("tgate")
        return getattr(mod, attr), None
    except Exception as exc:  # noqa: BLE001 - fall back below, keep the reason
        first = short_error(exc)
    for key in [k for k in sys.modules if k == "tgate" or k.startswith("tgate.")]:
        del sys.modules[key]
    spec = importlib.util.find_spec("tgate")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"tgate not found on sys.path ({first})")
    pkg = types.ModuleType("tgate")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__file__ = getattr(spec, "origin", None)
    sys.modules["tgate"] = pkg
    try:
        mod = importlib.import_module(f"tgate.{sub}")
    except Exception as exc:  # noqa: BLE001
        raise ImportError(f"`import tgate` failed ({first}), and tgate.{sub} alone too ({short_error(exc)})") from exc
    return getattr(mod, attr), f"`import tgate` failed ({first}); imported tgate.{sub} on its own"


# ---------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args, torch):
        self.args = args
        self.torch = torch
        self.pipe = None
        self.kind = args.kind
        self.variant_files = None
        self.pristine_forwards = set()

    # ---- loading

    def detect_kind(self):
        with open(os.path.join(self.args.model, "model_index.json")) as f:
            index = json.load(f)
        cls = index.get("_class_name", "")
        if cls == "StableDiffusionXLPipeline":
            detected = "sdxl"
        elif cls == "StableDiffusionPipeline":
            detected = "sd"
            try:
                with open(os.path.join(self.args.model, "unet", "config.json")) as f:
                    dim = json.load(f).get("cross_attention_dim")
                detected = "sd21" if dim == 1024 else "sd15"
            except Exception:
                pass
        else:
            detected = None
        if self.kind is None:
            if detected is None or detected == "sd":
                raise SystemExit(f"--kind not given and model_index.json's _class_name {cls!r} does not tell it")
            self.kind = detected
        elif detected and (detected == "sdxl") != (self.kind == "sdxl"):
            log(f"warning: --kind {self.kind} but model_index.json says {cls}")
        return cls

    def weight_variant(self):
        """'fp16' when the weights are *.fp16.safetensors (diffusers' variant
        naming), else None (synth-model writes plain names)."""
        unet_dir = os.path.join(self.args.model, "unet")
        names = os.listdir(unet_dir) if os.path.isdir(unet_dir) else []
        plain = [n for n in names if n in ("diffusion_pytorch_model.safetensors",
                                           "diffusion_pytorch_model.safetensors.index.json")]
        for v in ("fp16", "bf16"):
            if any(n.startswith("diffusion_pytorch_model.") and f".{v}." in n for n in names) and not plain:
                return v
        return None

    def load(self):
        torch = self.torch
        import diffusers
        from diffusers import DDIMScheduler

        self.model_class = self.detect_kind()
        self.variant_files = self.weight_variant()
        common = {"torch_dtype": torch.float16, "use_safetensors": True}
        if self.variant_files:
            common["variant"] = self.variant_files
        if self.kind == "sdxl":
            cls = diffusers.StableDiffusionXLPipeline
            attempts = [dict(common, add_watermarker=False), dict(common)]
        else:
            cls = diffusers.StableDiffusionPipeline
            extra = {"safety_checker": None, "requires_safety_checker": False, "feature_extractor": None}
            attempts = [dict(common, **extra), dict(common, safety_checker=None, requires_safety_checker=False)]
        t0 = time.perf_counter()
        err = None
        for kw in attempts:
            try:
                self.pipe = cls.from_pretrained(self.args.model, **kw)
                break
            except TypeError as exc:  # an extra keyword this diffusers does not take
                err = exc
                log(f"from_pretrained({', '.join(sorted(kw))}) failed: {short_error(exc)}; retrying")
        if self.pipe is None:
            raise err
        pipe = self.pipe
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        if self.args.vae_upcast == "off" and getattr(pipe.vae.config, "force_upcast", False):
            pipe.vae.register_to_config(force_upcast=False)
        pipe.to("cuda")
        pipe.set_progress_bar_config(disable=True)
        self.load_s = time.perf_counter() - t0
        self.size = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
        # Modules that carry their own `forward` before any variant touched them
        # (none, normally): restore() leaves those alone.
        self.pristine_forwards = {id(m) for m in pipe.unet.modules() if "forward" in m.__dict__}
        procs = sorted({type(p).__name__ for p in pipe.unet.attn_processors.values()})
        self.model_info = {
            "class": type(pipe).__name__,
            "model_index_class": self.model_class,
            "weights_variant": self.variant_files,
            "height": self.size,
            "width": self.size,
            "scheduler": type(pipe.scheduler).__name__,
            "scheduler_config": {k: v for k, v in dict(pipe.scheduler.config).items()
                                 if isinstance(v, (int, float, str, bool, type(None), list))},
            "vae_force_upcast": bool(getattr(pipe.vae.config, "force_upcast", False)),
            "attn_processors": procs,
            "unet_params": sum(p.numel() for p in pipe.unet.parameters()),
            "load_s": self.load_s,
        }
        log(f"loaded {self.model_info['class']} from {self.args.model} in {self.load_s:.1f} s: "
            f"{self.size}x{self.size}, weights variant {self.variant_files}, "
            f"unet {self.model_info['unet_params'] / 1e6:.0f}M params, attention {procs}, "
            f"VAE force_upcast {self.model_info['vae_force_upcast']}")

    # ---- variants

    def apply(self, variant):
        """Patch the pipeline. Returns (call, undo, notes): call(**kwargs) runs
        one generation, undo() takes the patch off."""
        pipe, kind, params = self.pipe, variant["kind"], variant["params"]
        notes = []
        if kind == "baseline":
            return (lambda **kw: pipe(**kw)), (lambda: None), notes
        if kind == "deepcache":
            from DeepCache import DeepCacheSDHelper
            helper = DeepCacheSDHelper(pipe=pipe)
            helper.set_params(**params)
            helper.enable()
            return (lambda **kw: pipe(**kw)), helper.disable, notes
        if kind == "tome":
            import tomesd
            tomesd.apply_patch(pipe, **params)
            patched = sum(1 for m in pipe.unet.modules() if type(m).__name__ == "ToMeBlock")
            if patched == 0:
                raise RuntimeError("tomesd patched no BasicTransformerBlock")
            notes.append(f"{patched} transformer blocks patched")
            return (lambda **kw: pipe(**kw)), (lambda: tomesd.remove_patch(pipe)), notes
        if kind == "tgate":
            loader, note = import_tgate_loader(self.kind == "sdxl")
            if note:
                notes.append(note)
            loader(pipe)
            if not hasattr(pipe, "tgate"):
                raise RuntimeError(f"{loader.__name__} did not add pipe.tgate")
            gate = dict(TGATE_DEFAULTS, **params)

            def undo():
                if "tgate" in pipe.__dict__:
                    del pipe.__dict__["tgate"]
            return (lambda **kw: pipe.tgate(**kw, **gate)), undo, notes
        raise ValueError(f"unknown kind {kind}")

    def restore(self):
        """Whatever a library left behind after its own undo (or after failing
        half-way): per-instance forwards (DeepCache, T-GATE's register_forward),
        ToMe's block classes and hooks, T-GATE's attention caches. Returns how
        many things had to be put back."""
        fixed = 0
        for m in self.pipe.unet.modules():
            if type(m).__name__ == "ToMeBlock" and hasattr(type(m), "_parent"):
                m.__class__ = type(m)._parent
                fixed += 1
            info = m.__dict__.get("_tome_info")
            if isinstance(info, dict):
                for hook in info.get("hooks", []):
                    try:
                        hook.remove()
                    except Exception:
                        pass
                del m.__dict__["_tome_info"]
            if "forward" in m.__dict__ and id(m) not in self.pristine_forwards:
                f = m.__dict__.pop("forward")
                # DeepCache's disable() puts the original bound method back as
                # an instance attribute: harmless, dropped without counting.
                if not (getattr(f, "__self__", None) is m and
                        getattr(f, "__func__", None) is getattr(type(m).forward, "__func__", type(m).forward)):
                    fixed += 1
            if "cache" in m.__dict__ and type(m).__name__ == "Attention":
                del m.__dict__["cache"]
        if "tgate" in self.pipe.__dict__:
            del self.pipe.__dict__["tgate"]
        return fixed

    # ---- timing

    def call_kwargs(self, batch):
        torch = self.torch
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
        gens = [torch.Generator(device="cuda").manual_seed(self.args.seed + i) for i in range(batch)]
        return {
            "prompt": prompts,
            "height": self.size,
            "width": self.size,
            "num_inference_steps": self.args.steps,
            "guidance_scale": self.args.guidance,
            "generator": gens,
            "output_type": "np",
        }

    def run_one(self, call, batch):
        torch = self.torch
        kwargs = self.call_kwargs(batch)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = call(**kwargs)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        images = out.images if hasattr(out, "images") else out[0]
        return dt, images

    def time_variant_batch(self, call, batch):
        torch = self.torch
        import numpy as np

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        warm_s, images = self.run_one(call, batch)
        times = []
        for _ in range(self.args.rounds):
            dt, images = self.run_one(call, batch)
            times.append(dt)
        arr = np.asarray(images)
        med = median(times)
        return {
            "warmup_s": warm_s,
            "times_s": times,
            "median_s": med,
            "median_s_per_image": med / batch,
            "min_s": min(times) if times else float("nan"),
            "peak_allocated_bytes": torch.cuda.max_memory_allocated(),
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
            "output_shape": list(arr.shape),
            "output_finite": bool(np.isfinite(arr).all()) if arr.dtype.kind == "f" else None,
        }


def versions(torch):
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "cuda": getattr(torch.version, "cuda", None)}
    try:
        out["cudnn"] = torch.backends.cudnn.version()
    except Exception:
        pass
    for name in ("diffusers", "transformers", "accelerate", "safetensors", "huggingface_hub", "numpy"):
        try:
            mod = importlib.import_module(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception as exc:  # noqa: BLE001
            out[name] = f"unavailable: {short_error(exc)}"
    out["diffusers_file"] = module_file("diffusers")
    try:
        out["gpu"] = torch.cuda.get_device_name()
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        out["gpu_memory_bytes"] = props.total_memory
    except Exception as exc:  # noqa: BLE001
        out["gpu"] = f"unavailable: {short_error(exc)}"
    return out


def print_table(report):
    base = {r["batch"]: r["median_s"] for r in report["results"]
            if r["variant"] == "baseline" and "median_s" in r}
    head = ("kind", "batch", "variant", "median s/call", "s/image", "speedup", "peak GiB")
    rows = []
    for r in report["results"]:
        if "median_s" in r:
            b = base.get(r["batch"])
            speed = f"{b / r['median_s']:.2f}x" if b and r["median_s"] > 0 else "-"
            rows.append((report["kind"], str(r["batch"]), r["variant"], f"{r['median_s']:.3f}",
                         f"{r['median_s_per_image']:.4f}", speed, f"{r['peak_allocated_bytes'] / 2**30:.2f}"))
        else:
            rows.append((report["kind"], str(r["batch"]), r["variant"], r.get("status", "failed")))
    widths = [max([len(h)] + [len(row[i]) for row in rows if len(row) == len(head)]) for i, h in enumerate(head)]
    widths[2] = max([widths[2]] + [len(row[2]) for row in rows])

    def fmt(row):
        cells = []
        for i, c in enumerate(row):
            if len(row) < len(head) and i == len(row) - 1:
                cells.append(c)  # a failure's reason, unpadded
            else:
                cells.append(c.ljust(widths[i]) if i in (0, 2) else c.rjust(widths[i]))
        return "  ".join(cells).rstrip()

    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(fmt(row))
    sys.stdout.flush()


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="diffusers folder (diffsearch synth-model --full-size --dtype fp16)")
    p.add_argument("--kind", choices=("sd15", "sd21", "sdxl"),
                   help="the model's family (default: from model_index.json and the UNet config)")
    p.add_argument("--batch", type=int, action="append", help="images per call; repeat (default 1)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3, help="timed calls per (variant, batch) after one warm-up")
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--seed", type=int, default=0, help="image i of a batch uses seed + i")
    p.add_argument("--variant", action="append", metavar="NAME[=KIND:K=V,...]",
                   help="repeat; default: every preset. baseline is always run first")
    p.add_argument("--vae-upcast", choices=("config", "off"), default="config",
                   help="'config': as the VAE config's force_upcast says (stock); 'off': decode in float16")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    p.add_argument("--json", help="write the results here (rewritten after every measurement)")
    p.add_argument("--device-dir", default=os.path.join(os.path.dirname(here), ".device"),
                   help="where the *-src.tar.gz came from (their commits go into the JSON)")
    p.add_argument("--list-variants", action="store_true", help="print the variants and exit (no GPU needed)")
    args = p.parse_args(argv)

    try:
        variants = [parse_variant(v) for v in (args.variant or list(PRESETS))]
    except ValueError as exc:
        p.error(str(exc))
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        p.error("--variant: a name given twice")
    if "baseline" not in names:
        variants.insert(0, parse_variant("baseline"))
    else:  # baseline first: a library that fails to undo its patch cannot spoil it
        variants.sort(key=lambda v: v["name"] != "baseline")
    batches = args.batch or [1]
    if any(b < 1 for b in batches) or args.rounds < 1 or args.steps < 1:
        p.error("--batch, --rounds and --steps must be positive")

    if args.list_variants:
        for v in variants:
            print(f"{v['name']:<20} {v['kind']:<10} {json.dumps(v['params'])}")
        return 0
    if not args.model:
        p.error("--model is required")
    if not os.path.isfile(os.path.join(args.model, "model_index.json")):
        p.error(f"{args.model}: no model_index.json")

    try:
        import torch
    except ImportError as exc:
        raise SystemExit(f"torch does not import: {exc}")
    try:
        import diffusers  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"diffusers does not import ({short_error(exc)}); "
                         "run `source scripts/diffusers-env.sh` from the repository root first")
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    try:  # random weights in fp16 make NaNs; numpy's cast warnings are noise here
        import warnings
        warnings.filterwarnings("ignore", message="invalid value encountered in cast")
        diffusers.utils.logging.set_verbosity_error()
    except Exception:
        pass

    bench = Bench(args, torch)
    bench.load()
    report = {
        "tool": "bench/diffusers_bench.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "kind": bench.kind,
        "model_dir": os.path.abspath(args.model),
        "model": bench.model_info,
        "settings": {"steps": args.steps, "rounds": args.rounds, "guidance_scale": args.guidance,
                     "batches": batches, "seed": args.seed, "output_type": "np", "dtype": "float16",
                     "vae_upcast": args.vae_upcast, "cudnn_benchmark": args.cudnn_benchmark,
                     "prompts": PROMPTS,
                     "timing": "one warm-up call, then rounds; torch.cuda.synchronize() around each call; "
                               "median wall seconds"},
        "versions": versions(torch),
        "sources": describe_sources(args.device_dir),
        "variants": [],
        "results": [],
    }

    def save():
        if args.json:
            tmp = args.json + ".tmp"
            with open(tmp, "w") as f:
                json.dump(report, f, indent=2, default=str)
            os.replace(tmp, args.json)

    log(f"GPU {report['versions'].get('gpu')}, torch {torch.__version__}, "
        f"diffusers {report['versions'].get('diffusers')} ({report['versions'].get('diffusers_file')})")
    save()

    for v in variants:
        entry = {"name": v["name"], "kind": v["kind"], "params": v["params"], "status": "ok", "notes": []}
        report["variants"].append(entry)
        call = undo = None
        try:
            call, undo, notes = bench.apply(v)
            entry["notes"] += notes
        except Exception as exc:  # noqa: BLE001
            entry["status"] = f"failed: {short_error(exc)}"
            entry["traceback"] = traceback.format_exc(limit=6)
            log(f"[{v['name']}] apply {entry['status']}")
        lib = LIBRARY_TARBALLS.get(v["kind"])
        if lib:
            mod = {"deepcache": "DeepCache", "tome": "tomesd", "tgate": "tgate"}[v["kind"]]
            entry["library"] = {"tarball": lib, "commit": report["sources"].get(lib, {}).get("commit"),
                                "module_file": module_file(mod)}
        for batch in batches:
            row = {"variant": v["name"], "kind": v["kind"], "batch": batch}
            if call is None:
                row["status"] = entry["status"]
            else:
                try:
                    row.update(bench.time_variant_batch(call, batch))
                    row["status"] = "ok"
                    log(f"[{v['name']}] batch {batch}: median {row['median_s']:.3f} s "
                        f"({row['median_s_per_image']:.4f} s/image), warm-up {row['warmup_s']:.2f} s, "
                        f"peak {row['peak_allocated_bytes'] / 2**30:.2f} GiB")
                except Exception as exc:  # noqa: BLE001
                    row["status"] = f"failed: {short_error(exc)}"
                    row["traceback"] = traceback.format_exc(limit=8)
                    log(f"[{v['name']}] batch {batch} {row['status']}")
                    try:
                        torch.cuda.synchronize()
                        torch.cuda.empty_cache()
                    except Exception as exc2:  # noqa: BLE001 - a broken context: later rows will say so
                        row["status"] += f" (then {short_error(exc2)})"
            report["results"].append(row)
            save()
        if undo is not None:
            try:
                undo()
            except Exception as exc:  # noqa: BLE001
                entry["notes"].append(f"undo failed: {short_error(exc)}")
        try:
            fixed = bench.restore()
            if fixed:
                entry["notes"].append(f"restore(): {fixed} patched modules put back that the library's undo left")
        except Exception as exc:  # noqa: BLE001
            entry["notes"].append(f"restore failed: {short_error(exc)}")
        torch.cuda.empty_cache()
        save()

    for r in report["results"]:
        base = next((b for b in report["results"] if b["variant"] == "baseline" and b["batch"] == r["batch"]
                     and "median_s" in b), None)
        if base and "median_s" in r and r["median_s"] > 0:
            r["speedup_vs_baseline"] = base["median_s"] / r["median_s"]
    save()
    print(f"\n{report['versions'].get('gpu')}: diffusers {report['versions'].get('diffusers')}, "
          f"torch {torch.__version__}, {bench.kind} {bench.size}x{bench.size}, {args.steps} DDIM steps, "
          f"CFG {args.guidance}, fp16, median of {args.rounds}")
    print_table(report)
    for e in report["variants"]:
        if e["notes"]:
            print(f"  {e['name']}: {'; '.join(e['notes'])}")
    if args.json:
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
