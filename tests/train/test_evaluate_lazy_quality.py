"""Evaluation over lazy datasets, sample-quality figures, and whole runs from lazy sources.

- `evaluate_model` on a lazy image folder gives exactly the figures of the same images in memory;
- the dataset Fréchet distance / KID keys are in every run's metrics.json; the classifier is
  trained once and cached in the run folder (a second evaluation does not retrain it); the
  figures are deterministic under a seed and equal the brute-force computation;
- `vqkit train` runs end to end from a lazy image folder (with --num-workers) and a local `hf:`
  dataset, and `vqkit eval` scores them.
"""

import json

import numpy as np
import pytest
import torch

import vqkit
from vqkit.cli import main
from vqkit.data import ArrayDataset, load_dataset
from vqkit.train import evaluate_model
from vqkit.train import frechet as frechet_module
from vqkit.train.evaluate import SAMPLE_QUALITY_KEYS, evaluate_sample_quality
from vqkit.train.frechet import frechet_distance, train_dataset_classifier
from vqkit.train.recipes import CLASSIFIER_FILE, encode_dataset, run_classifier
from vqkit.train.run import DataSpec, RunSpec, load_run_data

Image = pytest.importorskip("PIL.Image")

TINY = {
    "encoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
    "decoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
    "prior": {"hidden_channels": 8, "num_layers": 2, "head_channels": 16},
}


def _folder(root, n=22, size=10):
    """Class folders a/ and b/ of n grayscale PNGs of size×size (an odd size and count)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        klass = root / ("a" if i % 2 else "b")
        klass.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
        Image.fromarray(pixels).save(klass / f"{i:03d}.png")
    return root


def _model(size=10):
    torch.manual_seed(0)
    return vqkit.build("model", "vqvae-digits", image_size=[size, size], **TINY).eval()


def test_evaluate_and_encode_lazy_equal_in_memory(tmp_path):
    folder = _folder(tmp_path / "imgs")
    lazy = load_dataset(str(folder), lazy=True)
    eager = load_dataset(str(folder))
    assert not isinstance(lazy, ArrayDataset)
    model = _model()
    a = evaluate_model(model, lazy, batch_size=5)
    b = evaluate_model(model, eager, batch_size=5)
    assert a == b
    assert torch.equal(encode_dataset(model, lazy, 4).data, encode_dataset(model, eager, 7).data)


def test_sample_quality_brute_force_and_seed(tmp_path):
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(12) % 3
    classifier = train_dataset_classifier(x, labels, epochs=1, feature_dim=8)
    model = _model(8)
    one = evaluate_sample_quality(model, x, classifier, num_samples=10, batch_size=16, seed=5)
    two = evaluate_sample_quality(model, x, classifier, num_samples=10, batch_size=16, seed=5)
    assert one == two  # deterministic under a seed
    assert set(one) == set(SAMPLE_QUALITY_KEYS)
    assert one["sample_quality_num"] == 10
    # Reconstructions do not depend on the batch size (the samples' draws do).
    small = evaluate_sample_quality(model, x, classifier, num_samples=10, batch_size=3, seed=5)
    assert small["reconstruction_dataset_fd"] == pytest.approx(one["reconstruction_dataset_fd"])
    with torch.no_grad():
        real = classifier.features(x[:10])
        recon = classifier.features(model(x[:10]).reconstruction.clamp(0, 1))
        drawn = model.generate(10, generator=torch.Generator().manual_seed(5))
        fake = classifier.features(drawn.clamp(0, 1))
    assert one["reconstruction_dataset_fd"] == pytest.approx(frechet_distance(real, recon))
    assert one["sample_dataset_fd"] == pytest.approx(frechet_distance(real, fake))
    other = evaluate_sample_quality(model, x, classifier, num_samples=10, batch_size=16, seed=6)
    assert other["sample_dataset_fd"] != one["sample_dataset_fd"]  # another seed, other samples
    no_prior = vqkit.build("model", "vqvae-digits", image_size=[8, 8], **{**TINY, "prior": None})
    figures = evaluate_sample_quality(no_prior, x, classifier, num_samples=10)
    assert figures["sample_dataset_fd"] is None
    assert figures["reconstruction_dataset_fd"] is not None
    assert all(v is None for v in evaluate_sample_quality(model, x, None).values())
    with pytest.raises(ValueError, match="num_samples must be"):
        evaluate_sample_quality(model, x, classifier, num_samples=1)


def test_classifier_is_cached_in_the_run_folder(tmp_path, monkeypatch):
    train = load_dataset(str(_folder(tmp_path / "imgs")), lazy=True)
    first = run_classifier(tmp_path / "run", train)
    assert (tmp_path / "run" / CLASSIFIER_FILE).is_file()
    calls = []
    real = frechet_module.train_dataset_classifier
    monkeypatch.setattr(frechet_module, "train_dataset_classifier", lambda *a, **k: calls.append(1))
    second = run_classifier(tmp_path / "run", train)
    assert calls == []  # loaded, not retrained
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    monkeypatch.setattr(frechet_module, "train_dataset_classifier", real)
    unlabelled = ArrayDataset(torch.rand(5, 1, 8, 8))
    assert run_classifier(tmp_path / "other", unlabelled) is None


def test_lazy_spec_is_placement(tmp_path):
    folder = _folder(tmp_path / "imgs")
    train, val, _ = load_run_data(DataSpec(str(folder), lazy=True, val_fraction=0.2))
    eager, eager_val, _ = load_run_data(DataSpec(str(folder), val_fraction=0.2))
    assert torch.equal(torch.stack([train[i] for i in range(len(train))]), eager.data)
    assert torch.equal(val[0], eager_val.data[0])
    spec = RunSpec(data=DataSpec(str(folder))).with_placement(lazy=True, cache=True, num_workers=2)
    assert spec.data.lazy
    assert spec.data.cache
    assert spec.train.num_workers == 2
    with pytest.raises(ValueError, match="cache=True applies to lazy data"):
        DataSpec(str(folder), cache=True)
    with pytest.raises(ValueError, match="lazy=True applies to files and folders"):
        load_run_data(DataSpec("digits", lazy=True))


def _train(argv):
    base = ["train", "--epochs", "1", "--prior-epochs", "1", "--batch-size", "8", "--no-progress"]
    assert main([*base, "--model-config", json.dumps(TINY), *argv]) == 0


def test_train_end_to_end_from_a_lazy_folder(tmp_path, capsys):
    folder = _folder(tmp_path / "imgs", n=40)
    out = tmp_path / "run"
    _train(["--data", str(folder), "--lazy", "--num-workers", "1", "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    for key in SAMPLE_QUALITY_KEYS:
        assert key in metrics
    assert metrics["sample_dataset_fd"] is not None
    record = json.loads((out / "config.json").read_text())
    assert record["data"]["lazy"] is True
    assert record["train"]["num_workers"] == 1
    # The same run read into memory is the same run (placement): it resumes, not refused.
    _train(["--data", str(folder), "--out", str(out)])
    capsys.readouterr()
    assert main(["eval", str(out), "--num-samples", "3"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["sample_quality_num"] == 3


def test_train_end_to_end_from_a_local_hf_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)) for _ in range(21)]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y"])}
    )
    ds = datasets.Dataset.from_dict(
        {"image": images, "label": [i % 2 for i in range(21)]}, features=features
    )
    ds.save_to_disk(str(tmp_path / "hfdata"))
    out = tmp_path / "run"
    _train(["--data", f"hf:{tmp_path / 'hfdata'}", "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_examples"] == 2  # 10% of 21 held out
    assert metrics["reconstruction_dataset_fd"] is not None
    assert (out / CLASSIFIER_FILE).is_file()
