"""Zero123 weights: save/load round trip, both Hub folder layouts, LDM .ckpt conversion, errors."""

from __future__ import annotations

import argparse
import json
import logging
import shutil

import numpy as np
import pytest
import torch
from ldm_format import ldm_checkpoint, tiny_ldm_yaml
from safetensors.torch import load_file, save_file
from zero123_tiny import tiny_components, tiny_pipeline

from one2345_ros.cli.convert import add_parser as add_convert_zero123_parser
from one2345_ros.views.zero123.generator import Zero123Generator
from one2345_ros.views.zero123.loading import from_local_dir, load_zero123, resolve_zero123_source
from one2345_ros.views.zero123.pipeline import WEIGHTS_MARKER
from one2345_ros.views.zero123.weights import Zero123WeightsError

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
    (dst / WEIGHTS_MARKER).unlink()  # Hub folders have no record of ours
    for sub, stem, bin_stem in (("unet", "diffusion_pytorch_model", "diffusion_pytorch_model"),
                                ("vae", "diffusion_pytorch_model", "diffusion_pytorch_model"),
                                ("image_encoder", "model", "pytorch_model"),
                                ("cc_projection", "diffusion_pytorch_model", "diffusion_pytorch_model")):  # fmt: skip
        state = load_file(dst / sub / f"{stem}.safetensors")
        if sub == "image_encoder":  # transformers < 4.31 saved this buffer
            state["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
        torch.save(state, dst / sub / f"{bin_stem}.bin")
        (dst / sub / f"{stem}.safetensors").unlink()
    (dst / "cc_projection" / "config.json").write_text(
        json.dumps({"_class_name": "CCProjection", "_diffusers_version": "0.18.2"})
    )
    index = json.loads((dst / "model_index.json").read_text())
    index["cc_projection"] = ["pipeline_zero1to3", "CCProjection"]
    (dst / "model_index.json").write_text(json.dumps(index))


def _threestudio_folder(src, dst):
    """Layout B (bennyguo/ashawkey): clip_camera_projection/ with proj.* keys."""
    shutil.copytree(src, dst)
    (dst / WEIGHTS_MARKER).unlink()
    proj = dst / "clip_camera_projection"
    (dst / "cc_projection").rename(proj)
    state = load_file(proj / "diffusion_pytorch_model.safetensors")
    save_file(
        {k.replace("projection.", "proj."): v for k, v in state.items()}, proj / "diffusion_pytorch_model.safetensors"
    )
    (proj / "config.json").write_text(
        json.dumps({"_class_name": "CLIPCameraProjection", "embedding_dim": 32, "additional_embeddings": 4})
    )


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
    out = _convert(
        tmp_path, ckpt, "--original-config", str(tmp_path / "tiny.yaml"), "--image-encoder", str(tmp_path / "clip")
    )
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
        resolve_zero123_source(None)
    assert "kxic/zero123-xl" in str(err.value) and "convert-zero123" in str(err.value)
    with pytest.raises(Zero123WeightsError, match="nowhere"):
        resolve_zero123_source(str(tmp_path / "nowhere"))
    assert resolve_zero123_source(str(tmp_path)) == tmp_path


# ------------------------------------------------------------------ weight variants and EMA

STEMS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "image_encoder": "model",
         "clip_camera_projection": "diffusion_pytorch_model"}  # fmt: skip


def _bennyguo_folder(saved, dst):
    """bennyguo/zero123-xl-diffusers: every component as <stem>.safetensors, .fp16 and .fp16_ema.

    The UNet's main and fp16 files hold other ("raw") weights than its fp16_ema file, which
    holds the reference pipeline's weights, so a test sees which file was loaded.
    """
    pipe, folder = saved
    _threestudio_folder(folder, dst)
    for sub, stem in STEMS.items():
        main = load_file(dst / sub / f"{stem}.safetensors")
        raw = {k: v + 0.5 if sub == "unet" and v.is_floating_point() else v for k, v in main.items()}
        save_file(raw, dst / sub / f"{stem}.safetensors")
        save_file(
            {k: v.half() if v.is_floating_point() else v for k, v in raw.items()},
            dst / sub / f"{stem}.fp16.safetensors",
        )
        save_file(
            {k: v.half() if v.is_floating_point() else v for k, v in main.items()},
            dst / sub / f"{stem}.fp16_ema.safetensors",
        )
    return pipe


def test_auto_variant_takes_the_ema_files_of_a_bennyguo_folder(saved, tmp_path, caplog):
    dst = tmp_path / "zero123-xl-diffusers"
    ref = _bennyguo_folder(saved, dst)
    with caplog.at_level(logging.WARNING):
        loaded = load_zero123(dst)  # variant auto
    assert not [r for r in caplog.records if "EMA" in r.getMessage()]
    ref_unet = {k: v.half().float() for k, v in ref.unet.state_dict().items()}
    assert all(torch.equal(ref_unet[k], v) for k, v in loaded.unet.state_dict().items())
    info = Zero123Generator(loaded).describe()
    assert (info["layout"], info["variant"], info["variant_requested"], info["ema"]) == ("B", "fp16_ema", "auto", True)
    assert info["files"]["unet"].endswith("unet/diffusion_pytorch_model.fp16_ema.safetensors")
    assert info["files"]["image_encoder"].endswith("image_encoder/model.fp16_ema.safetensors")
    assert info["files"]["cc_projection"].endswith(
        "clip_camera_projection/diffusion_pytorch_model.fp16_ema.safetensors"
    )
    assert info["dtype"] == "fp32" and info["ema_basis"] == "variant name 'fp16_ema'"
    assert torch.equal(load_zero123(dst, variant="ema").unet.conv_in.weight, loaded.unet.conv_in.weight)


@pytest.mark.parametrize("variant", ["main", "fp16"])
def test_non_ema_variant_loads_with_a_warning(saved, tmp_path, caplog, variant):
    dst = tmp_path / "zero123-xl-diffusers"
    ref = _bennyguo_folder(saved, dst)
    with caplog.at_level(logging.WARNING):
        loaded = load_zero123(dst, variant=variant)
    raw = ref.unet.conv_in.weight + 0.5
    assert torch.equal(loaded.unet.conv_in.weight, raw if variant == "main" else raw.half().float())
    assert loaded.weights_info["variant"] == variant and loaded.weights_info["ema"] is False
    assert "fp16_ema" in loaded.weights_info["ema_basis"]
    assert any("are not the EMA weights" in r.getMessage() for r in caplog.records)


def test_variant_files_are_checked_strictly(saved, tmp_path):
    dst = tmp_path / "zero123-xl-diffusers"
    _bennyguo_folder(saved, dst)
    file = dst / "unet" / "diffusion_pytorch_model.fp16_ema.safetensors"
    state = load_file(file)
    del state["conv_in.weight"]
    save_file(state, file)
    with pytest.raises(
        Zero123WeightsError, match=r"fp16_ema\.safetensors does not match .*missing \(1\): conv_in\.weight"
    ):
        load_zero123(dst)
    with pytest.raises(Zero123WeightsError, match=r"no 'fp16' weights .*variants there: main, fp16_ema"):
        (dst / "unet" / "diffusion_pytorch_model.fp16.safetensors").unlink()
        load_zero123(dst, variant="fp16")
    with pytest.raises(Zero123WeightsError, match="zero123.variant must be one of auto, ema, fp16_ema, fp16, main"):
        load_zero123(dst, variant="non_ema")


def test_kxic_folder_is_taken_as_non_ema_with_a_warning(saved, tmp_path, caplog):
    _, folder = saved
    dst = tmp_path / "zero123-xl"
    _kxic_folder(folder, dst)
    with caplog.at_level(logging.WARNING):
        loaded = load_zero123(dst)
    info = loaded.weights_info
    assert (info["layout"], info["variant"], info["ema"]) == ("A", "main", False)
    assert info["files"]["unet"].endswith("unet/diffusion_pytorch_model.bin")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not the EMA weights" in w and "--extract_ema" in w for w in warnings)
    with pytest.raises(Zero123WeightsError, match="no EMA weights .*convert-zero123"):
        load_zero123(dst, variant="ema")


def test_converted_folder_records_ema_and_ckpt_variants(tmp_path, caplog):
    comps = tiny_components(seed=4)
    ckpt = tmp_path / "zero123-xl.ckpt"
    torch.save(ldm_checkpoint(comps), ckpt)
    (tmp_path / "tiny.yaml").write_text(tiny_ldm_yaml())
    out = _convert(tmp_path, ckpt, "--original-config", str(tmp_path / "tiny.yaml"))
    marker = json.loads((out / WEIGHTS_MARKER).read_text())
    assert marker["variants"]["main"]["ema"] is True and marker["variants"]["main"]["source"] == str(ckpt)
    with caplog.at_level(logging.WARNING):
        loaded = load_zero123(out)
    assert loaded.weights_info["ema"] is True and loaded.weights_info["layout"] == "A"  # our layout-A save is EMA
    assert not [r for r in caplog.records if "EMA" in r.getMessage()]
    assert load_zero123(out, variant="ema").weights_info["variant"] == "main"
    # A .ckpt read directly: auto/ema = the EMA copy, main = the raw weights (offset by 0.5 in ldm_format).
    from one2345_ros.views.zero123 import convert

    ema_ref = comps["unet"].conv_in.weight
    with pytest.MonkeyPatch.context() as mp:  # the tiny UNet needs the tiny LDM config
        real = convert.pipeline_from_ldm_checkpoint
        mp.setattr(convert, "pipeline_from_ldm_checkpoint",
                   lambda *a, **k: real(*a, **{**k, "original_config": tmp_path / "tiny.yaml"}))  # fmt: skip
        auto = load_zero123(ckpt)
        raw = load_zero123(ckpt, variant="main")
        with pytest.raises(Zero123WeightsError, match="names diffusers weight files"):
            load_zero123(ckpt, variant="fp16_ema")
    assert torch.equal(auto.unet.conv_in.weight, ema_ref) and auto.weights_info["ema"] is True
    assert torch.equal(raw.unet.conv_in.weight, ema_ref + 0.5) and raw.weights_info["ema"] is False
    assert (auto.weights_info["kind"], auto.weights_info["variant"], raw.weights_info["variant"]) == (
        "ldm_checkpoint",
        "ema",
        "main",
    )


def test_saved_variants_keep_their_records(tmp_path):
    pipe = tiny_pipeline(seed=5)
    pipe.weights_info = {**pipe.weights_info, "ema": True, "source": "x.ckpt", "ema_basis": "test"}
    folder = tmp_path / "saved"
    pipe.save_pretrained(folder)
    pipe.save_pretrained(folder, variant="fp16")
    marker = json.loads((folder / WEIGHTS_MARKER).read_text())["variants"]
    assert set(marker) == {"main", "fp16"} and marker["fp16"]["ema"] is True
    assert (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    loaded = load_zero123(folder, variant="fp16")
    assert loaded.weights_info["variant"] == "fp16" and loaded.weights_info["ema"] is True
    assert load_zero123(folder).weights_info["variant"] == "main"  # auto: EMA at full precision first
