"""The single-product nearest-code search (N·K ≤ SINGLE_PRODUCT_ELEMENTS) against a float64
brute force: random data, exact ties, a large common offset, cosine, and the boundary where the
search switches to chunks (issue 19)."""

from __future__ import annotations

import pytest
import torch

from vqkit import VectorQuantizer
from vqkit import functional as VF
from vqkit.quantize.reseed import ReseedBatch


def brute_force(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """float64 argmin of the squared distances by differences (first index among ties). (N,)"""
    d = (x.double()[:, None, :] - codebook.double()[None]).square().sum(-1)
    return d.argmin(1)


@pytest.fixture
def spy(monkeypatch):
    """Count the calls of the single-product path (opt-in: the budget is set to 2**21 here;
    taken with two or more CPU threads)."""
    monkeypatch.setattr(VF, "SINGLE_PRODUCT_ELEMENTS", 2**21)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    calls = []
    original = VF._nearest_single

    def wrapped(*args, **kwargs):
        calls.append(args[0].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(VF, "_nearest_single", wrapped)
    yield calls
    torch.set_num_threads(threads)


def test_one_cpu_thread_keeps_the_chunked_search(spy):
    g = torch.Generator().manual_seed(10)
    x = torch.randn(2048, 16, generator=g)
    codebook = torch.randn(512, 16, generator=g)
    torch.set_num_threads(1)  # the fixture restores the caller's count
    idx = VF.nearest_code(x, codebook)
    assert not spy
    assert torch.equal(idx, brute_force(x, codebook))
    torch.set_num_threads(2)
    assert torch.equal(VF.nearest_code(x, codebook), idx)
    assert spy == [2048]


@pytest.mark.parametrize("k", [64, 512, 1000])  # min(1), blocked (B = 32), min(1) again
def test_single_product_is_the_float64_nearest_code(k, spy):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048 if k <= 512 else 1024, 16, generator=g)
    codebook = torch.randn(k, 16, generator=g)
    idx = VF.nearest_code(x, codebook)
    assert spy == [x.shape[0]]  # this size takes the single product
    assert idx.dtype == torch.int64
    assert idx.shape == (x.shape[0],)
    assert torch.equal(idx, brute_force(x, codebook))
    # ... and agrees with the chunked search it replaces at this size
    assert torch.equal(idx, VF.nearest_code(x, codebook, chunk_size=x.shape[0] // 4))


@pytest.mark.parametrize("k", [64, 512])
def test_single_product_breaks_exact_ties_toward_the_first_code(k, spy):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(k // 4, 8, generator=g)
    # every code appears four times, the copies spread over the codebook (and over blocks)
    codebook = base.repeat(4, 1)  # code j == code j + k/4 == ...
    x = torch.cat([torch.randn(500, 8, generator=g), codebook[: k // 4]])  # some rows are codes
    idx = VF.nearest_code(x, codebook)
    assert spy
    exact = brute_force(x, codebook)
    assert torch.equal(idx, exact)
    assert int(idx.max()) < k // 4  # always the first copy
    assert torch.equal(idx[500:], torch.arange(k // 4))  # a row equal to a code picks it


def test_single_product_survives_a_large_common_offset(spy):
    g = torch.Generator().manual_seed(2)
    x = 1000.0 + torch.randn(2000, 32, generator=g)
    codebook = 1000.0 + torch.randn(256, 32, generator=g)
    idx = VF.nearest_code(x, codebook)
    assert spy
    d = (x.double()[:, None] - codebook.double()[None]).square().sum(-1)
    chosen = d.gather(1, idx[:, None]).squeeze(1)
    best = d.min(1).values
    assert torch.all(chosen - best <= 1e-4 + 1e-5 * best)
    assert (idx == d.argmin(1)).float().mean() > 0.99


def test_single_product_cosine_and_autocast(spy):
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.normalize(torch.randn(700, 8, generator=g), dim=-1)
    codebook = torch.nn.functional.normalize(torch.randn(96, 8, generator=g), dim=-1)
    idx = VF.nearest_code(x, codebook, cosine=True)
    assert torch.equal(idx, (x.double() @ codebook.double().t()).argmax(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(VF.nearest_code(x, codebook), brute_force(x, codebook))
    assert len(spy) == 2


def test_switch_to_chunks_at_the_element_budget(monkeypatch, spy):
    g = torch.Generator().manual_seed(4)
    k = 64
    codebook = torch.randn(k, 8, generator=g)
    monkeypatch.setattr(VF, "SINGLE_PRODUCT_ELEMENTS", 200 * k)
    for n, single in ((199, True), (200, True), (201, False), (600, False)):
        spy.clear()
        x = torch.randn(n, 8, generator=g)
        idx = VF.nearest_code(x, codebook)
        assert bool(spy) == single, n
        assert torch.equal(idx, brute_force(x, codebook)), n
    # an explicit chunk size or the closest-row anchors keep the chunked search
    spy.clear()
    x = torch.randn(50, 8, generator=g)
    assert torch.equal(VF.nearest_code(x, codebook, chunk_size=64), brute_force(x, codebook))
    idx, _, _ = VF.nearest_code(x, codebook, closest_rows=True)
    assert torch.equal(idx, brute_force(x, codebook))
    assert not spy


def test_blocked_argmin_returns_a_new_tensor_and_reuses_offsets_per_size():
    g = torch.Generator().manual_seed(5)
    for n in (300, 17, 300, 1):  # the cached row offsets of one size never serve another
        dist = torch.randint(0, 4, (n, 512), generator=g).float()  # ties everywhere
        out = VF._blocked_argmin(dist, 32)
        assert torch.equal(out, dist.min(1).indices)


def test_quantizer_step_is_the_same_with_either_search(monkeypatch, spy):
    """A training step at N = 4,096, K = 512 (single product) picks the codes of the chunked
    search, and leaves the same codebook state."""
    torch.manual_seed(6)
    a = VectorQuantizer(16, 512, channel_last=True, reseed="dead_code", dead_code_threshold=0.25)
    b = VectorQuantizer(16, 512, channel_last=True, reseed="dead_code", dead_code_threshold=0.25)
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 512, 16)
    codes = a.embed.clone()  # before the step's EMA update
    torch.manual_seed(7)
    out_a = a(x)
    assert spy == [4096]  # the single product
    monkeypatch.setattr(VF, "SINGLE_PRODUCT_ELEMENTS", 0)
    torch.manual_seed(7)
    out_b = b(x)
    assert spy == [4096]  # the chunks
    assert torch.equal(out_a.indices, out_b.indices)
    assert torch.equal(out_a.indices.reshape(-1), brute_force(x.reshape(-1, 16), codes))
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, msg=key)


def test_dead_code_policy_reuses_the_quantizers_dead_count():
    """``ReseedBatch.dead_count`` (counted once by the quantizer) and a policy's own count give
    the same reseeding; the step's ``dead_codes`` and ``reseeded`` metrics are that count."""
    torch.manual_seed(8)
    vq = VectorQuantizer(8, 64, channel_last=True, reseed="dead_code", dead_code_threshold=0.5)
    plain = VectorQuantizer(8, 64, channel_last=True, reseed=None, dead_code_threshold=0.5)
    plain.load_state_dict(vq.state_dict())
    x = torch.randn(4, 32, 8) * 0.1 + 3.0  # far from most codes: many are dead after a step
    out, reference = vq(x), plain(x)
    # the detector's count from the debiased usage of the same step, without reseeding after it
    usage = plain.usage / plain._usage_debias()
    expected = float((usage < 0.5 * x.shape[0] * x.shape[1] / 64).sum())
    assert expected > 0
    assert out.metrics["dead_codes"].dtype == torch.float32
    assert out.metrics["dead_codes"].item() == reference.metrics["dead_codes"].item() == expected
    assert out.metrics["reseeded"].item() == expected
    z = x.reshape(-1, 8)
    dead = torch.zeros(64, dtype=torch.bool)
    dead[::3] = True
    level = torch.tensor(2.0)
    counts = torch.zeros(64)
    states = []
    for dead_count in (None, dead.sum(dtype=torch.float32)):
        editor = VectorQuantizer(8, 64, channel_last=True)
        editor.load_state_dict(vq.state_dict())
        batch = ReseedBatch(z, counts, torch.tensor(128.0), dead, level, None, False, dead_count)
        torch.manual_seed(9)
        assert editor.reinit.update(editor, batch).item() == 22.0
        states.append(editor.state_dict())
    for key, value in states[0].items():
        assert torch.equal(states[1][key], value), key


def test_the_single_product_is_off_by_default():
    """Measured slower than the chunks on a quiet CPU, so it is opt-in."""
    assert VF.SINGLE_PRODUCT_ELEMENTS == 0
    assert not VF._single_product(4096, 512, torch.device("cpu"), compiling=False)
