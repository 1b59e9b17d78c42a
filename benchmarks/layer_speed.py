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
MODES = ("train", "inference")
THREAD_NOTES = {
    "torch": "torch.set_num_threads + OMP_NUM_THREADS",
    "tensorflow": "tf intra-op threads + OMP_NUM_THREADS",
    "jax": "OMP_NUM_THREADS only; XLA uses its own pool",
}


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
                   attention_every=layer_attention_every(name, args),
                   attention_tokens=args.attention_tokens)


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
    p.add_argument("--attention-tokens", type=int, default=32,
                   help="FAConvLSTM2D attention_tokens (keys per row and column)")
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
    kw = dict(attention_every=layer_attention_every(name, args),
              attention_tokens=args.attention_tokens)
    if args.bottleneck is not None:
        kw["bottleneck"] = args.bottleneck
    return faconvlstm.FAConvLSTM2D(**common, **kw, name=name.replace("-", "_"))


def set_thread_count(backend, threads):
    """Cap the backend's intra-op threads (before keras is imported)."""
    if backend == "torch":
        import torch
        torch.set_num_threads(threads)
    elif backend == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)


def build_workload(name, args, keras):
    """Seeded compiled model of layer ``name`` and its random batch.

    Returns (model, layer, x, y): x of shape (batch, steps, height, width, channels),
    y of the layer's output shape.
    """
    import numpy as np

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal(
        (args.batch, args.steps, args.height, args.width, args.channels)).astype(np.float32)
    inp = keras.Input((args.steps, args.height, args.width, args.channels))
    layer = build_layer(name, args, keras)
    out = layer(inp)
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    out_shape = (args.batch,) + tuple(int(d) for d in out.shape[1:])
    y = rng.standard_normal(out_shape).astype(np.float32)
    return model, layer, x, y


def step_function(model, mode, x, y):
    """The call timed in ``mode``: one training step ("train") or one inference."""
    if mode == "train":
        return lambda: model.train_on_batch(x, y)
    return lambda: model.predict_on_batch(x)


def cpu_snapshot():
    """(/proc/stat (total, busy) ticks or None, this process's CPU ticks)."""
    return proc_stat_ticks(), own_cpu_ticks()


def timed_calls(step, warmup, repeats):
    """``warmup`` untimed calls of ``step`` (the first one timed alone), then ``repeats`` timed.

    Returns (times_s, first_call_s or None, [cpu_snapshot() before the warmup, before the
    timed calls, after them]).
    """
    snapshots = [cpu_snapshot()]
    first_s = None
    for i in range(warmup):
        t0 = time.perf_counter()
        step()
        if i == 0:
            first_s = time.perf_counter() - t0
    snapshots.append(cpu_snapshot())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    snapshots.append(cpu_snapshot())
    return times, first_s, snapshots


def other_cpu_fraction(warmup_start, timed_start, end):
    """Share of all cores used by *other* processes during the timed calls, or None.

    A contention indicator (timings are unreliable when it is high). /proc/stat counts
    10 ms ticks, so short windows are widened to include the warmup calls, and windows
    under 0.5 core-seconds are not judged at all.
    """
    stat1, own1 = end
    min_ticks = 0.5 * os.sysconf("SC_CLK_TCK")
    for sa, oa in (timed_start, warmup_start):
        if sa and stat1 and stat1[0] - sa[0] >= min_ticks:
            return max(0.0, ((stat1[1] - sa[1]) - (own1 - oa)) / (stat1[0] - sa[0]))
    return None


def run_child(args):
    """Measure the ``--child layer:mode`` configuration; print its JSON after RESULT_MARKER."""
    import gc

    layer_name, mode = args.child.split(":")
    set_thread_count(args.backend, args.threads)
    import keras

    sys.path.insert(0, REPO_ROOT)
    from faconvlstm.evaluation.memory import PeakMemory

    model, layer, x, y = build_workload(layer_name, args, keras)
    params = int(layer.count_params())
    step = step_function(model, mode, x, y)
    gc.collect()
    with PeakMemory() as memory:
        times, first_s, snapshots = timed_calls(step, args.warmup, args.repeats)
    result = dict(
        layer=layer_name,
        mode=mode,
        backend=keras.backend.backend(),
        params=params,
        output_shape=list(y.shape),
        median_s=statistics.median(times),
        min_s=min(times),
        times_s=times,
        first_call_s=first_s,
        other_cpu_fraction=other_cpu_fraction(*snapshots),
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
    start = proc_stat_ticks()
    if start is None:
        return None
    time.sleep(interval)
    end = proc_stat_ticks()
    if end is None:
        return None
    return (end[1] - start[1]) / max(1, end[0] - start[0])


def child_argv(args, layer, mode):
    argv = [sys.executable, os.path.abspath(__file__),
            "--backend", args.backend,
            "--batch", str(args.batch), "--steps", str(args.steps),
            "--height", str(args.height), "--width", str(args.width),
            "--channels", str(args.channels), "--filters", str(args.filters),
            "--kernel-size", str(args.kernel_size),
            "--attention-every", str(args.attention_every),
            "--attention-tokens", str(args.attention_tokens),
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


def package_versions():
    """Versions of keras, torch, jax, jaxlib and python."""
    return dict(keras=pkg_version("keras"), torch=pkg_version("torch"),
                jax=pkg_version("jax"), jaxlib=pkg_version("jaxlib"),
                python=sys.version.split()[0])


def print_setup(args):
    """Print the banner, versions, threads, workload, FA settings and timing method."""
    versions = package_versions()
    print("=" * 78, flush=True)
    print("FAConvLSTM2D vs keras.layers.ConvLSTM2D layer benchmark", flush=True)
    print("=" * 78)
    print("backend        : %s" % args.backend)
    print("keras          : %s" % versions["keras"])
    print("torch          : %s" % versions["torch"])
    print("jax / jaxlib   : %s / %s" % (versions["jax"], versions["jaxlib"]))
    if args.backend == "tensorflow":
        print("tensorflow     : %s" % pkg_version("tensorflow"))
    print("python         : %s" % versions["python"])
    print("threads        : %d (%s; os.cpu_count()=%s)"
          % (args.threads, THREAD_NOTES[args.backend], os.cpu_count()))
    r = default_bottleneck(args.filters, args.bottleneck)
    print("workload       : input (B=%d, T=%d, H=%d, W=%d, C=%d) float32, filters=%d, "
          "kernel=%dx%d, padding=same, return_sequences=True"
          % (args.batch, args.steps, args.height, args.width, args.channels,
             args.filters, args.kernel_size, args.kernel_size))
    print("FA settings    : bottleneck=%d%s, attention_dim=%d (default), attention_every=%d "
          "('fa'), 0 ('fa-noattn'), attention_tokens=%d, dilations=%s (default)"
          % (r, "" if args.bottleneck is not None else " (default)",
             default_attention_dim(r), args.attention_every, args.attention_tokens,
             DEFAULT_DILATIONS))
    print("model/loss     : Input -> layer; compile(optimizer='adam', loss='mse'), "
          "random target of the output shape")
    print("timing         : median of %d timed calls after %d warmup; train = train_on_batch, "
          "inference = predict_on_batch; each (layer, mode) in a fresh subprocess"
          % (args.repeats, args.warmup))
    print("layers         : %s%s" % (",".join(args.layers), "  [--quick]" if args.quick else ""))


def print_machine_load():
    """Print the load average and CPU use before starting; return (load, busy fraction)."""
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
    return load_start, busy_start


def print_measurement(res):
    """Print one measurement's summary (or failure); return True if other processes competed."""
    if "error" in res:
        print("FAILED: %s" % res["error"], flush=True)
        for line in res.get("stderr_tail", []):
            print("    | " + line, flush=True)
        return False
    other = res.get("other_cpu_fraction")
    print("median %.4f s (min %.4f, first call %.3f s), params %d, peak extra %.1f MiB%s"
          % (res["median_s"], res["min_s"], res["first_call_s"] or float("nan"),
             res["params"], res["peak_extra_mib"],
             "" if other is None else ", other procs %.0f%% CPU" % (100 * other)),
          flush=True)
    if other is not None and other > 0.15:
        print("    WARNING: other processes used %.0f%% of the CPUs during the timed "
              "calls; this timing is unreliable" % (100 * other), flush=True)
        return True
    return False


def measure_all(args):
    """Measure every (layer, mode) in its own subprocess.

    Returns (results, contended): results[layer] holds "macs", "params" and one result per
    mode; contended lists the "layer/mode" timings taken while other processes competed.
    """
    results = {}
    contended = []
    for layer in args.layers:
        results[layer] = {"macs": forward_macs(layer, args)}
        for mode in MODES:
            print("[%s / %s] running ..." % (LAYER_LABELS[layer], mode), end=" ", flush=True)
            res = measure(args, layer, mode)
            results[layer][mode] = res
            if print_measurement(res):
                contended.append("%s/%s" % (layer, mode))
            if "params" in res:
                results[layer]["params"] = res["params"]
    return results, contended


def measured(results, layer, mode, key):
    """``key`` of the (layer, mode) measurement; None if absent (e.g. the child failed)."""
    return (results[layer].get(mode) or {}).get(key)


def print_results_table(args, results):
    """Print params, analytic GMACs, times and peak memory of every layer."""
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
                     fmt(measured(results, layer, "train", "median_s"), ".4f"),
                     fmt(measured(results, layer, "inference", "median_s"), ".4f"),
                     fmt(measured(results, layer, "train", "peak_extra_mib"), ".1f"),
                     fmt(measured(results, layer, "inference", "peak_extra_mib"), ".1f")])
    print_table(headers, rows, ["l"] + ["r"] * (len(headers) - 1))


def convlstm_over(results, layer):
    """ConvLSTM2D / ``layer`` ratios of params, MACs, times and memory (None where unknown)."""
    def over(mode, key):
        return ratio(measured(results, "convlstm", mode, key),
                     measured(results, layer, mode, key))

    return dict(
        params=ratio(results["convlstm"].get("params"), results[layer].get("params")),
        macs=ratio(results["convlstm"]["macs"], results[layer]["macs"]),
        train_time=over("train", "median_s"),
        inference_time=over("inference", "median_s"),
        train_memory=over("train", "peak_extra_mib"),
        inference_memory=over("inference", "peak_extra_mib"),
    )


def print_ratios(args, results):
    """Print the ConvLSTM2D / FA ratios table; return the ratios by FA layer."""
    fa_layers = [layer for layer in args.layers if layer != "convlstm"]
    if "convlstm" not in args.layers or not fa_layers:
        return {}
    print("")
    print("Ratios ConvLSTM2D / FA  (>1 means FA has x fewer params/MACs/memory, "
          "or is x faster)")
    headers = ["vs layer", "params", "MACs", "train time", "infer time",
               "train mem", "infer mem"]
    ratios = {layer: convlstm_over(results, layer) for layer in fa_layers}
    rows = [[LAYER_LABELS[layer]] + [fmt(value, ".2f") + ("x" if value is not None else "")
                                     for value in ratios[layer].values()]
            for layer in fa_layers]
    print_table(headers, rows, ["l"] + ["r"] * (len(headers) - 1))
    return ratios


def write_json(args, machine, contended, results, ratios):
    """Write the settings, machine load (``machine``) and all results to ``args.json``."""
    r = default_bottleneck(args.filters, args.bottleneck)
    payload = dict(
        backend=args.backend,
        versions=package_versions(),
        threads=args.threads,
        **machine,
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
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(payload, f, indent=2)
    print("\nwrote %s" % args.json, flush=True)


def run_parent(args):
    """Measure every configuration, print the tables (and JSON); 1 if any failed, else 0."""
    print_setup(args)
    load_start, busy_start = print_machine_load()
    results, contended = measure_all(args)
    load_end = load_average()
    if load_end is not None:
        print("load average   : %.2f (1 min) at end" % load_end)
    print_results_table(args, results)
    ratios = print_ratios(args, results)
    if contended:
        print("\nWARNING: timings of %s were taken while other processes competed for the CPUs."
              % ", ".join(contended))
    sys.stdout.flush()
    if args.json:
        machine = dict(load_average_start=load_start, load_average_end=load_end,
                       cpu_busy_fraction_start=busy_start)
        write_json(args, machine, contended, results, ratios)
    failed = any("error" in (results[layer].get(mode) or {}) for layer in args.layers
                 for mode in MODES)
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
