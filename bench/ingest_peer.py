#!/usr/bin/env python3
"""The ingest peer: Python tifffile + h5py writing the raw.h5 layout dsir ingest writes
(docs/data-format.md): /frames uint16 N x H x W, one chunk per frame, shuffle + deflate 4,
pixel_size_nm on / and /frames, camera and source_files on /; frames streamed one at a time and
the file renamed into place when complete.
usage: ingest_peer.py IN.tif OUT.h5   (/usr/bin/python3 with python3-tifffile python3-h5py)
"""
import os
import sys

import h5py
import tifffile


def main():
    src, out = sys.argv[1], sys.argv[2]
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), '.' + os.path.basename(out) + '.tmp')
    with tifffile.TiffFile(src) as tif, h5py.File(tmp, 'w') as h5:
        pages = tif.pages
        pages.cache = False  # stream: do not keep every page object
        n = len(pages)
        first = pages[0]
        height, width = first.shape
        xres = first.tags['XResolution'].value
        pixel_size_nm = 1e7 * xres[1] / xres[0]  # pixels per cm
        frames = h5.create_dataset('frames', (n, height, width), dtype='uint16', chunks=(1, height, width),
                                   shuffle=True, compression='gzip', compression_opts=4)
        for k in range(n):
            frames[k] = pages[k].asarray()
        frames.attrs['pixel_size_nm'] = pixel_size_nm
        h5.attrs['pixel_size_nm'] = pixel_size_nm
        h5.attrs['camera'] = '{}'
        h5.attrs['source_files'] = src
    os.replace(tmp, out)


if __name__ == '__main__':
    main()
