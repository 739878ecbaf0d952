"""naas-trainer's Lightning side: data modules, supernet training with progressive shrinking, the ``naas-train`` CLI."""


def load_bundle(path):  # noqa: ANN001, ANN201 - see naas_train.export.load_bundle
    """The model of an export bundle folder (``naas-train export``) as a plain PyTorch module in eval mode; its
    outputs equal the bundle's ``model.pt2`` / ``model.onnx``. See :func:`naas_train.export.load_bundle`."""
    from naas_train.export import load_bundle as _load_bundle

    return _load_bundle(path)


__all__ = ["load_bundle"]
