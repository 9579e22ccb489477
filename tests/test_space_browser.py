"""The demo Space in a real browser: Chromium (Debian's package) driven by Playwright clicks through the tabs.

Never runs ``playwright install``: it uses /usr/bin/chromium (``apt-get install chromium``) and skips without it.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from test_space import ARTIFACTS, heldout_digits, layout, tiny_models, tiny_pixelcnn  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
TIMEOUT_MS = 60_000

IMAGE_LOADED = """(selector) => {
    const img = document.querySelector(selector);
    return img !== null && img.complete && img.naturalWidth > 0;
}"""


def models_with_results():
    """The tiny models and a tiny PixelCNN; the first carries model-card evaluation results, as a published model
    would."""
    from vaegan.demo.registry import DemoModel
    from vaegan.metrics import eval_results

    models = tiny_models()
    # A published evaluation's every metric, with long names and numbers of every size.
    evaluation = {"data": "mnist-5k", "features": "mnist", "num_samples": 10_000, "seed": 0, "real_images": 4500,
                  "heldout_images": 200, "iwae_samples": 1000,
                  "metrics": {"fd_mnist": 7.25, "kid": 11430.2, "kid_std": 2087.3, "is_mnist": 8.02,
                              "precision": 0.82166, "recall": 0.000666667, "density": 1.4687, "coverage": 0.80333,
                              "pr_f1": 0.00133, "confident": 0.88071, "class_coverage": 0.99961, "elbo_nll": 114.31,
                              "iwae_nll": 98.963, "elbo_bpd": 0.21034, "iwae_bpd": 0.18211, "recon_mse": 0.0098641}}
    scored = eval_results(evaluation)
    return {"vae": DemoModel(models.pop("vae"), "org/vae", scored), **models, "pc": tiny_pixelcnn()}


ONE_LINE_CELLS = """() => {
    const table = document.querySelector('#sample-results table');
    const cells = [...table.querySelectorAll('tr')].flatMap(row => [...row.children].slice(0, 3));
    const lines = cell => {  // the distinct line boxes of the cell's text
        const range = document.createRange();
        range.selectNodeContents(cell);
        return new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.bottom))).size;
    };
    const tall = cells.filter(cell => lines(cell) !== 1);
    return {cells: cells.length, tall: tall.map(cell => cell.innerText),
            overflow: table.scrollWidth > table.parentElement.clientWidth + 1};
}"""


@pytest.fixture(scope="module")
def app_url():
    demo = layout.build_demo(models_with_results(), heldout=heldout_digits())
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, css=layout.CSS)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's Chromium with `apt-get install -y chromium`")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(app_url)
            page.wait_for_selector("#sample-button")
            page.page_errors = errors
            yield page
        finally:
            browser.close()


def wait_for_image(page, selector: str) -> dict:
    """Wait until ``selector`` is a loaded <img>; return its natural size."""
    page.wait_for_function(IMAGE_LOADED, arg=selector, timeout=TIMEOUT_MS)
    return page.eval_on_selector(selector, "img => ({width: img.naturalWidth, height: img.naturalHeight})")


def test_page_opens_with_digits_and_evaluation_results(page):
    """Before anything is pressed: the first model's samples, its card's results; no class picker (unconditional)."""
    size = wait_for_image(page, "#sample-output img")
    assert size["width"] > 4 * 28 and size["height"] > 4 * 28
    results = page.locator("#sample-results")
    assert "fd_mnist" in results.inner_text() and "7.25" in results.inner_text() and "80.0" in results.inner_text()
    assert "11,400" in results.inner_text() and "0.000667" in results.inner_text()
    # At the default window size no metric name or number breaks across lines, and the table fits its place.
    layout_check = page.evaluate(ONE_LINE_CELLS)
    assert layout_check["cells"] == 3 * 17 and layout_check["tall"] == [] and not layout_check["overflow"], \
        layout_check
    assert not page.locator("#sample-class").is_visible()
    page.screenshot(path=str(ARTIFACTS / "space_first_impression.png"), full_page=True)
    # another model: its (empty) results replace the table
    page.locator("#sample-model input").click()
    page.get_by_role("option", name="gan (GAN").click()
    page.wait_for_function("() => !document.querySelector('#sample-results').innerText.includes('7.25')")
    page.locator("#sample-model input").click()
    page.get_by_role("option", name="vae (VAE").click()
    page.wait_for_function("() => document.querySelector('#sample-results').innerText.includes('7.25')")
    assert not page.page_errors, page.page_errors


NEW_IMAGE_LOADED = """([selector, old]) => {
    const img = document.querySelector(selector);
    return img !== null && img.src !== old && img.complete && img.naturalWidth > 0;
}"""


def test_sample_tab_renders_a_grid(page, tmp_path):
    first = page.eval_on_selector("#sample-output img", "img => img.src")
    page.fill("#sample-seed input", "5")
    page.click("#sample-button")
    page.wait_for_function(NEW_IMAGE_LOADED, arg=["#sample-output img", first], timeout=TIMEOUT_MS)
    size = wait_for_image(page, "#sample-output img")
    assert size["width"] > 0 and size["height"] > 0
    # the grid came inline with the result (no download request), and the download button saves that PNG
    source = page.eval_on_selector("#sample-output img", "img => img.src")
    assert source.startswith("data:image/png;base64,")
    with page.expect_download() as download:
        page.click("#sample-output a.download-link")
    saved = tmp_path / "saved.png"
    download.value.save_as(saved)
    assert saved.read_bytes() == base64.b64decode(source.split(",", 1)[1])
    assert download.value.suggested_filename.endswith(".png")
    zoom = page.eval_on_selector("#sample-output img", """img => {
        const box = img.getBoundingClientRect();
        return Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
    }""")
    assert zoom >= 2  # the small grid is scaled up on the page (object-fit: contain), not shown as a stamp
    page.screenshot(path=str(ARTIFACTS / "space_sample.png"), full_page=True)
    assert not page.page_errors, page.page_errors


def test_interpolate_tab_renders_strip_and_gif(page):
    page.get_by_role("tab", name="Interpolate").click()
    page.click("#interpolate-button")
    strip = wait_for_image(page, "#interpolate-strip img")
    gif = wait_for_image(page, "#interpolate-gif img")
    assert strip["width"] > strip["height"] and gif["width"] > 0
    assert page.eval_on_selector("#interpolate-gif img", "img => img.src").split("?")[0].endswith(".gif")
    page.screenshot(path=str(ARTIFACTS / "space_interpolate.png"), full_page=True)
    assert not page.page_errors, page.page_errors


def test_explore_tab_decodes_a_clicked_point(page):
    page.get_by_role("tab", name="Explore").click()
    plane = wait_for_image(page, "#explore-plane img")  # part of the page: no request needed
    wait_for_image(page, "#explore-manifold img")
    page.screenshot(path=str(ARTIFACTS / "space_explore_on_open.png"), full_page=True)
    box = page.locator("#explore-plane img").bounding_box()
    scale = box["width"] / plane["width"]
    page.mouse.click(box["x"] + 0.45 * plane["width"] * scale, box["y"] + 0.5 * plane["height"] * scale)
    wait_for_image(page, "#explore-point img")
    page.screenshot(path=str(ARTIFACTS / "space_explore.png"), full_page=True)
    assert not page.page_errors, page.page_errors


def draw_seven(page, sketch: str) -> None:
    """Draw a "7" with the pen of the sketchpad ``sketch`` (a selector)."""
    page.locator(f"{sketch} button[aria-label='Brush']").click()
    canvas = page.locator(f"{sketch} canvas").first.bounding_box()
    x, y = canvas["x"] + canvas["width"] / 2 - 60, canvas["y"] + canvas["height"] / 2 - 90
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 21):  # a "7": the bar, then the stem
        page.mouse.move(x + 6 * i, y)
    for i in range(1, 31):
        page.mouse.move(x + 120 - 2.5 * i, y + 6 * i)
    page.mouse.up()


def test_reconstruct_tab_with_a_drawing(page):
    page.get_by_role("tab", name="Reconstruct").click()
    draw_seven(page, "#reconstruct-sketch")
    page.click("#reconstruct-button")
    seen = wait_for_image(page, "#reconstruct-input img")
    wait_for_image(page, "#reconstruct-output img")
    assert seen["width"] == seen["height"] > 0
    page.screenshot(path=str(ARTIFACTS / "space_reconstruct.png"), full_page=True)
    assert not page.page_errors, page.page_errors


def test_complete_tab_with_a_heldout_digit_and_a_drawing(page):
    page.get_by_role("tab", name="Complete").click()
    assert not page.locator("#complete-class").is_visible()  # the PixelCNN is unconditional
    page.click("#complete-button")  # the default: a held-out 7, the top half kept, 8 completions
    row = wait_for_image(page, "#complete-output img")
    assert row["width"] > 8 * row["height"]
    page.screenshot(path=str(ARTIFACTS / "space_complete.png"), full_page=True)
    first = page.eval_on_selector("#complete-output img", "img => img.src")
    page.locator("#complete-source").get_by_text("Your digit: draw or upload").click()
    draw_seven(page, "#complete-sketch")
    page.click("#complete-button")
    page.wait_for_function(NEW_IMAGE_LOADED, arg=["#complete-output img", first], timeout=TIMEOUT_MS)
    page.screenshot(path=str(ARTIFACTS / "space_complete_drawing.png"), full_page=True)
    assert not page.page_errors, page.page_errors
