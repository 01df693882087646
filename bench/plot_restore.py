#!/usr/bin/env python3
"""Plots walcut_restore_bench's JSON: replay throughput against threads.

Usage: bench/plot_restore.py RESULTS.json [OUT.svg]   (default docs/restore-throughput.svg)

One line per data set (shape and codec; codec alone in the JSON from before
shapes) and cache state (cold: evicted, O_DIRECT; warm: files in
the page cache), the median MB/s of uncompressed WAL over the restore's
replay phase. Reference lines: the plain O_DIRECT read of the same files and
the naive one-thread replayer (warm), per codec, and the target of 1 GB/s
per core. Standard library only: the SVG is written by hand.
"""
import json
import os
import sys
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 940, 500
LEFT, RIGHT, TOP, BOTTOM = 70, 320, 66, 60
COLORS = {"none": "#1f77b4", "lz4": "#d62728"}
FALLBACK_COLORS = ["#2ca02c", "#9467bd", "#8c564b", "#ff7f0e", "#17becf", "#e377c2", "#7f7f7f", "#bcbd22"]


def nice_ceiling(value):
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= value."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def data_sets(result):
    """Per shape and codec (the bench's JSON now), or per codec (its JSON before shapes)."""
    return result.get("shapes") or result.get("codecs") or []


def label_of(data_set):
    return f'{data_set["shape"]} {data_set["codec"]}' if "shape" in data_set else data_set["codec"]


def series(result):
    """Lines and reference levels from the JSON."""
    lines, refs = [], []
    for i, codec in enumerate(data_sets(result)):
        name = label_of(codec)
        color = COLORS.get(name, FALLBACK_COLORS[i % len(FALLBACK_COLORS)])
        for cache in ("cold", "warm"):
            points = sorted(
                (c["threads"], c["replay"]["mb_per_s_raw_median"])
                for c in codec["configs"]
                if c["kind"] == "restore" and c["cache"] == cache
            )
            if points:
                lines.append({"label": f"restore replay, {name}, {cache}", "color": color,
                              "dash": cache == "warm", "points": points})
        for c in codec["configs"]:
            if c["name"] == "raw_read_direct":
                refs.append({"label": f"plain O_DIRECT read, {name} (file bytes)", "color": color,
                             "value": c["total"]["mb_per_s_disk_median"], "dash": "2,3"})
            if c["name"] == "naive_warm":
                refs.append({"label": f"naive replayer, {name}, warm", "color": color,
                             "value": c["total"]["mb_per_s_raw_median"], "dash": "8,3,2,3"})
    return lines, refs


def render(result):
    lines, refs = series(result)
    threads_max = max([p[0] for line in lines for p in line["points"]] + [1])
    target_per_core = 1000.0
    y_top = nice_ceiling(max([p[1] for line in lines for p in line["points"]] + [r["value"] for r in refs] +
                             [target_per_core * threads_max]) * 1.05)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(t):
        if threads_max == 1:
            return LEFT + plot_w / 2
        return LEFT + (t - 1) / (threads_max - 1) * plot_w

    def y_of(v):
        return TOP + plot_h - v / y_top * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    machine = result.get("machine", {})
    settings = result.get("settings", {})
    title = "walcut restore: replay-phase throughput against threads"
    raw_mb = max((c["data"]["wal_raw_bytes"] for c in data_sets(result)), default=0) / 1e6
    size = f"--scale {settings['scale']}" if "scale" in settings else f"--bytes {settings.get('bytes', '?')}"
    subtitle = (f"up to {raw_mb:.0f} MB of uncompressed WAL per data set ({size}), "
                f"{machine.get('nproc', '?')} CPUs shared with other work, median of {settings.get('repeat', '?')} "
                f"runs")
    out.append(f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>')
    out.append(f'<text x="{LEFT}" y="42" font-size="12" fill="#444">{escape(subtitle)}</text>')
    # Grid and y axis.
    for i in range(6):
        v = y_top * i / 5
        y = y_of(v)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    out.append(f'<text x="16" y="{TOP + plot_h / 2:.1f}" transform="rotate(-90 16 {TOP + plot_h / 2:.1f})" '
               f'text-anchor="middle">MB/s of uncompressed WAL (10^6 B/s)</text>')
    # X axis.
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="black"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="black"/>')
    for t in range(1, threads_max + 1):
        x = x_of(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP + plot_h}" x2="{x:.1f}" y2="{TOP + plot_h + 5}" stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{t}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 18}" text-anchor="middle">'
               f'threads (RestoreOptions::threads)</text>')
    legend = []
    # Target: 1 GB/s per core.
    t_points = [(t, target_per_core * t) for t in range(1, threads_max + 1)]
    path = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in t_points)
    out.append(f'<polyline points="{path}" fill="none" stroke="#888" stroke-width="1.5" stroke-dasharray="1,3"/>')
    legend.append(("target: 1 GB/s per core", "#888", "1,3", False))
    for r in refs:
        y = y_of(r["value"])
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="{r["color"]}" '
                   f'stroke-width="1" stroke-dasharray="{r["dash"]}" opacity="0.7"/>')
        legend.append((f'{r["label"]}: {r["value"]:.0f}', r["color"], r["dash"], False))
    labels = {}  # threads -> [(y, text, color)], spread apart below
    for line in lines:
        path = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in line["points"])
        dash = ' stroke-dasharray="6,4"' if line["dash"] else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{line["color"]}" stroke-width="2.5"{dash}/>')
        for t, v in line["points"]:
            out.append(f'<circle cx="{x_of(t):.1f}" cy="{y_of(v):.1f}" r="4" fill="{line["color"]}"/>')
            tag = line["label"].split(", ", 1)[1]
            labels.setdefault(t, []).append((y_of(v), f"{v:.0f} {tag}", line["color"]))
        legend.append((line["label"], line["color"], "6,4" if line["dash"] else "", True))
    for t, items in labels.items():
        items.sort()
        placed = []
        for y, _, _ in items:
            placed.append(max(y + 4, placed[-1] + 13) if placed else y + 4)
        excess = placed[-1] - (TOP + plot_h - 4)  # keep the labels above the x axis
        if excess > 0:
            placed = [y - excess for y in placed]
        for y, (_, text, color) in zip(placed, items):
            anchor, dx = ("end", -8) if t == threads_max and threads_max > 1 else ("start", 8)
            out.append(f'<text x="{x_of(t) + dx:.1f}" y="{y:.1f}" fill="{color}" font-size="11" stroke="white" '
                       f'stroke-width="3" paint-order="stroke" '
                       f'text-anchor="{anchor}">{escape(text)}</text>')
    # Legend on the right.
    lx, ly = LEFT + plot_w + 16, TOP + 6
    for i, (label, color, dash, thick) in enumerate(legend):
        y = ly + i * 20
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        width = 2.5 if thick else 1.5
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
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = argv[2] if len(argv) > 2 else os.path.join(here, "..", "docs", "restore-throughput.svg")
    svg = render(result)
    with open(out_path, "w") as f:
        f.write(svg)
    print(f"wrote {os.path.normpath(out_path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
