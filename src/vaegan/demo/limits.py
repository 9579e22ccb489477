"""Caps on one request, so that one visitor cannot exhaust the CPU of a Space, and the defaults of the page."""

MAX_IMAGES = 64
MIN_STEPS, MAX_STEPS = 2, 32
MAX_SEED = 2**31 - 1
MAX_TEMPERATURE = 2.0
MAX_EXAMPLE = 49
MAX_COMPLETIONS = 16  # drawn pixel by pixel: ~1 s for 16 completions of a 28x28 digit by a default PixelCNN
MAX_UPLOAD_SIDE = 4096         # pixels on either side of an uploaded picture: 4096x4096 RGBA decodes to 64 MiB
MAX_UPLOAD_PIXELS = MAX_UPLOAD_SIDE**2
MAX_UPLOAD_BYTES = 10 * 2**20  # one uploaded file (gradio refuses larger ones before storing them)
LATENT_LIMIT = 1e4
MANIFOLD_SIZE = 15
GIF_FRAME_MS = 90

DEFAULT_IMAGES = 16
DEFAULT_SEED = 0
DEFAULT_TEMPERATURE = 1.0
DEFAULT_COMPLETIONS = 8

DEFAULT_CONCURRENCY = 2   # model calls running at once, over all endpoints
DEFAULT_MAX_QUEUE = 64    # requests waiting beyond that are refused ("queue is full")

CAP_REASON = " (this Space caps requests so that one user cannot exhaust its CPU)"
CAPPED_FIELDS = ("Number of images", "Steps", "Number of completions")
