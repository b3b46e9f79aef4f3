"""The embedded default backend: a tiny text-to-video diffusion transformer trained here."""
