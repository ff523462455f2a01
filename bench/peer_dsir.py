#!/usr/bin/python3
"""DSIR's own method in PyTorch (Debian python3-torch, one thread): the per-frame inference loop
(skimage resize order 1 + z-score + model, as DSIR's load_model.py) and a training step (batch 32
of 208x208, DSIR's Gaussian-blurred MSE, Adam). Prints JSON with frames/s for bench/run.sh.
usage: peer_dsir.py REFERENCE.h5 [cpu|cuda] [infer|train]  (cuda: the network and training on
the GPU, as DSIR runs; the preprocessing stays on one CPU thread, as in DSIR; infer or train: that
measurement alone, for benchmarks that alternate it with dsir's)."""
import json
import math
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from skimage import transform

torch.set_num_threads(1)
torch.set_flush_denormal(True)


class ConvAutoencoder(nn.Module):
    """DSIR's conv_autoencoder: BatchNorms shared as DSIR shares them (bn2 x5, bn1 x2)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.convt1 = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.convt2 = nn.ConvTranspose2d(8, 16, 2, stride=2)
        self.convt3 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.conv4 = nn.Conv2d(8, 1, 3, padding=1)
        self.bn4 = nn.BatchNorm2d(1)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        x = self.pool(F.relu(self.bn2(self.conv3(x))))
        x = F.relu(self.bn2(self.convt1(x)))
        x = F.relu(self.bn1(self.convt2(x)))
        x = F.relu(self.bn2(self.convt3(x)))
        return F.relu(self.bn4(self.conv4(x)))


def gaussian_kernel(width=5, fwhm=3.0):
    c = (width - 1) / 2
    r2 = (np.arange(width)[:, None] - c) ** 2 + (np.arange(width)[None, :] - c) ** 2
    return torch.tensor(np.exp(-4 * math.log(2) * r2 / fwhm**2), dtype=torch.float32)[None, None]


def upscale_fps(size, frames=200):
    """DSIR's preprocessing alone: skimage resize (order 1, mode 'reflect') + z-score."""
    rng = np.random.default_rng(1)
    stack = rng.poisson(120, (frames, size, size)).astype(np.uint16)
    t0 = time.perf_counter()
    for img in stack:
        up = transform.resize(img, (size * 8, size * 8))
        up = (up - up.mean()) / up.std()
    return frames / (time.perf_counter() - t0)


DEVICE = torch.device(sys.argv[2] if len(sys.argv) > 2 else "cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def infer_fps(model, size, frames=20):
    rng = np.random.default_rng(1)
    stack = rng.poisson(120, (frames, size, size)).astype(np.uint16)
    total = np.zeros((size * 8, size * 8))
    t0 = time.perf_counter()
    with torch.no_grad():
        for img in stack:
            up = transform.resize(img, (size * 8, size * 8))
            up = (up - up.mean()) / up.std()
            out = model(torch.from_numpy(up[None, None].astype(np.float32)).to(DEVICE))
            total += out[0, 0].cpu().numpy()
    return frames / (time.perf_counter() - t0)


def train_fps(steps=3):
    torch.manual_seed(0)
    model = ConvAutoencoder().to(DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5)
    k = gaussian_kernel().to(DEVICE)
    x = torch.randn(32, 1, 208, 208).to(DEVICE)
    y = (torch.randn(32, 1, 208, 208) > 2.5).float().to(DEVICE)
    def step():
        opt.zero_grad()
        loss = F.mse_loss(F.conv2d(model(x), k, padding=2), F.conv2d(y, k, padding=2))
        loss.backward()
        opt.step()
    step()  # warm-up
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * 32 / (time.perf_counter() - t0)


def main():
    ref = sys.argv[1] if len(sys.argv) > 1 else "../shared/reference/dsir/reference_26px.h5"
    model = ConvAutoencoder()
    with h5py.File(ref, "r") as f:
        state = {k: torch.from_numpy(f["state_dict"][k][()]) for k in f["state_dict"]}
    model.load_state_dict(state, strict=False)  # DSIR never calls eval(): per-frame BatchNorm
    model.to(DEVICE)
    if DEVICE.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False  # as dsir runs (IEEE float32)
        infer_fps(model, 64, 5)  # warm-up: cuDNN handles, kernels
        print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(),
                          "infer_fps_64": infer_fps(model, 64, 400),
                          "train_fps_208_batch32": train_fps(20)}))
        return
    only = sys.argv[3] if len(sys.argv) > 3 else ""
    if only == "infer":
        print(json.dumps({"infer_fps_64": infer_fps(model, 64, 60)}))
        return
    if only == "train":
        print(json.dumps({"train_fps_208_batch32": train_fps(5)}))
        return
    print(json.dumps({
        "torch": torch.__version__,
        "upscale_fps_26": upscale_fps(26, 400),
        "upscale_fps_64": upscale_fps(64, 100),
        "infer_fps_26": infer_fps(model, 26, 40),
        "infer_fps_64": infer_fps(model, 64, 20),
        "train_fps_208_batch32": train_fps(),
    }))


if __name__ == "__main__":
    main()
