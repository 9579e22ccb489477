"""vaegan's bundled training configs (this folder ships as the ``vaegan.configs`` package).

``vaegan configs`` lists them; ``vaegan train mnist-vae`` finds one by name. Every ``*.yaml`` here is a training
config whose first comment lines describe it; ``accelerate/`` holds example accelerate launcher settings, which
are not bundled.
"""
