#!/usr/bin/env python3
"""The engine against libvips and Pillow, one table (issue #11 point 7); `make bench` runs it
first, then the pipeline and serving benches, which print their own lines.

For each photo set (a folder of target/photos), in one run on the same core: `gallery bench`
pinned to that core (its throughput line, then its untimed quality pass: the worst luma PSNR
and the worst drops of luma and chroma below the figures recorded in
src/resize/engine-psnr.csv), then
`../shared/bench/peers.sh` (vipsthumbnail and Pillow, the same variants), the photos read once
beforehand so both find them in the page cache. The two sides take turns `--rounds` times
(ours, the peers, ours, ...; the quality pass only in the first) and each keeps its best
throughput: on a shared machine one pass of each, a minute apart, swung the peers' camera figure
by a third between two runs (vips 2.90 and 3.85 img/s) while ours moved 7 %, so one side could
be measured in a quiet minute and the other in a busy one. One row per set:

    set  img/s  MP/s  peak RSS  vips  Pillow  × best  worst PSNR (drop), chroma drop

Usage: tests/support/bench-table.py --bin target/release/gallery --photos target/photos
       [--sets real camera] [--core 1] [--rounds 3]
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
    parser.add_argument("--rounds", type=int, default=3)
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
        images = megapixels = rss = vips = pillow = 0.0
        for turn in range(args.rounds):
            quality_pass = [] if turn == 0 else ["--no-quality"]
            ours = run(["taskset", "-c", args.core, args.bin, "bench", *quality_pass, folder])
            line = find(rf"= {NUMBER} img/s, {NUMBER} MP/s, peak RSS {NUMBER} MiB", ours,
                        "gallery bench line")
            if float(line.group(1)) > images:
                images, megapixels = float(line.group(1)), float(line.group(2))
            rss = max(rss, float(line.group(3)))
            if turn == 0:
                quality = find(rf"worst luma PSNR {NUMBER} dB", ours, "quality line")
                drop = re.search(r"worst drop below the recorded figure (-?[0-9.]+) dB", ours)
                chroma = re.search(r"worst chroma drop (-?[0-9.]+) dB", ours)
            them = run(["bash", peers, folder], env={**os.environ, "CORE": args.core})
            vips = max(vips, float(find(rf"vips: .* = {NUMBER} img/s", them, "vips line").group(1)))
            pillow = max(pillow,
                         float(find(rf"pillow: .* = {NUMBER} img/s", them, "pillow line").group(1)))
        ratio = images / max(vips, pillow)
        ratios.append(ratio)
        worst = f"{float(quality.group(1)):.2f} dB"
        worst += f" ({float(drop.group(1)):+.2f} dB)" if drop else " (no recorded figures)"
        if chroma:
            worst += f", chroma drop {float(chroma.group(1)):+.2f} dB"
        print(f"{name:<8}{images:>7.2f}{megapixels:>7.1f}{rss:>7.0f} MiB{vips:>7.2f}"
              f"{pillow:>8.2f}{ratio:>7.2f}×  {worst}", flush=True)
    print(f"worst ratio to the best peer: {min(ratios):.2f}× (each side's best of {args.rounds} turns)")


if __name__ == "__main__":
    main()
