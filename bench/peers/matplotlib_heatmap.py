#!/usr/bin/python3
"""attnviz vs matplotlib: the same 64x64 labelled heatmap with colorbar and title, to PNG, timed
in one run side by side (matplotlib: Agg backend, in-process, interpreter start-up excluded; attnviz:
`attnviz bench render`, which times layout + drawing + PNG encoding in memory). Rates are per CPU
second of the process (time.process_time / CLOCK_PROCESS_CPUTIME_ID), so other jobs on the machine
disturb the ratio less; wall-clock rates are printed too.

Then whole processes, as a shell loop would run them: one `attnviz render heatmap r.npy --tokens
tokens.txt -o out.png` against one `python3 script.py` that imports matplotlib and writes the same
figure, --runs times, the tools taking turns run by run (so background load falls on all alike);
median and mean wall time per process, CPU time the children's user + system time (getrusage).
--baseline OLD_ATTNVIZ times another attnviz binary (e.g. the build before a change) in the same
turns; --whole-process-only skips the in-process part.

Usage: /usr/bin/python3 bench/peers/matplotlib_heatmap.py [--attnviz build/attnviz] [--seconds 3] [--runs 20]
       [--baseline /tmp/attnviz.old] [--whole-process-only]
Needs Debian's python3-matplotlib and python3-numpy.
"""
import argparse, io, json, os, resource, subprocess, sys, tempfile, time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def attention(n, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, n)) + 2.0 * np.eye(n)
    w = np.exp(logits)
    return w / w.sum(axis=1, keepdims=True)


def mpl_heatmap(w, tokens, width_pt, height_pt, scale):
    # Same figure as attnviz: 64x64 cells, token labels on both axes (x rotated 90), colorbar, title;
    # same pixel size (points * scale), viridis.
    fig = plt.figure(figsize=(width_pt / 72.0, height_pt / 72.0), dpi=72.0 * scale)
    ax = fig.add_subplot(111)
    im = ax.imshow(w, cmap="viridis", interpolation="nearest", aspect="equal")
    ax.set_xticks(range(len(tokens)))
    ax.set_xticklabels(tokens, rotation=90, fontsize=5)
    ax.set_yticks(range(len(tokens)))
    ax.set_yticklabels(tokens, fontsize=5)
    ax.set_title("encoder.layer0.self · layer 0 · head 0 of 1")
    fig.colorbar(im, ax=ax, label="attention weight")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--attnviz", default=os.path.join(here, "..", "..", "build", "attnviz"))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=20, help="whole-process runs of each tool")
    ap.add_argument("--baseline", help="another attnviz binary to time in the whole-process part, side by side")
    ap.add_argument("--whole-process-only", action="store_true", help="skip the in-process comparison")
    args = ap.parse_args()

    # attnviz first, then matplotlib, then attnviz again (so background load affects both alike).
    def run_attnviz(case="heatmap64-png"):
        out = subprocess.run([args.attnviz, "bench", "render", "--case", case, "--json",
                              "--seconds", str(args.seconds)], check=True, capture_output=True, text=True).stdout
        return json.loads(out)[0]

    tokens = ["token%02d" % i for i in range(64)]
    w = attention(64, 1)
    if args.whole_process_only:
        args.seconds = 0.1  # the figure's geometry only
        whole_process(args, tokens, w, run_attnviz())
        return
    a1 = run_attnviz()
    png = mpl_heatmap(w, tokens, a1["width_pt"], a1["height_pt"], a1["scale"])  # warm-up
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        png = mpl_heatmap(w, tokens, a1["width_pt"], a1["height_pt"], a1["scale"])
        n += 1
        el = time.perf_counter() - t0
        if el >= args.seconds and n >= 3:
            break
    mpl_fps = n / (time.process_time() - c0)
    mpl_wall = n / el
    a2 = run_attnviz()
    small = run_attnviz("heatmap64-png-small")
    av_fps = (a1["figures_per_s"] + a2["figures_per_s"]) / 2
    print("64x64 labelled heatmap + colorbar -> PNG (%d x %d px)" % (a1["width_pt"] * a1["scale"], a1["height_pt"] * a1["scale"]))
    av_wall = (a1["wall_figures_per_s"] + a2["wall_figures_per_s"]) / 2
    print("  attnviz     %8.1f figures/s CPU  (%6.2f ms/figure; runs: %.1f, %.1f; wall %.1f/s; %d KiB PNG)"
          % (av_fps, 1000 / av_fps, a1["figures_per_s"], a2["figures_per_s"], av_wall, a1["bytes"] // 1024))
    print("  matplotlib  %8.1f figures/s CPU  (%6.2f ms/figure; wall %.2f/s; %s, Agg, %d KiB PNG)"
          % (mpl_fps, 1000 / mpl_fps, mpl_wall, matplotlib.__version__, len(png) // 1024))
    print("  attnviz --small-png %.1f figures/s CPU (%d KiB PNG): %.1fx"
          % (small["figures_per_s"], small["bytes"] // 1024, small["figures_per_s"] / mpl_fps))
    print("  speed-up    %8.1fx by CPU time, %.1fx by wall time  (target >= 50x)" % (av_fps / mpl_fps, av_wall / mpl_wall))
    whole_process(args, tokens, w, a1)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def whole_process(args, tokens, w, a1):
    # One figure per process, as `for f in *.npy; do ...; done` draws them.
    with tempfile.TemporaryDirectory() as tmp:
        npy, tok, script = (os.path.join(tmp, n) for n in ("r.npy", "tokens.txt", "one.py"))
        np.save(npy, w.astype(np.float32))
        with open(tok, "w") as f:
            f.write("\n".join(tokens) + "\n")
        here = os.path.abspath(__file__)
        with open(script, "w") as f:
            f.write("import sys, importlib.util\n"
                    "spec = importlib.util.spec_from_file_location('peer', %r)\n"
                    "peer = importlib.util.module_from_spec(spec); spec.loader.exec_module(peer)\n"
                    "import numpy as np\n"
                    "w = np.load(%r); tokens = open(%r).read().split()\n"
                    "open(sys.argv[1], 'wb').write(peer.mpl_heatmap(w, tokens, %r, %r, %r))\n"
                    % (here, npy, tok, a1["width_pt"], a1["height_pt"], a1["scale"]))
        cmds = {
            "attnviz": [args.attnviz, "render", "heatmap", npy, "--tokens", tok, "-o", os.path.join(tmp, "a.png")],
            "matplotlib": [sys.executable, script, os.path.join(tmp, "m.png")],
        }
        if args.baseline:
            cmds["baseline"] = [args.baseline] + cmds["attnviz"][1:]
        for cmd in cmds.values():
            subprocess.run(cmd, check=True, capture_output=True)  # warm the page cache
        runs = {name: [] for name in cmds}  # (wall, cpu) of each run
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                c0, t0 = children_cpu(), time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                runs[name].append((time.perf_counter() - t0, children_cpu() - c0))
        res = {}
        for name, r in runs.items():
            walls, cpus = sorted(x[0] for x in r), sorted(x[1] for x in r)
            res[name] = (walls[len(walls) // 2], sum(walls) / len(walls), cpus[len(cpus) // 2], sum(cpus) / len(cpus))
        print("whole process, one figure each (%d runs, taking turns; median / mean)" % args.runs)
        for name, (wall, wall_mean, cpu, cpu_mean) in res.items():
            label = "attnviz old" if name == "baseline" else name
            print("  %-11s %8.1f / %6.1f ms wall  %8.1f / %6.1f ms CPU" % (label, 1000 * wall, 1000 * wall_mean,
                                                                         1000 * cpu, 1000 * cpu_mean))
        m, a = res["matplotlib"], res["attnviz"]
        print("  speed-up    %8.1fx by median wall time (%.1fx by mean), %.1fx by median CPU time  (target >= 25x)"
              % (m[0] / a[0], m[1] / a[1], m[2] / a[2]))
        if args.baseline:
            b = res["baseline"]
            print("  old build   %8.1fx by median wall time, %.1fx by median CPU time; new/old: %.2f wall, %.2f CPU"
                  % (m[0] / b[0], m[2] / b[2], a[0] / b[0], a[2] / b[2]))

if __name__ == "__main__":
    main()
