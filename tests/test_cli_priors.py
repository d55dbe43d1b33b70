"""Transformer and MaskGIT priors through `vqkit train / sample / eval` (issue 14), tiny settings.

The prior stage trains the prior named in --model-config; the run folder's model reloads with the
same prior; `vqkit sample` passes the sampling options the prior declares and refuses the others
in one line; `vqkit eval` reports MaskGIT's masked-token figures instead of an exact NLL.
"""

import json

import pytest
import torch

import vqkit
from vqkit.cli import main
from vqkit.cli.sample import draw, prior_sample_options
from vqkit.train import load_run_model


def run_cli(argv, capsys):
    """The exit status and stderr of `vqkit ARGV`; the error is one line, no traceback."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    return code, err


SMALL_PRIOR = {"embed_dim": 16, "num_layers": 1, "num_heads": 2, "max_size": 4}


def _config(prior_type: str) -> str:
    return json.dumps(
        {
            "encoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
            "decoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
            "prior": {"type": prior_type, **SMALL_PRIOR},
        }
    )


def _train(out, prior_type):
    argv = ["train", "--out", str(out), "--subset", "0.15", "--epochs", "1", "--prior-epochs"]
    argv += ["1", "--model-config", _config(prior_type), "--no-progress"]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("priors")
    return {kind: _train(root / kind, kind) for kind in ("transformer", "maskgit")}


@pytest.mark.parametrize("kind", ["transformer", "maskgit"])
def test_prior_stage_trains_saves_and_reloads(runs, kind):
    run = runs[kind]
    assert (run / "prior" / "metrics.jsonl").is_file()
    model = load_run_model(run)
    assert type(model.prior) is vqkit.get("prior", kind)
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["prior"]["type"] == kind
    # The saved prior is the trained one: its weights equal the run's in-memory copy reloaded.
    again = type(model).from_pretrained(str(run / "model"))
    for a, b in zip(
        model.prior.state_dict().values(), again.prior.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_metrics_follow_the_likelihood_declaration(runs):
    exact = json.loads((runs["transformer"] / "metrics.json").read_text())
    masked = json.loads((runs["maskgit"] / "metrics.json").read_text())
    assert exact["bits_per_latent"] == pytest.approx(exact["prior_nll"] / (16 * 0.6931471805599453))
    assert "prior_nll" not in masked
    assert "bits_per_latent" not in masked
    assert masked["prior_loss"] > 0
    # Sample-quality keys are the same for both, filled in for both.
    for key in ("sample_dataset_fd", "reconstruction_dataset_fd", "sample_kid"):
        assert exact[key] is not None
        assert masked[key] is not None


def test_eval_reports_maskgit_masked_token_figures(runs, capsys):
    capsys.readouterr()
    assert main(["eval", str(runs["maskgit"]), "--no-sample-quality"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert "prior_nll" not in figures
    assert figures["prior_loss"] > 0
    assert figures["sample_dataset_fd"] is None  # skipped, but the key is there


def test_declared_sampling_options():
    assert {"top_k", "top_p"} <= set(prior_sample_options(vqkit.build("prior", "transformer")))
    maskgit = set(prior_sample_options(vqkit.build("prior", "maskgit")))
    assert {"steps", "choice_temperature", "guidance_scale"} <= maskgit
    assert "top_k" not in maskgit


def test_sample_passes_options_to_the_prior(runs, tmp_path, capsys):
    model = load_run_model(runs["maskgit"])
    one = draw(model, 4, seed=3, options={"steps": 2, "choice_temperature": 0.0})
    two = draw(model, 4, seed=3, options={"steps": 2, "choice_temperature": 0.0})
    assert one.shape == (4, 1, 8, 8)
    assert torch.equal(one, two)
    generator = torch.Generator().manual_seed(3)
    codes = model.prior.sample(4, (4, 4), generator=generator, steps=2, choice_temperature=0.0)
    assert torch.equal(one, model.decode_indices(codes))
    out = tmp_path / "s.png"
    argv = ["sample", str(runs["transformer"]), "-n", "4", "--top-k", "2", "--top-p", "0.9"]
    assert main([*argv, "--out", str(out)]) == 0
    assert out.is_file()
    model = load_run_model(runs["transformer"])
    top1 = draw(model, 6, seed=0, options={"top_k": 1})
    again = draw(model, 6, seed=1, options={"top_k": 1})
    assert torch.equal(top1, again)  # top-1 is greedy: the seed does not matter


@pytest.mark.parametrize(
    ("kind", "argv", "message"),
    [
        ("transformer", ["--steps", "4"], "--steps do(es) not apply to the TransformerPrior prior"),
        ("maskgit", ["--top-k", "3"], "--top-k do(es) not apply to the MaskGIT prior"),
    ],
)
def test_sample_refuses_options_the_prior_does_not_take(
    runs, tmp_path, capsys, kind, argv, message
):
    out = tmp_path / "x.png"
    code, err = run_cli(["sample", str(runs[kind]), "-n", "2", "--out", str(out), *argv], capsys)
    assert code == 2
    assert message in err
    assert not out.exists()
