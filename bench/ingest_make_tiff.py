#!/usr/bin/env python3
"""Writes a large multipage uint16 BigTIFF for the ingest benchmark (bench/ingest.sh).

Frames look like camera data: base level 100 + Poisson background (20 photons) + a few hundred
Gaussian spots, so compression ratios are realistic. 64 distinct frames are cycled (HDF5's deflate
works per chunk, one chunk per frame, so repeating frames does not help it). Pixel size 100 nm in
the resolution tags (pixels per cm), one IFD per frame.
usage: ingest_make_tiff.py OUT.tif FRAMES [WIDTH HEIGHT]   (/usr/bin/python3 with python3-tifffile)
"""
import sys

import numpy as np
import tifffile


def pool(width, height, n=64, seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    frames = []
    for _ in range(n):
        expected = np.full((height, width), 20.0)
        for _ in range(width * height // 1000):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            s, photons = rng.uniform(0.85, 1.27), rng.uniform(80, 2050)
            r = (slice(max(0, int(y) - 6), int(y) + 7), slice(max(0, int(x) - 6), int(x) + 7))
            expected[r] += photons / (2 * np.pi * s * s) * np.exp(
                -((xx[r] - x) ** 2 + (yy[r] - y) ** 2) / (2 * s * s))
        frames.append((100 + rng.poisson(expected)).clip(0, 65535).astype(np.uint16))
    return frames


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    width, height = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (512, 512)
    frames = pool(width, height)
    with tifffile.TiffWriter(out, bigtiff=True) as tif:
        for k in range(n):
            tif.write(frames[k % len(frames)], photometric='minisblack', resolution=(1e5, 1e5),
                      resolutionunit='CENTIMETER', metadata=None, contiguous=False)


if __name__ == '__main__':
    main()
