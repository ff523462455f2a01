#!/usr/bin/python3
"""Writes a PyTorch model's state dict as HDF5, one float32 dataset per key (the layout
`dsir import-weights --state-dict FILE.h5:/state_dict` reads, and the layout of DSIR's reference
file). Needs Debian's python3-torch and python3-h5py.

    scripts/export_state_dict.py autoencoder_model.pt weights.h5 [--group /state_dict]

The .pt file may hold a state dict or a whole pickled model (then its class must be importable,
e.g. run from DSIR's source folder); for DSIR's autoencoder_model.pt, a state dict.
"""
import argparse
import sys

import h5py
import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pt", help="PyTorch .pt/.pth file")
    parser.add_argument("output", help="HDF5 file to write")
    parser.add_argument("--group", default="/state_dict", help="group to write the keys under")
    args = parser.parse_args()

    obj = torch.load(args.pt, map_location="cpu")
    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not isinstance(state, dict):
        sys.exit(f"{args.pt}: neither a state dict nor a module")
    with h5py.File(args.output, "w") as f:
        group = f.require_group(args.group)
        for key, value in state.items():
            tensor = value.detach().cpu()
            # num_batches_tracked stays int64; everything else float32, as dsir stores it.
            array = tensor.numpy() if tensor.dtype == torch.int64 else tensor.float().numpy()
            group.create_dataset(key, data=array)
    print(f"{args.output}: {len(state)} keys under {args.group}")


if __name__ == "__main__":
    main()
