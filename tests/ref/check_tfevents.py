#!/usr/bin/env python3
"""Reads an event file written by tests/test_tfevents.c with TensorBoard's
own reader and checks the scalars: reward/mean = 0.25*step, kl = 1e-3*step,
steps 0..4. Exit status 0 when all match."""
import math
import sys

from tensorboard.backend.event_processing import event_accumulator


def main(path):
    acc = event_accumulator.EventAccumulator(path, size_guidance={"scalars": 0})
    acc.Reload()
    tags = sorted(acc.Tags()["scalars"])
    assert tags == ["kl", "reward/mean"], tags
    for tag, scale in (("reward/mean", 0.25), ("kl", 1e-3)):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [0, 1, 2, 3, 4], [e.step for e in events]
        for e in events:
            assert math.isclose(e.value, scale * e.step, rel_tol=1e-6, abs_tol=1e-9), (tag, e.step, e.value)
            assert e.wall_time > 1.6e9, e.wall_time
    print("ok", path)


if __name__ == "__main__":
    main(sys.argv[1])
