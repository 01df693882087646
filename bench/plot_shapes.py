#!/usr/bin/env python3
"""Plots walcut_restore_bench's JSON: entries/s per shape against threads.

Usage: bench/plot_shapes.py RESULTS.json [OUT.svg]   (default docs/restore-shapes.svg)

One colour per data set (shape and codec). Solid: the whole warm restore
(entries applied over the restore_snapshot() call); dashed: its replay
phase alone. A dotted level per data set: RocksDB's recovery of the same
entries (DB::Open), when the bench ran its peer. The y axis is logarithmic:
the shapes and the peer are orders of magnitude apart. Standard library
only: the SVG is written by hand.
"""
import json
import math
import os
import sys
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 980, 520
LEFT, RIGHT, TOP, BOTTOM = 80, 330, 66, 60
COLORS = {"small": "#1f77b4", "fat": "#d62728", "hot": "#2ca02c", "large": "#9467bd"}
FALLBACK_COLORS = ["#8c564b", "#ff7f0e", "#17becf", "#e377c2"]


def rate(v):
    """entries/s in a few characters: 786, 12.3 k, 1.23 M."""
    if v >= 1e6:
        return f"{v / 1e6:.3g} M"
    if v >= 1e3:
        return f"{v / 1e3:.3g} k"
    return f"{v:.0f}"


def series(result):
    """Lines (warm whole, warm replay) and RocksDB levels per data set."""
    lines, refs = [], []
    for i, s in enumerate(result["shapes"]):
        name = f'{s["shape"]} {s["codec"]}'
        color = COLORS.get(s["shape"], FALLBACK_COLORS[i % len(FALLBACK_COLORS)])
        if s.get("codec") != "none":
            color = FALLBACK_COLORS[i % len(FALLBACK_COLORS)]
        whole = [(t["threads"], t["warm_entries_per_s"]) for t in s["threads"]]
        replay = [(t["threads"], t["warm_replay_entries_per_s"]) for t in s["threads"]]
        lines.append({"label": f"{name}: whole warm restore", "color": color, "dash": "", "points": whole})
        lines.append({"label": f"{name}: replay phase", "color": color, "dash": "6,4", "points": replay})
        rocks = s.get("rocksdb", {}).get("recovery")
        if rocks:
            refs.append({"label": f"{name}: RocksDB recovery", "color": color,
                         "value": rocks["entries_per_s_median"]})
    return lines, refs


def render(result):
    lines, refs = series(result)
    values = [v for line in lines for _, v in line["points"] if v > 0] + [r["value"] for r in refs if r["value"] > 0]
    lo = 10 ** math.floor(math.log10(min(values))) if values else 1e4
    hi = 10 ** math.ceil(math.log10(max(values))) if values else 1e7
    if hi <= lo:
        hi = lo * 10
    threads_max = max([t for line in lines for t, _ in line["points"]] + [1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(t):
        return LEFT + plot_w / 2 if threads_max == 1 else LEFT + (t - 1) / (threads_max - 1) * plot_w

    def y_of(v):
        v = max(v, lo)
        return TOP + plot_h - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * plot_h

    machine, settings = result.get("machine", {}), result.get("settings", {})
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    title = "walcut restore: entries applied per second, per shape, against threads"
    subtitle = (f"--scale {settings.get('scale', '?')}, --memory-limit {settings.get('memory_limit', '?')}, "
                f"{machine.get('nproc', '?')} CPUs shared with other work (load "
                f"{machine.get('load_average_start', 0):.1f}), median of {settings.get('repeat', '?')} runs")
    out.append(f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>')
    out.append(f'<text x="{LEFT}" y="42" fill="#444">{escape(subtitle)}</text>')
    decade = lo
    while decade <= hi * 1.0001:
        for m in (1, 2, 5):
            v = decade * m
            if v > hi * 1.0001:
                break
            y = y_of(v)
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
                       f'stroke="{"#ccc" if m == 1 else "#eee"}"/>')
            text = rate(v)
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>')
        decade *= 10
    out.append(f'<text x="18" y="{TOP + plot_h / 2:.1f}" transform="rotate(-90 18 {TOP + plot_h / 2:.1f})" '
               f'text-anchor="middle">entries/s (log scale)</text>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="black"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="black"/>')
    for t in range(1, threads_max + 1):
        x = x_of(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP + plot_h}" x2="{x:.1f}" y2="{TOP + plot_h + 5}" stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{t}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 18}" text-anchor="middle">'
               f'threads (RestoreOptions::threads)</text>')
    legend = []
    for r in refs:
        y = y_of(r["value"])
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="{r["color"]}" '
                   f'stroke-width="1.5" stroke-dasharray="1,3"/>')
        legend.append((f'{r["label"]}: {rate(r["value"])}/s', r["color"], "1,3", 1.5))
    for line in lines:
        path = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in line["points"])
        dash = f' stroke-dasharray="{line["dash"]}"' if line["dash"] else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{line["color"]}" stroke-width="2.5"{dash}/>')
        for t, v in line["points"]:
            out.append(f'<circle cx="{x_of(t):.1f}" cy="{y_of(v):.1f}" r="4" fill="{line["color"]}"/>')
        last = line["points"][-1][1] if line["points"] else 0
        legend.append((f'{line["label"]}: {rate(last)}/s at {threads_max}', line["color"], line["dash"], 2.5))
    lx, ly = LEFT + plot_w + 16, TOP + 6
    for i, (label, color, dash, width) in enumerate(legend):
        y = ly + i * 20
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 24}" y2="{y}" stroke="{color}" '
                   f'stroke-width="{width}"{dash_attr}/>')
        out.append(f'<text x="{lx + 30}" y="{y + 4}" font-size="11">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    with open(argv[1]) as f:
        result = json.load(f)
    if "shapes" not in result:
        print(f"{argv[1]}: no \"shapes\": JSON from walcut_restore_bench before shapes (use plot_restore.py)",
              file=sys.stderr)
        return 2
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = argv[2] if len(argv) > 2 else os.path.join(here, "..", "docs", "restore-shapes.svg")
    with open(out_path, "w") as f:
        f.write(render(result))
    print(f"wrote {os.path.normpath(out_path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
