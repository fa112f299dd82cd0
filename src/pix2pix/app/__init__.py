"""The pix2pix app: ``pix2pix serve`` (a page to draw and translate, and an HTTP API) and its models."""
