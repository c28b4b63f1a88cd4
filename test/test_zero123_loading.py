"""Zero123 weights: save/load round trip, both Hub folder layouts, LDM .ckpt conversion, errors."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from one2345_ros.cli.convert import add_parser as add_convert_zero123_parser
from one2345_ros.views.zero123.loading import from_local_dir, load_zero123, resolve_zero123_source
from one2345_ros.views.zero123.weights import Zero123WeightsError

from ldm_format import ldm_checkpoint, tiny_ldm_yaml
from zero123_tiny import tiny_components, tiny_pipeline

COMPONENTS = ("unet", "vae", "image_encoder", "cc_projection")


def _same_weights(a, b) -> None:
    for name in COMPONENTS:
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys(), name
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k}"


def _views(pipe):
    img = np.full((64, 64, 3), 255, np.uint8)
    img[16:48, 20:44] = (200, 40, 90)
    out = pipe(img, [0.0, 30.0, -10.0], [90.0, 180.0, 0.0], num_inference_steps=2, seeds=[5, 6, 7], output_type="pt")
    return out.images


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pipe = tiny_pipeline(seed=1)
    folder = tmp_path_factory.mktemp("zero123") / "ours"
    pipe.save_pretrained(folder)
    return pipe, folder


def test_save_pretrained_from_local_dir_round_trip_is_bit_exact(saved):
    pipe, folder = saved
    loaded = from_local_dir(folder)
    _same_weights(pipe, loaded)
    assert torch.equal(_views(pipe), _views(loaded))  # max diff 0.0
    assert json.loads((folder / "cc_projection" / "config.json").read_text())["in_channel"] == 36


def _kxic_folder(src, dst):
    """Layout A as on the Hub (kxic/zero123-xl): .bin pickles, cc_projection config without sizes."""
    shutil.copytree(src, dst)
    for sub, stem, bin_stem in (("unet", "diffusion_pytorch_model", "diffusion_pytorch_model"),
                                ("vae", "diffusion_pytorch_model", "diffusion_pytorch_model"),
                                ("image_encoder", "model", "pytorch_model"),
                                ("cc_projection", "diffusion_pytorch_model", "diffusion_pytorch_model")):  # fmt: skip
        state = load_file(dst / sub / f"{stem}.safetensors")
        if sub == "image_encoder":  # transformers < 4.31 saved this buffer
            state["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
        torch.save(state, dst / sub / f"{bin_stem}.bin")
        (dst / sub / f"{stem}.safetensors").unlink()
    (dst / "cc_projection" / "config.json").write_text(json.dumps({"_class_name": "CCProjection", "_diffusers_version": "0.18.2"}))
    index = json.loads((dst / "model_index.json").read_text())
    index["cc_projection"] = ["pipeline_zero1to3", "CCProjection"]
    (dst / "model_index.json").write_text(json.dumps(index))


def _threestudio_folder(src, dst):
    """Layout B (bennyguo/ashawkey): clip_camera_projection/ with proj.* keys."""
    shutil.copytree(src, dst)
    proj = dst / "clip_camera_projection"
    (dst / "cc_projection").rename(proj)
    state = load_file(proj / "diffusion_pytorch_model.safetensors")
    save_file({k.replace("projection.", "proj."): v for k, v in state.items()}, proj / "diffusion_pytorch_model.safetensors")
    (proj / "config.json").write_text(json.dumps({"_class_name": "CLIPCameraProjection", "embedding_dim": 32, "additional_embeddings": 4}))


@pytest.mark.parametrize("layout", ["kxic", "threestudio"])
def test_public_folder_layouts_load_to_the_same_model(saved, tmp_path, layout):
    pipe, folder = saved
    dst = tmp_path / f"zero123-{layout}"
    (_kxic_folder if layout == "kxic" else _threestudio_folder)(folder, dst)
    loaded = load_zero123(dst)
    _same_weights(pipe, loaded)
    assert loaded.cc_projection.config.camera_embedding == "delta_radius"
    assert torch.equal(_views(pipe), _views(loaded))


def test_stable_zero123_folder_is_detected_by_name(saved, tmp_path):
    _, folder = saved
    dst = tmp_path / "stable-zero123-diffusers"
    _threestudio_folder(folder, dst)
    assert from_local_dir(dst).uses_cond_polar


def _convert(tmp_path, ckpt, *extra):
    parser = argparse.ArgumentParser()
    add_convert_zero123_parser(parser.add_subparsers())
    args = parser.parse_args(["convert-zero123", str(ckpt), str(tmp_path / "converted"), *extra])
    assert args.func(args) == 0
    return tmp_path / "converted"


def test_convert_tiny_ldm_checkpoint_uses_ema_weights_and_zero123_betas(tmp_path):
    comps = tiny_components(seed=2)
    ckpt = tmp_path / "105000.ckpt"
    torch.save(ldm_checkpoint(comps), ckpt)
    (tmp_path / "tiny.yaml").write_text(tiny_ldm_yaml())
    sample = ldm_checkpoint(comps)["state_dict"]
    for real_key in ("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
                     "model_ema.diffusion_modelinput_blocks11transformer_blocks0attn2to_kweight",
                     "first_stage_model.encoder.mid.attn_1.q.weight", "cc_projection.weight",
                     "cond_stage_model.model.visual.transformer.resblocks.0.attn.in_proj_weight"):  # fmt: skip
        assert real_key in sample
    out = _convert(tmp_path, ckpt, "--original-config", str(tmp_path / "tiny.yaml"), "--verify")
    loaded = from_local_dir(out)
    for name in COMPONENTS:  # EMA copy, not the offset raw weights; CLIP from the OpenAI layout
        ref, got = comps[name].state_dict(), getattr(loaded, name).state_dict()
        assert all(torch.equal(ref[k], got[k]) for k in ref), name
    sched = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert (sched["beta_start"], sched["beta_end"], sched["beta_schedule"]) == (0.00085, 0.012, "scaled_linear")
    assert sched["set_alpha_to_one"] is False and sched["steps_offset"] == 1


def test_convert_without_clip_tower_needs_image_encoder(tmp_path):
    comps = tiny_components(seed=3)
    ckpt = tmp_path / "stable_zero123.ckpt"
    torch.save(ldm_checkpoint(comps, include_clip=False), ckpt)
    (tmp_path / "tiny.yaml").write_text(tiny_ldm_yaml())
    with pytest.raises(Zero123WeightsError, match="--image-encoder"):
        _convert(tmp_path, ckpt, "--original-config", str(tmp_path / "tiny.yaml"))
    comps["image_encoder"].save_pretrained(tmp_path / "clip")
    out = _convert(tmp_path, ckpt, "--original-config", str(tmp_path / "tiny.yaml"), "--image-encoder", str(tmp_path / "clip"))
    loaded = from_local_dir(out)
    assert loaded.uses_cond_polar  # stable_zero123.ckpt -> absolute polar in T's fourth slot
    assert torch.equal(loaded.image_encoder.visual_projection.weight, comps["image_encoder"].visual_projection.weight)


def test_missing_component_is_a_clear_error(saved, tmp_path):
    _, folder = saved
    dst = tmp_path / "broken"
    shutil.copytree(folder, dst)
    shutil.rmtree(dst / "unet")
    with pytest.raises(Zero123WeightsError, match=r"missing component\(s\) unet/") as err:
        from_local_dir(dst)
    assert str(dst) in str(err.value) and "convert-zero123" in str(err.value)


def test_wrong_key_is_a_clear_error(saved, tmp_path):
    _, folder = saved
    dst = tmp_path / "renamed"
    shutil.copytree(folder, dst)
    file = dst / "vae" / "diffusion_pytorch_model.safetensors"
    state = load_file(file)
    state["encoder.conv_in.weight_renamed"] = state.pop("encoder.conv_in.weight")
    save_file(state, file)
    with pytest.raises(Zero123WeightsError) as err:
        from_local_dir(dst)
    msg = str(err.value)
    assert str(file) in msg and "missing (1): encoder.conv_in.weight" in msg and "encoder.conv_in.weight_renamed" in msg


def test_untrusted_pickle_needs_explicit_opt_in(saved, tmp_path):
    _, folder = saved
    dst = tmp_path / "pickled"
    shutil.copytree(folder, dst)
    proj = dst / "cc_projection"
    state = load_file(proj / "diffusion_pytorch_model.safetensors")
    (proj / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({"state_dict": state, "hparams": argparse.Namespace(lr=1e-4)}, proj / "diffusion_pytorch_model.bin")
    with pytest.raises(Zero123WeightsError, match="allow-pickle"):
        from_local_dir(dst)
    assert torch.equal(from_local_dir(dst, allow_pickle=True).cc_projection.projection.bias, state["projection.bias"])


def test_weight_lookup_errors_say_where_and_how(tmp_path):
    with pytest.raises(Zero123WeightsError, match="ONE2345_ZERO123") as err:
        resolve_zero123_source(None, environ={})
    assert "kxic/zero123-xl" in str(err.value) and "convert-zero123" in str(err.value)
    with pytest.raises(Zero123WeightsError, match="nowhere"):
        resolve_zero123_source(None, environ={"ONE2345_ZERO123": str(tmp_path / "nowhere")})
    assert resolve_zero123_source(str(tmp_path)) == tmp_path
