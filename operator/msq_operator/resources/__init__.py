"""Typed views (pydantic) of the custom resources, as the CRDs in `crds/` define them."""

GROUP = "relayer.msq.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
