"""Images per second of the PixelCNN's cached sampler next to the textbook loop, in one run, one CPU thread.

The textbook loop runs the whole network once per pixel (784 passes for a 28x28 digit); the cached sampler
(Ramachandran et al. 2017) reuses every activation computed before: one row of the vertical stack per image row,
one position of the horizontal stack per pixel. Both draw the same images for the same generator; the script
checks that wherever it runs the textbook loop to the end. A textbook pass costs the same at every pixel, so for
large batches (where the full loop takes hours) it times ``--textbook-passes`` passes and extrapolates, and says so.

    python benchmarks/pixelcnn_sampling.py                       # the default PixelCNN, batches 16 and 256
    python benchmarks/pixelcnn_sampling.py --model outputs/mnist-pixelcnn/model --batch-sizes 16
"""

from __future__ import annotations

import argparse
import math
import time

import torch


def cpu_seconds() -> float:
    return time.process_time()  # user + system CPU of this process (os.times' ticks are too coarse for tiny runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a saved PixelCNN (folder or Hub id); default: an untrained default PixelCNN")
    parser.add_argument("--batch-sizes", default="16,256", help="comma-separated batch sizes (default 16,256)")
    parser.add_argument("--full-textbook-up-to", type=int, default=16,
                        help="run the whole textbook loop (and compare the images) up to this batch size")
    parser.add_argument("--textbook-passes", type=int, default=28,
                        help="passes timed for larger batches, extrapolated to every pixel (default: one row)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from vaegan import AutoModel, PixelCNN

    model = AutoModel.from_pretrained(args.model) if args.model else PixelCNN()
    if model.num_classes is not None:
        raise SystemExit("use an unconditional PixelCNN for this benchmark")
    model.eval()
    pixels = math.prod(model.image_shape[1:])
    print(f"PixelCNN {model.image_shape}, {model.config.num_layers} layers x {model.config.channels} channels, "
          f"{torch.get_num_threads()} CPU thread(s); CPU seconds of the process")
    print("| batch | sampler | CPU s | images/s | same images as the other sampler |")
    print("|---|---|---|---|---|")
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        start = cpu_seconds()
        fast = model.sample(batch, generator=torch.Generator().manual_seed(0))
        fast_cpu = cpu_seconds() - start
        if batch <= args.full_textbook_up_to:
            start = cpu_seconds()
            slow = model.sample(batch, generator=torch.Generator().manual_seed(0), sampler="textbook")
            slow_cpu, same, note = cpu_seconds() - start, str(torch.equal(fast, slow)), ""
        else:
            x = torch.zeros(batch, *model.image_shape)
            with torch.no_grad():
                start = cpu_seconds()
                for _ in range(args.textbook_passes):
                    model.net(x)
                slow_cpu = (cpu_seconds() - start) * pixels / args.textbook_passes
            same, note = "not run to the end", f" (extrapolated from {args.textbook_passes} passes)"
        print(f"| {batch} | cached | {fast_cpu:.2f} | {batch / fast_cpu:.1f} | {same} |")
        print(f"| {batch} | textbook{note} | {slow_cpu:.1f} | {batch / slow_cpu:.3f} | {same} |")
        print(f"speed-up at batch {batch}: {slow_cpu / fast_cpu:.1f}x")


if __name__ == "__main__":
    main()
