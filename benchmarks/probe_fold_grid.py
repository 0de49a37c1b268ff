"""Does a finer per-layer weight grid keep accuracy through the batch-norm fold?

Loads a batch-norm ensemble checkpoint taken before the fold (an epoch checkpoint of a
``student.norm = "batch"`` run), recalibrates its batch norms on the augmented training images
(2-pixel shifts and flips, as ``cifar10-full`` trains), and prints the test accuracy of

* the ensemble with batch norm,
* the standard fold (SLAYER's 8-bit grid, steps of 1/32, what ``sne train`` stores), and
* the fold with per-layer steps of ``1/(32 * 2**k)``, ``k`` the largest that keeps the layer's
  largest folded weight inside the 8-bit range: what a SLAYER CUBA neuron ``scale`` of
  ``64 * 2**k`` per layer would run (weights, threshold and bias ``2**k`` times larger in state
  units; netx reads that without a format change). Torch only: the product does not build it.

Every model runs on the SLAYER engine (the fast engine packs weights on the 1/32 grid).
Usage: ``python benchmarks/probe_fold_grid.py CHECKPOINT [--test-stride 5] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import math
import time


def main() -> None:
    import torch
    from lava.lib.dl.slayer.utils import quantize

    from sne_loihi.data import augment_nchw, load_dataset
    from sne_loihi.ensemble.checkpoint import load_ensemble, rebuild_ensemble
    from sne_loihi.ensemble.evaluate import evaluate_ensemble
    from sne_loihi.students.fold import norm_layers, recalibrate
    from sne_loihi.train.students import fold_ensemble

    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("checkpoint", help="pre-fold ensemble checkpoint of a batch-norm run")
    p.add_argument("--test-stride", type=int, default=5, help="evaluate every N-th test image")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    loaded = load_ensemble(a.checkpoint)
    data = load_dataset(loaded.config.data, seed=0)
    every = torch.ones(len(loaded.model.students), dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    seen = recalibrate(loaded.model, ((augment_nchw(data.x_train_nchw[i:i + 256], gen, pad=2), every)
                                      for i in range(0, len(data.x_train_nchw), 256)))
    specs = [dict(s.spec.to_dict(), engine="slayer") for s in loaded.model.students]
    model = rebuild_ensemble(specs, loaded.model.head.out_features)
    model.load_state_dict(loaded.model.state_dict())
    x, y = data.x_test_nchw[::a.test_stride], data.y_test[::a.test_stride]
    print(f"batch norm recalibrated on {seen} training images; {len(y)} test images, per class "
          f"{torch.bincount(y).tolist()} ({time.time() - t0:.0f} s)", flush=True)

    def accuracy(m: torch.nn.Module) -> float:
        return 100 * evaluate_ensemble(m.eval(), x, y, batch_size=250, count_ops=False).accuracy

    print(f"batch norm: {accuracy(model):.2f}%", flush=True)
    folded = fold_ensemble(model)
    print(f"standard fold (steps of 1/32): {accuracy(folded):.2f}%", flush=True)
    ks = []
    for student in folded.students:
        row = []
        for index in norm_layers(student.spec):
            synapse = student.blocks[index].synapse
            k = max(0, math.floor(math.log2(254 / 64 / float(synapse.weight.detach().abs().max()))))
            scale = 64 * 2**k
            synapse.pre_hook_fx = lambda w, s=scale: quantize(w, step=2 / s).clamp(-256 / s, 254 / s)
            row.append(k)
        ks.append(row)
    print(f"per-layer k, per student: {ks}", flush=True)
    print(f"fold with per-layer steps 1/(32 * 2^k): {accuracy(folded):.2f}% ({time.time() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
