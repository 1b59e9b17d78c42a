#!/usr/bin/env python
"""Speed / size / memory benchmark: ``faconvlstm.FAConvLSTM2D`` vs ``keras.layers.ConvLSTM2D``.

Every measured configuration (layer x {train, inference}) runs in a fresh
subprocess of this same script (hidden ``--child`` flag), so that timings and
peak-memory numbers are independent of each other.  The parent process only
orchestrates, collects the JSON each child prints and renders the tables.

Model per layer::

    keras.Input((steps, H, W, C)) -> layer(return_sequences=True, padding="same")

compiled with ``optimizer="adam", loss="mse"`` against a random target of the
layer's output shape.

* train step time  = median wall time of ``model.train_on_batch(x, y)``
* inference time   = median wall time of ``model.predict_on_batch(x)``
  (both after ``--warmup`` untimed calls; both return host numpy values, so
  they are synchronous on every backend)
* params           = ``layer.count_params()``
* forward MACs     = analytic count (``faconvlstm.evaluation.cost``)
* peak extra memory = the child's peak resident memory (high-water mark reset after
  building model and data) minus its resident memory at that point.

Examples::

    python benchmarks/layer_speed.py --backend torch
    python benchmarks/layer_speed.py --backend jax --quick
    python benchmarks/layer_speed.py --layers convlstm --quick --json out.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_MARKER = "@@LAYER_SPEED_RESULT@@ "
KNOWN_LAYERS = ("fa", "fa-noattn", "convlstm")
LAYER_LABELS = {
    "fa": "FAConvLSTM2D",
    "fa-noattn": "FAConvLSTM2D (no attn)",
    "convlstm": "ConvLSTM2D",
}
QUICK = dict(batch=2, steps=4, height=16, width=16, filters=16, repeats=2, warmup=1)
DEFAULT_DILATIONS = (1, 2, 4)


# --------------------------------------------------------------------------
# Analytic forward MAC counts (per sample, i.e. batch size 1)
# --------------------------------------------------------------------------
def default_bottleneck(filters, bottleneck=None):
    return bottleneck if bottleneck is not None else max(8, filters // 4)


def default_attention_dim(bottleneck):
    return max(4, bottleneck // 2)


def layer_attention_every(name, args):
    return 0 if name == "fa-noattn" else args.attention_every


def forward_macs(name, args):
    """Analytic forward MACs per sample (formulas in ``faconvlstm.evaluation.cost``)."""
    sys.path.insert(0, REPO_ROOT)
    from faconvlstm.evaluation.cost import convlstm_macs, fa_macs

    if name == "convlstm":
        return convlstm_macs(args.steps, args.height, args.width, args.channels,
                             args.filters, args.kernel_size)
    r = default_bottleneck(args.filters, args.bottleneck)
    return fa_macs(args.steps, args.height, args.width, args.channels, args.filters,
                   args.kernel_size, bottleneck=r,
                   attention_dim=default_attention_dim(r),
                   attention_every=layer_attention_every(name, args))


# --------------------------------------------------------------------------
# Argument handling
# --------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Benchmark FAConvLSTM2D against keras.layers.ConvLSTM2D "
                    "(params, analytic MACs, train/inference time, peak memory).")
    p.add_argument("--backend", choices=("torch", "jax", "tensorflow"),
                   default=os.environ.get("KERAS_BACKEND") or "torch",
                   help="Keras backend (default: $KERAS_BACKEND, else torch)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=16, help="timesteps T")
    p.add_argument("--height", type=int, default=48)
    p.add_argument("--width", type=int, default=48)
    p.add_argument("--channels", type=int, default=7)
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--kernel-size", type=int, default=3)
    p.add_argument("--bottleneck", type=int, default=None,
                   help="FAConvLSTM2D bottleneck (default: layer default max(8, filters//4))")
    p.add_argument("--attention-every", type=int, default=4,
                   help="FAConvLSTM2D attention_every for the 'fa' layer")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warmup calls")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="intra-op threads (torch.set_num_threads / OMP_NUM_THREADS)")
    p.add_argument("--layers", default="fa,fa-noattn,convlstm",
                   help="comma list out of: " + ",".join(KNOWN_LAYERS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", default=None, help="write results as JSON")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: batch 2, steps 4, 16x16, filters 16, repeats 2, warmup 1")
    p.add_argument("--child-timeout", type=float, default=None,
                   help="seconds before a measurement subprocess is killed (default: none)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # "layer:mode"
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    args.layers = [s.strip() for s in args.layers.split(",") if s.strip()]
    bad = [s for s in args.layers if s not in KNOWN_LAYERS]
    if bad:
        p.error("unknown layer(s) %s; choose from %s" % (bad, ",".join(KNOWN_LAYERS)))
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads is None or args.threads < 1:
        args.threads = 1
    return args


def configure_env(args):
    """Must run before keras / faconvlstm are imported."""
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# --------------------------------------------------------------------------
# Child: one measurement
# --------------------------------------------------------------------------
def proc_stat_ticks():
    """(total, busy) CPU ticks over all cores from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        return sum(vals), sum(vals) - idle
    except Exception:
        return None


def own_cpu_ticks():
    t = os.times()
    return (t.user + t.system) * os.sysconf("SC_CLK_TCK")


def build_layer(name, args, keras):
    common = dict(filters=args.filters, kernel_size=args.kernel_size,
                  padding="same", return_sequences=True)
    if name == "convlstm":
        return keras.layers.ConvLSTM2D(**common, name="convlstm")
    sys.path.insert(0, REPO_ROOT)
    import faconvlstm
    kw = dict(attention_every=layer_attention_every(name, args))
    if args.bottleneck is not None:
        kw["bottleneck"] = args.bottleneck
    return faconvlstm.FAConvLSTM2D(**common, **kw, name=name.replace("-", "_"))


def run_child(args):
    import gc

    import numpy as np

    layer_name, mode = args.child.split(":")
    if args.backend == "torch":
        import torch
        torch.set_num_threads(args.threads)
    elif args.backend == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    import keras

    sys.path.insert(0, REPO_ROOT)
    from faconvlstm.evaluation.memory import PeakMemory

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal(
        (args.batch, args.steps, args.height, args.width, args.channels)).astype(np.float32)

    inp = keras.Input((args.steps, args.height, args.width, args.channels))
    layer = build_layer(layer_name, args, keras)
    out = layer(inp)
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    out_shape = (args.batch,) + tuple(int(d) for d in out.shape[1:])
    y = rng.standard_normal(out_shape).astype(np.float32)
    params = int(layer.count_params())

    if mode == "train":
        def step():
            return model.train_on_batch(x, y)
    else:
        def step():
            return model.predict_on_batch(x)

    gc.collect()
    with PeakMemory() as memory:
        stat_w, own_w = proc_stat_ticks(), own_cpu_ticks()
        first_s = None
        for i in range(args.warmup):
            t0 = time.perf_counter()
            step()
            if i == 0:
                first_s = time.perf_counter() - t0
        stat0, own0 = proc_stat_ticks(), own_cpu_ticks()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        stat1, own1 = proc_stat_ticks(), own_cpu_ticks()
    # Share of all cores used by *other* processes during the timed calls:
    # a contention indicator (timings are unreliable when it is high).
    # /proc/stat counts 10 ms ticks, so short windows are widened to include the
    # warmup calls, and windows under 0.5 core-seconds are not judged at all.
    other_cpu = None
    min_ticks = 0.5 * os.sysconf("SC_CLK_TCK")
    for (sa, oa) in ((stat0, own0), (stat_w, own_w)):
        if sa and stat1 and stat1[0] - sa[0] >= min_ticks:
            other_cpu = max(0.0, ((stat1[1] - sa[1]) - (own1 - oa)) / (stat1[0] - sa[0]))
            break

    result = dict(
        layer=layer_name,
        mode=mode,
        backend=keras.backend.backend(),
        params=params,
        output_shape=list(out_shape),
        median_s=statistics.median(times),
        min_s=min(times),
        times_s=times,
        first_call_s=first_s,
        other_cpu_fraction=other_cpu,
        peak_extra_mib=memory.extra_mib,
    )
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------
# Parent: orchestration and reporting
# --------------------------------------------------------------------------
def pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "not installed"


def load_average():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def cpu_busy_fraction(interval=1.0):
    """Fraction of all CPUs busy during ``interval`` seconds (Linux /proc/stat), else None."""
    def snap():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        return sum(vals), idle
    try:
        t0, i0 = snap()
        time.sleep(interval)
        t1, i1 = snap()
        return 1.0 - (i1 - i0) / max(1, t1 - t0)
    except Exception:
        return None


def child_argv(args, layer, mode):
    argv = [sys.executable, os.path.abspath(__file__),
            "--backend", args.backend,
            "--batch", str(args.batch), "--steps", str(args.steps),
            "--height", str(args.height), "--width", str(args.width),
            "--channels", str(args.channels), "--filters", str(args.filters),
            "--kernel-size", str(args.kernel_size),
            "--attention-every", str(args.attention_every),
            "--repeats", str(args.repeats), "--warmup", str(args.warmup),
            "--threads", str(args.threads), "--seed", str(args.seed),
            "--layers", layer, "--child", "%s:%s" % (layer, mode)]
    if args.bottleneck is not None:
        argv += ["--bottleneck", str(args.bottleneck)]
    return argv


def measure(args, layer, mode):
    env = dict(os.environ)
    env["KERAS_BACKEND"] = args.backend
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(child_argv(args, layer, mode), env=env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=args.child_timeout)
    except subprocess.TimeoutExpired:
        return dict(error="timed out after %ss" % args.child_timeout)
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            res = json.loads(line[len(RESULT_MARKER):])
            res["subprocess_wall_s"] = wall
            return res
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
    return dict(error="child exited with code %s" % proc.returncode, stderr_tail=tail)


def fmt(v, spec, missing="n/a"):
    return missing if v is None else format(v, spec)


def ratio(num, den):
    if num is None or den is None or den == 0:
        return None
    return num / den


def print_table(headers, rows, aligns):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if a == "l" else str(c).rjust(w)
                         for c, w, a in zip(cells, widths, aligns))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def run_parent(args):
    print("=" * 78, flush=True)
    print("FAConvLSTM2D vs keras.layers.ConvLSTM2D layer benchmark", flush=True)
    print("=" * 78)
    print("backend        : %s" % args.backend)
    print("keras          : %s" % pkg_version("keras"))
    print("torch          : %s" % pkg_version("torch"))
    print("jax / jaxlib   : %s / %s" % (pkg_version("jax"), pkg_version("jaxlib")))
    if args.backend == "tensorflow":
        print("tensorflow     : %s" % pkg_version("tensorflow"))
    print("python         : %s" % sys.version.split()[0])
    thread_note = {"torch": "torch.set_num_threads + OMP_NUM_THREADS",
                   "tensorflow": "tf intra-op threads + OMP_NUM_THREADS",
                   "jax": "OMP_NUM_THREADS only; XLA uses its own pool"}[args.backend]
    print("threads        : %d (%s; os.cpu_count()=%s)" % (args.threads, thread_note, os.cpu_count()))
    r = default_bottleneck(args.filters, args.bottleneck)
    print("workload       : input (B=%d, T=%d, H=%d, W=%d, C=%d) float32, filters=%d, "
          "kernel=%dx%d, padding=same, return_sequences=True"
          % (args.batch, args.steps, args.height, args.width, args.channels,
             args.filters, args.kernel_size, args.kernel_size))
    print("FA settings    : bottleneck=%d%s, attention_dim=%d (default), attention_every=%d "
          "('fa'), 0 ('fa-noattn'), dilations=%s (default)"
          % (r, "" if args.bottleneck is not None else " (default)",
             default_attention_dim(r), args.attention_every, DEFAULT_DILATIONS))
    print("model/loss     : Input -> layer; compile(optimizer='adam', loss='mse'), "
          "random target of the output shape")
    print("timing         : median of %d timed calls after %d warmup; train = train_on_batch, "
          "inference = predict_on_batch; each (layer, mode) in a fresh subprocess"
          % (args.repeats, args.warmup))
    print("layers         : %s%s" % (",".join(args.layers), "  [--quick]" if args.quick else ""))
    load_start = load_average()
    busy_start = cpu_busy_fraction()
    if load_start is not None:
        print("load average   : %.2f (1 min) at start" % load_start)
    if busy_start is not None:
        print("CPU busy       : %.0f%% of all cores in the second before starting" % (100 * busy_start))
        if busy_start > 0.15:
            print("WARNING        : the machine is not idle; competing CPU-bound processes distort "
                  "timings badly (torch's OpenMP threads spin-wait), consider rerunning when idle "
                  "or --threads 1")
    print("", flush=True)

    results = {}
    contended = []
    for layer in args.layers:
        results[layer] = {"macs": forward_macs(layer, args)}
        for mode in ("train", "inference"):
            print("[%s / %s] running ..." % (LAYER_LABELS[layer], mode), end=" ", flush=True)
            res = measure(args, layer, mode)
            results[layer][mode] = res
            if "error" in res:
                print("FAILED: %s" % res["error"], flush=True)
                for l in res.get("stderr_tail", []):
                    print("    | " + l, flush=True)
            else:
                other = res.get("other_cpu_fraction")
                print("median %.4f s (min %.4f, first call %.3f s), params %d, peak extra %.1f MiB%s"
                      % (res["median_s"], res["min_s"], res["first_call_s"] or float("nan"),
                         res["params"], res["peak_extra_mib"],
                         "" if other is None else ", other procs %.0f%% CPU" % (100 * other)),
                      flush=True)
                if other is not None and other > 0.15:
                    contended.append("%s/%s" % (layer, mode))
                    print("    WARNING: other processes used %.0f%% of the CPUs during the timed "
                          "calls; this timing is unreliable" % (100 * other), flush=True)
            if "params" in res:
                results[layer]["params"] = res["params"]

    def get(layer, mode, key):
        res = results[layer].get(mode) or {}
        return res.get(key)

    load_end = load_average()
    if load_end is not None:
        print("load average   : %.2f (1 min) at end" % load_end)
    print("")
    print("Results (forward GMACs analytic, per sample / per batch of %d)" % args.batch)
    headers = ["layer", "params", "GMACs/sample", "GMACs/batch", "train step s",
               "inference s", "train mem MiB", "infer mem MiB"]
    rows = []
    for layer in args.layers:
        macs = results[layer]["macs"]
        rows.append([LAYER_LABELS[layer],
                     fmt(results[layer].get("params"), ",d"),
                     "%.4f" % (macs / 1e9), "%.3f" % (macs * args.batch / 1e9),
                     fmt(get(layer, "train", "median_s"), ".4f"),
                     fmt(get(layer, "inference", "median_s"), ".4f"),
                     fmt(get(layer, "train", "peak_extra_mib"), ".1f"),
                     fmt(get(layer, "inference", "peak_extra_mib"), ".1f")])
    print_table(headers, rows, ["l"] + ["r"] * (len(headers) - 1))

    ratios = {}
    if "convlstm" in args.layers:
        fa_layers = [l for l in args.layers if l != "convlstm"]
        if fa_layers:
            print("")
            print("Ratios ConvLSTM2D / FA  (>1 means FA has x fewer params/MACs/memory, "
                  "or is x faster)")
            headers = ["vs layer", "params", "MACs", "train time", "infer time",
                       "train mem", "infer mem"]
            rows = []
            for l in fa_layers:
                rr = dict(
                    params=ratio(results["convlstm"].get("params"), results[l].get("params")),
                    macs=ratio(results["convlstm"]["macs"], results[l]["macs"]),
                    train_time=ratio(get("convlstm", "train", "median_s"),
                                     get(l, "train", "median_s")),
                    inference_time=ratio(get("convlstm", "inference", "median_s"),
                                         get(l, "inference", "median_s")),
                    train_memory=ratio(get("convlstm", "train", "peak_extra_mib"),
                                       get(l, "train", "peak_extra_mib")),
                    inference_memory=ratio(get("convlstm", "inference", "peak_extra_mib"),
                                           get(l, "inference", "peak_extra_mib")),
                )
                ratios[l] = rr
                rows.append([LAYER_LABELS[l]] + [fmt(rr[k], ".2f") + ("x" if rr[k] is not None else "")
                                                 for k in ("params", "macs", "train_time",
                                                           "inference_time", "train_memory",
                                                           "inference_memory")])
            print_table(headers, rows, ["l"] + ["r"] * (len(headers) - 1))
    if contended:
        print("\nWARNING: timings of %s were taken while other processes competed for the CPUs."
              % ", ".join(contended))
    sys.stdout.flush()

    if args.json:
        payload = dict(
            backend=args.backend,
            versions=dict(keras=pkg_version("keras"), torch=pkg_version("torch"),
                          jax=pkg_version("jax"), jaxlib=pkg_version("jaxlib"),
                          python=sys.version.split()[0]),
            threads=args.threads,
            load_average_start=load_start,
            load_average_end=load_end,
            cpu_busy_fraction_start=busy_start,
            contended_measurements=contended,
            workload=dict(batch=args.batch, steps=args.steps, height=args.height,
                          width=args.width, channels=args.channels, filters=args.filters,
                          kernel_size=args.kernel_size, bottleneck=r,
                          attention_dim=default_attention_dim(r),
                          attention_every=args.attention_every, repeats=args.repeats,
                          warmup=args.warmup, quick=args.quick, seed=args.seed),
            results=results,
            ratios_convlstm_over_fa=ratios,
        )
        d = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(d, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
        print("\nwrote %s" % args.json, flush=True)

    failed = any("error" in (results[l].get(m) or {}) for l in args.layers
                 for m in ("train", "inference"))
    return 1 if failed else 0


def main(argv=None):
    args = parse_args(argv)
    configure_env(args)  # before any keras / faconvlstm import
    if args.child:
        run_child(args)
        return 0
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
