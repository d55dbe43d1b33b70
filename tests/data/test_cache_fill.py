"""``cache="fill"``: a lazy folder's uint8 cache filled by the batches training reads.

The first epoch is decoded (by DataLoader workers or in process) and every batch is kept; once
every row is kept the dataset is cached and later epochs are sliced from memory. Every batch must
equal the in-memory path's bit for bit, and a training run must give the in-memory run's weights.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vqkit.data import lazy as lazy_module
from vqkit.data import load_image_folder
from vqkit.data.loader import iterate_batches

BATCHES = [[3, 1, 4], [0, 9, 2], [5, 6, 8]]  # row 7 is in no batch: an epoch's dropped tail


def _folder(root, n=10, size=(5, 7), seed=3):
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


@pytest.mark.parametrize("workers", [0, 2])
def test_one_pass_fills_the_cache_with_the_in_memory_values(tmp_path, workers):
    eager = load_image_folder(_folder(tmp_path))
    filling = load_image_folder(tmp_path, lazy=True, cache="fill")
    assert filling.cache is None
    assert "cache=filling 0/10" in repr(filling)
    batches = list(iterate_batches(filling, BATCHES, num_workers=workers))
    for indices, batch in zip(BATCHES, batches, strict=True):
        assert torch.equal(batch, eager.data[indices])
    # The dropped row was decoded at the end: the cache is complete and equals cache=True's.
    assert filling.filling is None
    assert filling.filled is None
    assert torch.equal(filling.cache, load_image_folder(tmp_path, lazy=True, cache=True).cache)
    assert "cache=uint8" in repr(filling)
    # Now sliced in process (workers would only copy), the same values.
    again = list(iterate_batches(filling, BATCHES, num_workers=workers))
    assert all(torch.equal(a, b) for a, b in zip(again, batches, strict=True))


def test_a_pass_over_part_of_the_data_keeps_its_rows_and_completes_later(tmp_path):
    eager = load_image_folder(_folder(tmp_path))
    filling = load_image_folder(tmp_path, lazy=True, cache="fill")
    list(iterate_batches(filling, BATCHES[:1]))  # 7 rows missing: more than a batch
    assert filling.cache is None
    assert filling.filled.nonzero().flatten().tolist() == [1, 3, 4]
    assert torch.equal(filling.filling[[1, 3, 4]].float().div_(255), eager.data[[1, 3, 4]])
    partial = iterate_batches(filling, BATCHES[1:])
    next(partial)  # a pass stopped early decodes nothing more
    assert filling.cache is None
    assert int(filling.filled.sum()) == 6
    list(partial)
    assert torch.equal(filling.cache.float().div_(255), eager.data)


def test_select_carries_the_filling_rows(tmp_path):
    filling = load_image_folder(_folder(tmp_path), lazy=True, cache="fill")
    list(iterate_batches(filling, BATCHES[:1]))
    part = filling.select(torch.tensor([3, 0]), name="part")
    assert part.filled.tolist() == [True, False]
    assert torch.equal(part.filling[0], filling.filling[3])
    list(iterate_batches(part, [[1]]))  # row 0 is the last one missing: 1 <= the batch of 1
    assert part.cache is not None
    assert filling.cache is None


def test_fill_makes_the_memory_check_and_refuses_sixteen_bit_and_bad_values(tmp_path, monkeypatch):
    _folder(tmp_path)
    with pytest.raises(TypeError, match="cache must be True or False, got 'yes'"):
        load_image_folder(tmp_path, lazy=True, cache="yes")
    with pytest.raises(ValueError, match="cache=True applies to lazy=True"):
        load_image_folder(tmp_path, cache="fill")
    monkeypatch.setattr(lazy_module, "available_memory", lambda: 1000)
    with pytest.raises(MemoryError, match=r"needs .* more than half of the"):
        load_image_folder(tmp_path, lazy=True, cache="fill")
    wide = tmp_path / "wide"
    wide.mkdir()
    for i, value in enumerate((0, 40000)):
        Image.fromarray(np.full((2, 3), value, dtype=np.uint16)).save(wide / f"{i}.png")
    with pytest.raises(ValueError, match="16-bit"):
        load_image_folder(wide, lazy=True, cache="fill")


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(105, 4), nn.Linear(4, 105))

    def forward(self, x):
        return (self.net(x).view_as(x) - x).square().mean()


def test_training_from_a_filling_cache_gives_the_in_memory_weights(tmp_path):
    from vqkit.train import Trainer

    (tmp_path / "train").mkdir()
    _folder(tmp_path / "train", n=20)
    weights = []
    for data, workers in (
        (load_image_folder(tmp_path / "train"), 0),
        (load_image_folder(tmp_path / "train", lazy=True, cache="fill"), 2),
    ):
        torch.manual_seed(0)
        model = _Tiny()
        Trainer(model, data, epochs=3, batch_size=8, num_workers=workers, progress=False).fit()
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
    assert data.cache is not None  # filled in epoch 1 (4 dropped rows <= a batch of 8)
