"""True FID in the evaluation: ``evaluate_sample_quality`` / ``evaluate_model`` with a
``FIDInceptionV3``, and ``vqkit eval --inception`` errors. Random Inception weights, the resize
target patched to 75 pixels (the smallest the network takes) to keep it fast."""

import pytest
import torch

import vqkit
from vqkit.cli import main
from vqkit.data import ArrayDataset
from vqkit.train import evaluate_model
from vqkit.train import inception as inc
from vqkit.train.evaluate import FID_KEYS, SAMPLE_QUALITY_KEYS, evaluate_sample_quality
from vqkit.train.frechet import frechet_distance
from vqkit.train.inception import FIDInceptionV3, inception_features

TINY = {
    "encoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
    "decoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
    "prior": {"hidden_channels": 8, "num_layers": 2, "head_channels": 16},
}


@pytest.fixture(scope="module")
def net():
    return FIDInceptionV3(random_init=True)


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(inc, "INPUT_SIZE", 75)


def _model():
    torch.manual_seed(0)
    return vqkit.build("model", "vqvae-digits", image_size=[10, 10], **TINY).eval()


def test_fid_keys_equal_the_brute_force_frechet_distance(net, small):
    model = _model()
    images = torch.rand(5, 1, 10, 10, generator=torch.Generator().manual_seed(0))
    out = evaluate_sample_quality(model, images, None, num_samples=4, batch_size=3, inception=net)
    assert set(out) == set(SAMPLE_QUALITY_KEYS) | set(FID_KEYS)
    assert out["reconstruction_dataset_fd"] is None  # no classifier: no dataset figures
    with torch.no_grad():
        recon = model(images[:4]).reconstruction.clamp(0, 1)
    expected = frechet_distance(inception_features(net, images[:4]), inception_features(net, recon))
    assert out["reconstruction_fid"] == pytest.approx(expected, rel=1e-4)
    assert out["sample_fid"] is not None
    assert out["sample_fid"] >= 0
    assert out["sample_quality_num"] == 4
    # seeded: the same figures again
    again = evaluate_sample_quality(model, images, None, num_samples=4, batch_size=3, inception=net)
    assert again == out


def test_without_inception_there_is_no_fid_key(net, small):
    model = _model()
    data = ArrayDataset(torch.rand(4, 1, 10, 10))
    assert not set(FID_KEYS) & set(evaluate_model(model, data, batch_size=4))
    with_fid = evaluate_model(model, data, batch_size=4, num_samples=3, inception=net)
    assert set(FID_KEYS) <= set(with_fid)
    with pytest.raises(TypeError, match="inception must be a FIDInceptionV3 or None"):
        evaluate_sample_quality(model, data.data, None, inception=torch.nn.Identity())


def test_cli_inception_errors_are_one_line(tmp_path, capsys):
    missing = tmp_path / "inception.safetensors"
    assert main(["eval", str(tmp_path), "--inception", str(missing)]) != 0
    err = capsys.readouterr().err
    assert "python -m vqkit.train.inception" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    assert main(["eval", str(tmp_path), "--inception", str(junk)]) != 0
    err = capsys.readouterr().err
    assert "--inception" in err
    assert "Traceback" not in err
    assert main(["eval", str(tmp_path), "--inception", str(junk), "--no-sample-quality"]) != 0
    assert "contradict" in capsys.readouterr().err
