"""The claims, one module each; [`theory.registry`][theory.registry] lists them."""
