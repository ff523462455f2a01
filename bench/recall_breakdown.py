#!/usr/bin/env python3
"""Where the misses are: recall at 50 nm by emitter brightness and by crowding.

usage: recall_breakdown.py TRUTH.csv LOCALIZATIONS.csv [TOLERANCE_NM]

Both files in ThunderSTORM's columns (frame, "x [nm]", "y [nm]"; the truth also "intensity
[photon]", as the simulator writes it). Matching per frame is greedy by distance (closest pairs
first), like `dsir evaluate`'s greedy matching (45,665 against its 45,660 matches on
docs/accuracy.md's example; its Hungarian matching finds 3 % more); standard library only.
"""
import collections
import csv
import math
import sys


def read(path, with_photons):
    frames = collections.defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            p = float(row["intensity [photon]"]) if with_photons else 0.0
            frames[int(row["frame"])].append((float(row["x [nm]"]), float(row["y [nm]"]), p))
    return frames


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    truth, locs = read(sys.argv[1], True), read(sys.argv[2], False)
    tol = float(sys.argv[3]) if len(sys.argv) == 4 else 50.0
    by_photons = collections.defaultdict(lambda: [0, 0])
    by_neighbour = collections.defaultdict(lambda: [0, 0])
    for frame, emitters in truth.items():
        found = locs.get(frame, [])
        pairs = sorted((math.hypot(x - u, y - v), i, j)
                       for i, (x, y, _) in enumerate(emitters)
                       for j, (u, v, _) in enumerate(found)
                       if abs(x - u) <= tol and abs(y - v) <= tol and math.hypot(x - u, y - v) <= tol)
        matched, used = set(), set()
        for _, i, j in pairs:
            if i not in matched and j not in used:
                matched.add(i)
                used.add(j)
        for i, (x, y, photons) in enumerate(emitters):
            nearest = min((math.hypot(x - a, y - b) for k, (a, b, _) in enumerate(emitters) if k != i),
                          default=math.inf)
            for table, key in ((by_photons, min(int(photons // 250) * 250, 2000)),
                               (by_neighbour, min(int(nearest // 100) * 100, 500))):
                table[key][0] += i in matched
                table[key][1] += 1
    print(f"recall at {tol:g} nm by photons (bin start: recall, emitters)")
    for k in sorted(by_photons):
        print(f"  {k:5d}: {by_photons[k][0] / by_photons[k][1]:.3f} ({by_photons[k][1]})")
    print("by the distance to the nearest other emitter in the frame, nm")
    for k in sorted(by_neighbour):
        print(f"  {k:5d}: {by_neighbour[k][0] / by_neighbour[k][1]:.3f} ({by_neighbour[k][1]})")


if __name__ == "__main__":
    main()
