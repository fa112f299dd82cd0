"""The training split as batches: the epoch order, collation, loader workers and the preloaded split."""

from __future__ import annotations

import pytest
import torch

from conftest import BLUE, GREEN, RED, H, W, cfg, noise, save_aligned, solid
from pix2pix.data.batches import EpochSampler, PreloadedPairs, collate, make_loader
from pix2pix.data.pairs import Pair, PairDataset


def test_loader_output_does_not_depend_on_worker_count(twin):
    path, _ = twin
    pairs = [Pair(path)] * 4
    batches = []
    for workers in (0, 2):
        ds = PairDataset(pairs, cfg(), 3, 3, train=True, seed=3)
        sampler = EpochSampler(len(ds), seed=3)
        loader = make_loader(ds, batch_size=2, workers=workers, sampler=sampler)
        out = []
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            out += [b["A"] for b in loader]
        batches.append(torch.cat(out))
    assert batches[0].shape == (8, 3, 32, 32)  # 4 pairs x 2 epochs
    assert torch.equal(batches[0], batches[1])


def test_dataset_returns_error_records_and_collate_keeps_good_items(tmp_path):
    good1 = save_aligned(tmp_path / "1.png", solid(40, 40, RED), solid(40, 40, BLUE))
    bad = tmp_path / "2.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    good2 = save_aligned(tmp_path / "3.png", solid(40, 40, GREEN), solid(40, 40, BLUE))
    ds = PairDataset([Pair(good1), Pair(bad), Pair(good2)], cfg(), 3, 3, train=True)

    item = ds[(0, 1)]
    assert set(item) >= {"error", "path"} and str(bad) in item["error"] and "\n" not in item["error"]

    batch = collate([ds[(0, i)] for i in range(3)])
    assert batch["A"].shape == batch["B"].shape == (2, 3, 32, 32)
    assert batch["paths"] == [str(good1), str(good2)]
    assert len(batch["errors"]) == 1 and str(bad) in batch["errors"][0]
    assert (batch["A"][0, 0] == 1).all() and (batch["A"][1, 1] == 1).all()  # red, green
    assert (batch["B"][:, 2] == 1).all()  # blue


def test_collate_of_different_sizes_is_an_error_entry_not_an_exception(tmp_path):
    p1 = save_aligned(tmp_path / "1.png", solid(8, 8, RED), solid(8, 8, BLUE))
    p2 = save_aligned(tmp_path / "2.png", solid(12, 12, RED), solid(12, 12, BLUE))
    ds = PairDataset([Pair(p1), Pair(p2)], cfg(preprocess="none"), 3, 3, train=False)
    batch = collate([ds[0], ds[1]])
    assert "A" not in batch
    assert len(batch["errors"]) == 1 and "size" in batch["errors"][0]


def test_collate_of_only_bad_items(tmp_path):
    batch = collate([{"error": "x.png: broken", "path": "x.png"}])
    assert batch["errors"] == ["x.png: broken"] and "A" not in batch and batch["paths"] == []


def test_epoch_sampler_permutes_each_epoch():
    n = 50
    s = EpochSampler(n, seed=0)
    orders = []
    for epoch in range(3):
        s.set_epoch(epoch)
        items = list(s)
        assert len(s) == n
        assert all(e == epoch for e, _ in items)
        idx = [i for _, i in items]
        assert sorted(idx) == list(range(n))
        orders.append(idx)
    assert orders[0] != orders[1] != orders[2] and orders[0] != orders[2]
    assert orders[0] != list(range(n))
    other = EpochSampler(n, seed=1)
    assert [i for _, i in other] != orders[0]
    again = EpochSampler(n, seed=0)
    again.set_epoch(1)
    assert [i for _, i in again] == orders[1]


def test_epoch_sampler_resumes_mid_epoch():
    s = EpochSampler(20, seed=5)
    s.set_epoch(2)
    full = [i for _, i in s]
    s.set_epoch(2, start=7)
    assert len(s) == 13
    assert list(s) == [(2, i) for i in full[7:]]


def test_epoch_sampler_without_shuffle():
    s = EpochSampler(5, seed=0, shuffle=False)
    s.set_epoch(4)
    assert list(s) == [(4, i) for i in range(5)]


@pytest.mark.parametrize("preprocess", ["resize_and_crop", "crop", "scale_width_and_crop", "none"])
def test_preloaded_batches_equal_the_loaders_bit_for_bit(tmp_path, preprocess):
    paths = [save_aligned(tmp_path / f"{i}.png", noise(H, W, seed=i), noise(H, W, seed=10 + i)) for i in range(5)]
    pairs = [Pair(p) for p in paths]
    c = cfg(preprocess=preprocess)
    ds = PairDataset(pairs, c, 3, 3, train=True, seed=4)
    preloaded = PreloadedPairs(pairs, c, 3, 3, seed=4, device=torch.device("cpu"))
    sampler = EpochSampler(len(pairs), seed=4)
    loader = make_loader(ds, batch_size=2, workers=0, sampler=sampler)
    for epoch in (0, 1, 2):
        sampler.set_epoch(epoch, start=2 if epoch == 2 else 0)  # and from the middle of an epoch, as on resume
        ours, theirs = list(preloaded.batches(sampler, 2)), list(loader)
        assert len(ours) == len(theirs) == (2 if epoch == 2 else 3)
        for a, b in zip(ours, theirs):
            assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])
            assert a["paths"] == b["paths"]
