"""Synthetic blur, datasets, and the training loop (loss goes down, resume is exact, export)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from algnet_cli.model import ALGNetConfig
from algnet_cli.model.checkpoint import load_checkpoint
from algnet_cli.train.datasets import PairedFolder, SyntheticPairs
from algnet_cli.train.kernels import (
    LONG_MIX,
    REAL_MIX,
    centre_of_mass,
    disk_kernel,
    gaussian_kernel,
    line_kernel,
    random_kernel,
    shake_defocus_kernel,
    trajectory_kernel,
)
from algnet_cli.train.loop import TrainConfig, Trainer

TINY = ALGNetConfig(
    width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1), d_state=4
).to_dict()


@pytest.mark.parametrize("make", [trajectory_kernel, line_kernel, disk_kernel, gaussian_kernel, shake_defocus_kernel])
def test_kernels_sum_to_one_and_are_centred(make):
    for seed in range(12):
        k = make(np.random.default_rng(seed), 31)
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and k.shape[0] <= 31
        assert abs(float(k.sum()) - 1.0) < 1e-5 and (k >= 0).all()
        cy, cx = centre_of_mass(k)
        c = (k.shape[0] - 1) / 2
        assert abs(cy - c) < 1e-3 and abs(cx - c) < 1e-3


def test_kernel_mix_covers_every_kind():
    kinds = {random_kernel(np.random.default_rng(s))[0] for s in range(200)}
    assert kinds == {"trajectory", "line", "disk", "gaussian", "identity"}


def test_long_motion_kernels_span_33_to_64_pixels():
    for seed in range(30):
        kind, k = random_kernel(np.random.default_rng(seed), 67, LONG_MIX)
        ys, xs = np.nonzero(k > 0)
        extent = max(np.ptp(ys), np.ptp(xs))
        assert kind in ("long_trajectory", "long_line") and 32 <= extent <= 66, (kind, extent)
        assert abs(float(k.sum()) - 1.0) < 1e-5


def test_real_degradations_blur_harder_and_keep_the_target(photos):
    classic = SyntheticPairs(photos, patch=64, seed=5)
    real = SyntheticPairs(photos, patch=64, seed=5, max_kernel=67, mix=REAL_MIX, realistic=True)
    kinds = {random_kernel(np.random.default_rng(s), 67, REAL_MIX)[0] for s in range(300)}
    assert {"long_trajectory", "shake_defocus"} <= kinds
    gap = [float((real[i][0] - real[i][1]).abs().mean()) for i in range(16)]
    base = [float((classic[i][0] - classic[i][1]).abs().mean()) for i in range(16)]
    assert np.mean(gap) > np.mean(base)
    for i in range(4):
        assert 0 <= real[i][0].min() and real[i][0].max() <= 1 and real[i][1].shape == (3, 64, 64)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for name, img in (("astronaut", data.astronaut()), ("coffee", data.coffee()), ("chelsea", data.chelsea())):
        Image.fromarray(img).save(root / f"{name}.png")
    return root


def test_same_seed_same_pair_and_blur_happens(photos):
    a = SyntheticPairs(photos, patch=48, seed=3)
    b = SyntheticPairs(photos, patch=48, seed=3)
    for i in (0, 5, 17):
        (ba, sa), (bb, sb) = a[i], b[i]
        assert torch.equal(ba, bb) and torch.equal(sa, sb)
        assert ba.shape == sa.shape == (3, 48, 48) and 0 <= ba.min() and ba.max() <= 1
    other = SyntheticPairs(photos, patch=48, seed=4)[0]
    assert not torch.equal(other[1], a[0][1])
    diffs = [float((a[i][0] - a[i][1]).abs().mean()) for i in range(20)]
    assert max(diffs) > 0.02  # inputs really are degraded


def test_gopro_layout_folder(tmp_path):
    for seq in ("GOPR0001", "GOPR0002"):
        for kind in ("blur", "sharp"):
            (tmp_path / "train" / seq / kind).mkdir(parents=True)
        for i in range(2):
            img = data.astronaut()[i * 50 : i * 50 + 100, :120]
            Image.fromarray(img).save(tmp_path / "train" / seq / "sharp" / f"{i:06d}.png")
            Image.fromarray(img // 2).save(tmp_path / "train" / seq / "blur" / f"{i:06d}.png")
    (tmp_path / "train" / "GOPR0002" / "blur" / "extra.png").write_bytes(b"")  # no partner: ignored
    ds = PairedFolder(tmp_path / "train", patch=64, seed=1)
    assert len(ds) == 4
    blurred, sharp = ds[0]
    assert blurred.shape == sharp.shape == (3, 64, 64)
    assert torch.allclose(blurred, torch.floor(sharp * 255 / 2) / 255, atol=1 / 255 + 1e-6)
    with pytest.raises(ValueError, match="no blur/ and sharp/"):
        PairedFolder(tmp_path / "train" / "GOPR0001" / "sharp")


def _cfg(out, photos, **kw):
    base = dict(
        out=str(out),
        model=TINY,
        photos=str(photos),
        patch=32,
        batch=2,
        steps=4,
        lr=2e-3,
        warmup=1,
        val_every=100,
        val_pairs=2,
        ckpt_every=2,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)


def test_a_few_steps_reduce_the_loss(tmp_path, photos):
    from algnet_cli.train.loop import multiscale_loss

    trainer = Trainer(_cfg(tmp_path, photos, steps=30, warmup=1, lr=3e-3))
    ds = SyntheticPairs(photos, patch=32, seed=0)
    blurred = torch.stack([ds[i][0] for i in range(4)])
    sharp = torch.stack([ds[i][1] for i in range(4)])

    def loss():
        with torch.no_grad():
            return float(multiscale_loss(trainer.model(blurred), sharp, 0.1))

    before = loss()
    for _ in range(25):
        trainer.train_step(blurred, sharp)
    assert loss() < 0.7 * before


def test_resume_continues_with_identical_state(tmp_path, photos):
    straight = Trainer(_cfg(tmp_path / "a", photos))
    straight.run()

    class Stop(Exception):
        pass

    def stop_at_two(entry):
        if entry["step"] == 2:
            raise Stop

    first = Trainer(_cfg(tmp_path / "b", photos))
    with pytest.raises(Stop):
        first.run(stop_at_two)
    resumed = Trainer(_cfg(tmp_path / "b", photos))
    assert resumed.step == 2
    resumed.run()
    assert resumed.step == 4
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = straight.opt.state_dict()["state"], resumed.opt.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_export_writes_model_and_card(tmp_path, photos):
    trainer = Trainer(_cfg(tmp_path, photos, steps=2, val_every=2))
    trainer.run()
    path = trainer.export("tiny")
    model = load_checkpoint(path)
    assert model.config == ALGNetConfig.from_dict(TINY)
    card = json.loads((tmp_path / "tiny.card.json").read_text())
    assert card["iterations"] == 2 and card["validation"]["step"] == 2 and len(card["sha256"]) == 64
    assert "Validation PSNR" in (tmp_path / "tiny.card.md").read_text()


def test_a_training_step_reaches_every_parameter_the_forward_uses(tmp_path, photos):
    """Each parameter but the two that upstream never uses (gamma, conv3_2) gets a non-zero gradient,
    the Mamba internals (A_log, D, dt/x projections, conv1d) included."""
    trainer = Trainer(_cfg(tmp_path, photos))
    ds = SyntheticPairs(photos, patch=32, seed=0)
    blurred = torch.stack([ds[i][0] for i in range(2)])
    sharp = torch.stack([ds[i][1] for i in range(2)])
    from algnet_cli.train.loop import multiscale_loss

    model = trainer.model
    for name, p in model.named_parameters():  # zero-initialised scales would block gradients upstream
        if name.rsplit(".", 1)[-1] in ("beta", "inside_all", "lamb_g", "lamb_l"):
            torch.nn.init.normal_(p, std=0.1)
    multiscale_loss(model(blurred), sharp, 0.1).backward()
    missing = [
        name
        for name, p in model.named_parameters()
        if ".gamma" not in name and ".conv3_2." not in name and (p.grad is None or not p.grad.any())
    ]
    assert missing == []
    assert any("A_log" in n for n, _ in model.named_parameters())
