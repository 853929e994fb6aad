#!/usr/bin/python3
"""PyTorch counterpart of siam-bench's training figures: the same models, batches, optimizer,
loss and thread count, on the same images, as medians of timed windows.
Prints 'train MODEL.bBATCH RATE pairs/s' lines, as siam-bench does."""
import argparse
import gzip
import statistics
import time

import numpy as np
import torch
from torch import nn

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--reps", type=int, default=5)
p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)

with gzip.open(f"{args.data}/train-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
images = torch.from_numpy(images.astype(np.float32) / 255.0)
n = images.shape[0]


def mlp():
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 128),
                         nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 128), nn.ReLU())


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ELU(), nn.MaxPool2d(2), nn.BatchNorm2d(32),
                               nn.Conv2d(32, 64, 3), nn.ELU(), nn.MaxPool2d(2), nn.BatchNorm2d(64),
                               nn.Flatten(), nn.Linear(64 * 5 * 5, 128))

    def forward(self, x):
        return self.f(x.view(-1, 1, 28, 28))


def contrastive(a, b, y, m=1.0):
    d = torch.sqrt(((a - b) ** 2).sum(1) + 1e-12)
    return (y * d ** 2 + (1 - y) * torch.clamp(m - d, min=0) ** 2).mean()


def bench(model, batch, steps):
    net = mlp() if model == "mlp" else Cnn()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    g = torch.Generator().manual_seed(1)
    rates = []
    for r in range(-1, args.reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            li = torch.randint(0, n, (batch,), generator=g)
            ri = torch.randint(0, n, (batch,), generator=g)
            y = (torch.rand(batch, generator=g) < 0.5).float()
            loss = contrastive(net(images[li]), net(images[ri]), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if r >= 0:
            rates.append(steps * batch / (time.perf_counter() - t0))
    return statistics.median(rates)


print(f"threads {torch.get_num_threads()}")
for model, batch, steps in (("mlp", 128, 100), ("mlp", 857, 20), ("cnn", 128, 8)):
    print(f"train {model}.b{batch} {bench(model, batch, steps):.0f} pairs/s", flush=True)
