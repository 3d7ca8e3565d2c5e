"""`python -m benchmarks.ijb_protocol [--images N] [--templates T] [--pairs P] [--dim D]`: IJB scoring cost.

Times `evaluation.ijb.ijb_verification` on random features of IJB-like structure (images in medias in
templates) and reports the peak memory NumPy allocates while scoring the pairs (tracemalloc), which
stays near two (PAIR_CHUNK, d) float64 gathers plus the (P,) scores however many pairs there are.
IJB-C itself: 469,375 images, 23,124 templates, 15,658,489 pairs, d = 512.
"""
import argparse
import time
import tracemalloc

import numpy as np

from evaluation import ijb
from evaluation.roc import IJB_FARS, roc_summary


def random_ijb(images, templates, pairs, dim, seed=0):
    """(features, faceness, templates, medias, p1, p2, labels) with about 3 images per media."""
    rng = np.random.default_rng(seed)
    template_of_image = rng.integers(0, templates, size=images)
    media_of_image = template_of_image * 1000 + rng.integers(0, 3, size=images)
    present = np.unique(template_of_image)
    first, second = rng.choice(present, size=pairs), rng.choice(present, size=pairs)
    labels = (rng.random(pairs) < 0.01).astype(np.int64)
    labels[:2] = (0, 1)
    features = rng.normal(size=(images, dim)).astype(np.float32)
    return features, rng.uniform(0.5, 1.0, images), template_of_image, media_of_image, first, second, labels


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ijb_protocol", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--templates", type=int, default=5_000)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args(argv)
    data = random_ijb(args.images, args.templates, args.pairs, args.dim)
    started = time.perf_counter()
    template_ids, template_feats = ijb.template_features(data[0].astype(np.float64) * data[1][:, None], data[2],
                                                         data[3])
    templated = time.perf_counter()
    tracemalloc.start()
    scores = ijb.pair_scores(template_ids, template_feats, data[4], data[5])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    scored = time.perf_counter()
    result = roc_summary(data[6], scores, IJB_FARS)
    finished = time.perf_counter()
    print(f"{args.images:,} images, {template_ids.size:,} templates, {args.pairs:,} pairs, d = {args.dim}")
    print(f"template features {templated - started:.2f} s; pair scores {scored - templated:.2f} s "
          f"(peak {peak / 2**20:.0f} MiB allocated, of which the scores {scores.nbytes / 2**20:.0f} MiB); "
          f"ROC + TAR {finished - scored:.2f} s; AUC {result['roc_auc']:.3f} (random features: about 0.5)")
    return result


if __name__ == "__main__":
    main()
