#!/usr/bin/env python3
"""The engine against libvips and Pillow, one table (issue #11 point 7); `make bench` runs it
first, then the pipeline and serving benches, which print their own lines.

For each photo set (a folder of target/photos), in one run on the same core: `gallery bench`
pinned to that core (its throughput line, then its untimed quality pass: the worst luma PSNR
and the worst drops of luma and chroma below the figures recorded in
src/resize/engine-psnr.csv), then
`../shared/bench/peers.sh` (vipsthumbnail and Pillow, the same variants), the photos read once
beforehand so both find them in the page cache. One row per set:

    set  img/s  MP/s  peak RSS  vips  Pillow  × best  worst PSNR (drop), chroma drop

Usage: tests/support/bench-table.py --bin target/release/gallery --photos target/photos
       [--sets real camera] [--core 1]
"""

import argparse
import os
import re
import subprocess
import sys

NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def run(command, env=None):
    """Runs a command, echoing nothing; answers its standard output, failing loudly."""
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def find(pattern, text, what):
    match = re.search(pattern, text)
    if not match:
        sys.exit(f"no {what} in:\n{text}")
    return match


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/release/gallery")
    parser.add_argument("--photos", default="target/photos")
    parser.add_argument("--sets", nargs="+", default=["real", "camera"])
    parser.add_argument("--core", default="1")
    args = parser.parse_args()
    peers = os.path.join(os.path.dirname(__file__), "../../../shared/bench/peers.sh")

    header = (f"{'set':<8}{'img/s':>7}{'MP/s':>7}{'peak RSS':>10}{'vips':>7}{'Pillow':>8}"
              f"{'× best':>8}  worst luma PSNR (drop below recorded), worst chroma drop")
    print(header)
    print("-" * len(header))
    ratios = []
    for name in args.sets:
        folder = os.path.join(args.photos, name)
        # Read every photo once first, so neither side pays for the disk (the first to run
        # would otherwise read cold files and the other warm ones).
        for entry in sorted(os.listdir(folder)):
            with open(os.path.join(folder, entry), "rb") as photo:
                while photo.read(1 << 20):
                    pass
        ours = run(["taskset", "-c", args.core, args.bin, "bench", folder])
        line = find(rf"= {NUMBER} img/s, {NUMBER} MP/s, peak RSS {NUMBER} MiB", ours,
                    "gallery bench line")
        images, megapixels, rss = (float(g) for g in line.groups())
        quality = find(rf"worst luma PSNR {NUMBER} dB", ours, "quality line")
        drop = re.search(r"worst drop below the recorded figure (-?[0-9.]+) dB", ours)
        chroma = re.search(r"worst chroma drop (-?[0-9.]+) dB", ours)
        them = run(["bash", peers, folder], env={**os.environ, "CORE": args.core})
        vips = float(find(rf"vips: .* = {NUMBER} img/s", them, "vips line").group(1))
        pillow = float(find(rf"pillow: .* = {NUMBER} img/s", them, "pillow line").group(1))
        ratio = images / max(vips, pillow)
        ratios.append(ratio)
        worst = f"{float(quality.group(1)):.2f} dB"
        worst += f" ({float(drop.group(1)):+.2f} dB)" if drop else " (no recorded figures)"
        if chroma:
            worst += f", chroma drop {float(chroma.group(1)):+.2f} dB"
        print(f"{name:<8}{images:>7.2f}{megapixels:>7.1f}{rss:>7.0f} MiB{vips:>7.2f}"
              f"{pillow:>8.2f}{ratio:>7.2f}×  {worst}", flush=True)
    print(f"worst ratio to the best peer: {min(ratios):.2f}×")


if __name__ == "__main__":
    main()
