"""Contract tests of the optional capabilities (``GenerativeModel.capabilities()``); each runs only for families
that have its capability."""

from __future__ import annotations

import torch

from .support import ContractBase, check_images, check_per_image, gen, needs


class CapabilityContract(ContractBase):
    """One test per capability of :data:`vaegan.models.base.CAPABILITIES`."""

    @needs("latent_space")
    def test_latent_space(self):
        model = self.make_model()
        latents = model.prior_latents(4, generator=gen(0))
        assert isinstance(latents, torch.Tensor) and len(latents) == 4
        if model.latent_shape is not None:
            assert tuple(latents.shape[1:]) == model.latent_shape, (tuple(latents.shape), model.latent_shape)
        assert torch.equal(latents, model.prior_latents(4, generator=gen(0)))
        labels = self.example_labels(model)
        with torch.no_grad():
            decoded = model.decode_latents(latents, class_labels=labels)
        check_images(decoded, (4, *model.image_shape), model.dtype, "decode_latents")
        label = None if labels is None else int(labels[0])
        path = model.interpolate(latents[0], latents[1], steps=5, class_labels=label)
        check_images(path, (5, *model.image_shape), model.dtype, "interpolate")
        with torch.no_grad():
            ends = model.decode_latents(latents[:2], class_labels=None if labels is None else labels[:1].repeat(2))
        torch.testing.assert_close(path[[0, -1]], ends, rtol=0, atol=1e-5,
                                   msg="interpolate's end points are not the decoded end latents")

    @needs("encoder")
    def test_encoder(self):
        model = self.make_model()
        images, labels = self.example_images(model), self.example_labels(model)
        with torch.no_grad():
            latents = model.encode_images(images, class_labels=labels)
            again = model.encode_images(images, class_labels=labels)
        assert isinstance(latents, torch.Tensor) and len(latents) == len(images)
        if model.latent_shape is not None:
            assert tuple(latents.shape[1:]) == model.latent_shape, (tuple(latents.shape), model.latent_shape)
        assert torch.isfinite(latents).all()
        assert torch.equal(latents, again), "encode_images is not deterministic"

    @needs("codes")
    def test_codes(self):
        model = self.make_model()
        images, labels = self.example_images(model), self.example_labels(model)
        codes = model.encode_codes(images, class_labels=labels)
        assert isinstance(codes, torch.Tensor) and codes.dtype == torch.long and len(codes) == len(images), \
            f"encode_codes must return one long tensor of codes per image, got {codes.dtype} {tuple(codes.shape)}"
        size = model.codebook_size
        assert isinstance(size, int) and size >= 2, f"codebook_size must be an integer >= 2, got {size!r}"
        assert int(codes.min()) >= 0 and int(codes.max()) < size, "codes outside the codebook"
        assert torch.equal(codes, model.encode_codes(images, class_labels=labels)), "encode_codes is not deterministic"

    @needs("reconstruction")
    def test_reconstruction(self):
        model = self.make_model()
        images, labels = self.example_images(model), self.example_labels(model)
        check_images(model.reconstruct(images, class_labels=labels), tuple(images.shape), model.dtype, "reconstruct")

    @needs("log_likelihood")
    def test_log_likelihood(self):
        model = self.make_model()
        images, labels = self.example_images(model), self.example_labels(model)
        with torch.no_grad():
            values = model.log_likelihood(images, class_labels=labels)
            check_per_image(values, len(images), "log_likelihood")
            assert torch.equal(values, model.log_likelihood(images, class_labels=labels)), \
                "log_likelihood gave other values for the same images"
            one_by_one = torch.cat([model.log_likelihood(images[i:i + 1],
                                                         class_labels=None if labels is None else labels[i:i + 1])
                                    for i in range(len(images))])
        torch.testing.assert_close(values, one_by_one, rtol=1e-5, atol=1e-4,
                                   msg="an image's log_likelihood depends on the other images of its batch")

    @needs("likelihood_bounds")
    def test_likelihood_bounds(self):
        model = self.make_model()
        images, labels = self.example_images(model), self.example_labels(model)
        with torch.no_grad():
            bounds = model.likelihood_bounds(images, k=16, generator=gen(0), class_labels=labels)
            again = model.likelihood_bounds(images, k=16, generator=gen(0), class_labels=labels)
        assert {"elbo", "iwae"} <= set(bounds), f"expected 'elbo' and 'iwae' bounds, got {sorted(bounds)}"
        for name, values in bounds.items():
            check_per_image(values, len(images), f"likelihood_bounds[{name!r}]")
            assert torch.equal(values, again[name]), f"likelihood_bounds[{name!r}]: other values for the same generator"
        # IWAE tightens the ELBO (up to the noise of k samples).
        slack = 1e-3 * bounds["elbo"].abs().mean() + 1e-4
        assert bounds["iwae"].mean() >= bounds["elbo"].mean() - slack, bounds
        if model.supports("log_likelihood"):  # both are lower bounds of the exact value
            with torch.no_grad():
                exact = model.log_likelihood(images, class_labels=labels)
            assert (bounds["iwae"] <= exact + slack).all(), (bounds, exact)

    @needs("completion")
    def test_completion(self):
        model = self.make_model()
        images = (self.example_images(model) > 0.5).to(model.dtype)
        known = torch.zeros_like(images, dtype=torch.bool)
        known[..., : images.shape[-2] // 2, :] = True  # the top half is given
        labels = self.example_labels(model)
        completed = model.complete(images, known, generator=gen(0), class_labels=labels)
        check_images(completed, tuple(images.shape), model.dtype, "complete")
        assert torch.equal(completed[known], images[known]), "complete changed known pixels"
        assert torch.equal(completed, model.complete(images, known, generator=gen(0), class_labels=labels))
