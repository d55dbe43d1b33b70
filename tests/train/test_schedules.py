"""Schedules: closed forms, validation, the trainer applying them, exact resume, run specs."""

import json
import math

import pytest
import torch
from torch import nn
from train_helpers import TinyOutput

from vqkit.data import ArrayDataset
from vqkit.train import TrainConfig, Trainer
from vqkit.train.checkpoint import ResumeMismatchError
from vqkit.train.schedules import Schedule, Schedules, parse_schedules

COSINE = {"name": "scale", "type": "cosine", "start": 1.0, "end": 1 / 16, "steps": 8}
WARMUP = {
    "name": "head.weight_decay_like",
    "type": "linear",
    "start": 0.0,
    "end": 2.0,
    "steps": 4,
    "begin": 2,
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            COSINE,
            {
                0: 1.0,
                4: (1 + 1 / 16) / 2,
                2: 1 / 16 + 15 / 32 * (1 + math.cos(math.pi / 4)),
                8: 1 / 16,
                100: 1 / 16,
            },
        ),
        (WARMUP, {0: 0.0, 2: 0.0, 3: 0.5, 5: 1.5, 6: 2.0, 50: 2.0}),
        (
            {"name": "a", "type": "exponential", "start": 1.0, "end": 0.01, "steps": 10},
            {0: 1.0, 5: 0.1, 10: 0.01, 20: 0.01},
        ),
        ({"name": "a", "type": "constant", "value": 3.5}, {0: 3.5, 10**9: 3.5}),
        (
            {"name": "a", "type": "piecewise", "boundaries": [3, 7], "values": [1, 2, 4]},
            {0: 1.0, 2: 1.0, 3: 2.0, 6: 2.0, 7: 4.0, 99: 4.0},
        ),
    ],
)
def test_closed_forms(spec, expected):
    schedule = Schedule(spec)
    for step, value in expected.items():
        assert schedule.value(step) == pytest.approx(value, rel=1e-12, abs=1e-15), step


def test_normalised_spec_round_trips_through_json():
    parsed = parse_schedules([WARMUP, COSINE])
    assert parsed[1] == COSINE | {"begin": 0}
    assert parse_schedules(json.loads(json.dumps(parsed))) == parsed


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"name": "a", "type": "sine", "start": 1}, "'type' must be one of"),
        ({"name": "a b", "type": "constant", "value": 1}, "dotted attribute path"),
        ({"name": "a", "type": "cosine", "start": 1, "end": 0}, r"missing \['steps'\]"),
        ({"name": "a", "type": "constant", "value": 1, "steps": 3}, r"unknown \['steps'\]"),
        ({"name": "a", "type": "linear", "start": 1, "end": 0, "steps": 0}, "steps must be a pos"),
        ({"name": "a", "type": "exponential", "start": 1, "end": 0, "steps": 5}, "positive"),
        ({"name": "a", "type": "linear", "start": math.nan, "end": 0, "steps": 5}, "finite"),
        (
            {"name": "a", "type": "piecewise", "boundaries": [3, 2], "values": [1, 2, 3]},
            "strictly increasing",
        ),
        ({"name": "a", "type": "piecewise", "boundaries": [3], "values": [1]}, r"len\(values\)"),
        ("scale", "must be a dict"),
    ],
)
def test_bad_specs_are_refused(spec, match):
    with pytest.raises((TypeError, ValueError), match=match):
        TrainConfig(schedules=[spec])


def test_a_name_scheduled_twice_is_refused():
    with pytest.raises(ValueError, match="more than once"):
        parse_schedules([COSINE, COSINE])


class Scaled(nn.Module):
    """A tiny model whose loss depends on a scheduled float and on a scheduled buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Dropout(0.2), nn.Linear(4, 64))
        self.scale = 1.0
        self.register_buffer("offset", torch.zeros(()))

    def forward(self, x):
        r = self.net(x).view_as(x)
        loss = self.scale * (r - x).square().mean() + self.offset
        return TinyOutput(loss, {"recon": loss}, r)


def test_unknown_names_fail_when_the_trainer_is_built(tiny_data):
    train, _ = tiny_data
    for name, match in [
        ("scael", r"Scaled \(Scaled\) has no attribute 'scael'"),
        ("quantizer.temperature", r"has no attribute 'quantizer' \(its parts: \['net'\]\)"),
        ("net", "must be a number"),
    ]:
        spec = {"name": name, "type": "constant", "value": 1.0}
        with pytest.raises(ValueError, match=match):
            Trainer(Scaled(), train, schedules=[spec], progress=False)


SETTINGS = {"epochs": 3, "batch_size": 16, "checkpoint_every": 4, "progress": False, "lr": 3e-3}
SCHEDULES = [COSINE, {"name": "offset", "type": "linear", "start": 0.0, "end": 1.0, "steps": 10}]


class Killed(BaseException):
    pass


def _run(out, data, kill_at=None, seen=None):
    train, val = data
    torch.manual_seed(5)
    model = Scaled()
    seen = [] if seen is None else seen

    def record(trainer, step, logs):
        seen.append((step, model.scale, float(model.offset), float(logs["schedule/scale"])))
        if step == kill_at:
            raise Killed

    result = Trainer(
        model, train, val, out_dir=out, callbacks=[record], schedules=SCHEDULES, **SETTINGS
    ).fit()
    return model, result, seen


def test_values_are_applied_at_the_start_of_each_step_and_logged(tmp_path, tiny_data):
    _model, result, seen = _run(tmp_path, tiny_data)
    cosine, linear = Schedule(COSINE), Schedule(SCHEDULES[1])
    assert [s for s, *_ in seen] == list(range(1, 19))
    for step, scale, offset, logged in seen:  # step s was the (s−1)-th, 0-based
        assert scale == cosine.value(step - 1)
        assert logged == pytest.approx(scale, rel=1e-6)  # logged as a float32 tensor
        assert offset == pytest.approx(linear.value(step - 1))
    first_epoch = result.history[0]
    mean = sum(cosine.value(t) for t in range(6)) / 6
    assert first_epoch["train/schedule/scale"] == pytest.approx(mean)


def test_resume_sets_the_uninterrupted_values_at_every_step(tmp_path, tiny_data):
    reference, _ref_result, ref_seen = _run(tmp_path / "a", tiny_data)
    expected = {step: tuple(values) for step, *values in ref_seen}
    seen: list = []
    for kill in (3, 9, 13):  # mid-epoch, right on a checkpoint (8), just after an epoch end
        with pytest.raises(Killed):
            _run(tmp_path / "b", tiny_data, kill_at=kill, seen=seen)
    resumed, result, _ = _run(tmp_path / "b", tiny_data, seen=seen)
    assert result.resumed_from == 12
    assert {step for step, *_ in seen} == set(expected)  # every step ran at least once
    for step, *values in seen:  # including the steps repeated after each resume
        assert tuple(values) == expected[step], step
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert resumed.scale == reference.scale


def test_resume_with_other_schedules_is_refused(tmp_path, tiny_data):
    with pytest.raises(Killed):
        _run(tmp_path, tiny_data, kill_at=5)
    train, val = tiny_data
    other = [COSINE | {"steps": 9}]
    with pytest.raises(ResumeMismatchError, match="schedules"):
        Trainer(Scaled(), train, val, out_dir=tmp_path, schedules=other, **SETTINGS).fit()


def test_dvae_temperature_and_kl_weight_follow_their_schedules():
    import vqkit

    torch.manual_seed(0)
    model = vqkit.create_model(
        "dvae-digits",
        prior=None,
        encoder={"hidden_channels": 8, "residual_hidden_channels": 4},
        decoder={"hidden_channels": 8, "residual_hidden_channels": 4},
    )
    data = ArrayDataset(torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    schedules = [
        {
            "name": "quantizer.temperature",
            "type": "cosine",
            "start": 1.0,
            "end": 0.0625,
            "steps": 3,
        },
        {"name": "quantizer.kl_weight", "type": "linear", "start": 0.0, "end": 0.5, "steps": 2},
    ]
    logs = []
    Trainer(
        model,
        data,
        schedules=schedules,
        max_steps=4,
        epochs=None,
        batch_size=8,
        progress=False,
        callbacks=[lambda t, s, lg: logs.append(lg)],
    ).fit()
    assert model.quantizer.temperature == 0.0625
    assert model.quantizer.kl_weight == 0.5
    assert [float(lg["schedule/quantizer.kl_weight"]) for lg in logs] == [0.0, 0.25, 0.5, 0.5]
    temperatures = [float(lg["schedule/quantizer.temperature"]) for lg in logs]
    assert temperatures == pytest.approx([1.0, 0.765625, 0.296875, 0.0625])


def test_run_spec_config_json_replays_the_schedules(tmp_path):
    from vqkit.train.run import DataSpec, RunSpec

    spec = RunSpec(
        data=DataSpec("digits"),
        model="dvae-digits",
        train=TrainConfig(epochs=1, schedules=SCHEDULES),
        prior_train=None,
        model_config={"prior": None},
    )
    again = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again.train.schedules == parse_schedules(SCHEDULES)
    assert again == spec


def test_beta_vae_capacity_can_be_scheduled():
    import vqkit

    torch.manual_seed(0)
    model = vqkit.BetaVAE(
        in_channels=1,
        latent_dim=2,
        image_size=8,
        hidden_dims=[4, 4],
        loss={"type": "capacity_kl", "capacity_steps": 1},
    )
    schedules = Schedules(
        [
            {
                "name": "loss_fn.max_capacity",
                "type": "piecewise",
                "boundaries": [2],
                "values": [5.0, 9.0],
            }
        ],
        model,
    )
    schedules.apply(3)
    model.loss_fn.iteration.fill_(3)
    assert float(model.loss_fn.capacity) == 9.0
